package main

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/starling-live/starling/core/testrig"
)

// crossSiteForms is a page on another site that, opened by an admin whose
// browser holds the admin's Basic credentials, posts forms to the admin
// API: text/plain forms whose bodies are JSON, the classic way around a
// server that reads JSON whatever the content type says.
const crossSiteForms = `<!doctype html><title>cute cats</title>
<form id=title method=POST enctype=text/plain action="%[1]s/api/admin/config/streamtitle">
<input name='{"value":"pwned by a cross-site form","x":"' value='"}'></form>
<form id=key method=POST enctype=text/plain action="%[1]s/api/admin/config/streamkeys">
<input name='{"value":[{"key":"attackers-stream-key","comment":"x"}],"x":"' value='"}'></form>
<script>document.getElementById(location.hash.slice(1)).submit()</script>`

// TestCrossSiteAdminFormsAreRefused: an admin opened the admin API in
// Chromium with Basic credentials; a page on another site then submits
// forms to it. The browser attaches the cached credentials, and the
// server still refuses: the title and the stream key stay. The admin's
// own requests, from the server's origin, and scripts keep working.
func TestCrossSiteAdminFormsAreRefused(t *testing.T) {
	s := startServer(t)
	b := newBrowser(t)
	server := strings.Replace(s.URL, "http://", "http://admin:"+testAdminPassword+"@", 1)
	b.run(chromedp.Navigate(server + "/api/admin/status"))
	var body string
	b.eval(`document.body.innerText`, &body)
	if !strings.Contains(body, `"online"`) {
		t.Fatalf("the admin API did not open with Basic credentials: %s", body)
	}

	// The attacker's site: localhost is another site than 127.0.0.1.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	evil := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, crossSiteForms, s.URL)
	})}
	go evil.Serve(ln)
	t.Cleanup(func() { evil.Close() })
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	for _, form := range []string{"title", "key"} {
		b.run(chromedp.Navigate("http://localhost:" + port + "/#" + form))
		testrig.Eventually(t, 30*time.Second, "the form's answer", func() (bool, string) {
			var loc string
			b.eval(`location.href + " " + document.body.innerText`, &loc)
			return strings.HasPrefix(loc, s.URL+"/api/admin/"), loc
		})
		b.eval(`document.body.innerText`, &body)
		if !strings.Contains(body, "cross-site request refused") {
			t.Errorf("the %s form was answered %s", form, body)
		}
	}
	if st := s.status(); st.StreamTitle != "" {
		t.Errorf("a cross-site form set the title to %q", st.StreamTitle)
	}
	code, cfg := s.admin(http.MethodGet, "/api/admin/serverconfig", nil)
	if code != http.StatusOK || strings.Contains(string(cfg), "attackers-stream-key") || !strings.Contains(string(cfg), testStreamKey) {
		t.Errorf("a cross-site form replaced the stream key: %d %s", code, cfg)
	}
	if !strings.Contains(s.logs.String(), "cross-site admin request refused") {
		t.Error("the refusal is not logged")
	}

	// From the server's own origin the browser's credentials work, for a
	// request that says it sends JSON; the same form posted from there is
	// refused for its content type, after the login passed.
	b.run(chromedp.Navigate(s.URL + "/api/admin/status"))
	var status int
	await := func(p *runtime.EvaluateParams) *runtime.EvaluateParams { return p.WithAwaitPromise(true) }
	b.run(chromedp.Evaluate(`fetch("/api/admin/config/streamtitle", {method: "POST", headers: {"Content-Type": "application/json"},
		body: JSON.stringify({value: "set from the admin's own page"})}).then(r => r.status)`, &status, await))
	if status != http.StatusOK || s.status().StreamTitle != "set from the admin's own page" {
		t.Errorf("a same-origin JSON request: %d, title %q", status, s.status().StreamTitle)
	}
	b.run(chromedp.Evaluate(`fetch("/api/admin/config/streamtitle", {method: "POST", headers: {"Content-Type": "text/plain"},
		body: '{"value":"plain"}'}).then(r => r.status)`, &status, await))
	if status != http.StatusUnsupportedMediaType {
		t.Errorf("a same-origin text/plain body: %d, want 415", status)
	}
}
