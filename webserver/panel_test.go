package webserver

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

// TestPanelIsServedBehindTheGate: the panel's pages are its index.html,
// under a CSP of its own; its bundles are cached for good; a missing
// bundle is a 404, not the index; and none of it without the admin.
func TestPanelIsServedBehindTheGate(t *testing.T) {
	d := testDeps(t)
	d.Web = fstest.MapFS{"index.html": {Data: []byte("<!doctype html>viewer")}}
	d.Panel = fstest.MapFS{
		"index.html":          {Data: []byte("<!doctype html>panel")},
		"assets/panel-AB.js":  {Data: []byte("console.log(1)")},
		"assets/panel-AB.css": {Data: []byte("body{}")},
	}
	s, err := New(d)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(t.Context())
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	get := func(path string, auth bool) (*http.Response, string) {
		req, _ := http.NewRequest("GET", ts.URL+path, nil)
		if auth {
			req.SetBasicAuth(AdminUser, "the-admin-password")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	for _, p := range []string{"/admin/", "/admin/video", "/admin/fediverse/deep"} {
		resp, body := get(p, true)
		if resp.StatusCode != 200 || body != "<!doctype html>panel" || resp.Header.Get("Content-Security-Policy") != panelCSP {
			t.Errorf("%s: %d %q CSP %q", p, resp.StatusCode, body, resp.Header.Get("Content-Security-Policy"))
		}
	}
	resp, body := get("/admin/assets/panel-AB.js", true)
	if resp.StatusCode != 200 || body != "console.log(1)" || !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") {
		t.Errorf("a bundle: %d %q %q", resp.StatusCode, body, resp.Header.Get("Cache-Control"))
	}
	if resp, _ := get("/admin/assets/panel-XX.js", true); resp.StatusCode != 404 {
		t.Errorf("a missing bundle: %d, want 404", resp.StatusCode)
	}
	for _, p := range []string{"/admin/", "/admin/video", "/admin/assets/panel-AB.js"} {
		if resp, body := get(p, false); resp.StatusCode != 401 || body == "<!doctype html>panel" || body == "console.log(1)" {
			t.Errorf("%s without the admin: %d", p, resp.StatusCode)
		}
	}
}
