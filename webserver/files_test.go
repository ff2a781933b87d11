package webserver

import (
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/starling-live/starling/core/testrig"
)

// newTestServer serves the router with a stub HLS handler.
func newTestServer(t *testing.T) *httptest.Server {
	t.Helper()
	top := t.TempDir()
	thumbs := filepath.Join(top, "thumbs")
	if err := os.MkdirAll(thumbs, 0o755); err != nil {
		t.Fatal(err)
	}
	web := fstest.MapFS{
		"index.html":        {Data: []byte("<!doctype html><title>Starling</title>")},
		"assets/app-abc.js": {Data: []byte("console.log(1)")},
		"assets/app-big.js": {Data: []byte(strings.Repeat("console.log(1);\n", 500))},
	}
	d := testDeps(t)
	d.Admin = nil
	d.HLS = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hls got %s", r.URL.Path)
	})
	d.ThumbnailDir, d.PublicDir, d.Web = thumbs, filepath.Join(top, "public"), web
	s, err := New(d)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() { ts.Close(); s.closeRoots() })
	return ts
}

func rawGet(t *testing.T, ts *httptest.Server, method, target string) (*http.Response, string) {
	t.Helper()
	return testrig.RawGet(t, ts.Listener.Addr().String(), method, target)
}

func TestHLSIsMountedUnderItsPrefix(t *testing.T) {
	ts := newTestServer(t)
	resp, body := rawGet(t, ts, http.MethodGet, "/hls/0/seg-1.ts")
	if resp.StatusCode != http.StatusOK || body != "hls got 0/seg-1.ts" {
		t.Errorf("GET /hls/0/seg-1.ts: %d %q", resp.StatusCode, body)
	}
	if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("X-Content-Type-Options = %q: the middleware must wrap the stream too", got)
	}
}

func TestPageAndAssets(t *testing.T) {
	ts := newTestServer(t)

	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/assets/app-big.js", nil)
	req.Header.Set("Accept-Encoding", "br, gzip")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatalf("asset not gzipped (Content-Encoding %q): %v", resp.Header.Get("Content-Encoding"), err)
	}
	plain, _ := io.ReadAll(zr)
	resp.Body.Close()
	if resp.Header.Get("Content-Encoding") != "gzip" || len(plain) != 16*500 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") {
		t.Errorf("gzipped asset: %q %q, %d bytes", resp.Header.Get("Content-Encoding"), resp.Header.Get("Content-Type"), len(plain))
	}

	tests := []struct {
		path         string
		status       int
		cacheControl string
		csp          bool
	}{
		{"/", http.StatusOK, "no-cache", true},
		{"/index.html", http.StatusOK, "no-cache", true},
		{"/assets/app-abc.js", http.StatusOK, "public, max-age=31536000, immutable", false},
		{"/assets/", http.StatusNotFound, "", false},
		{"/nope.js", http.StatusNotFound, "", false},
		{"/thumbnail.jpg", http.StatusNotFound, "", false},
		{"/api/nope", http.StatusNotFound, "", false},
	}
	for _, tt := range tests {
		resp, err := http.Get(ts.URL + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.status {
			t.Errorf("GET %s: %d, want %d", tt.path, resp.StatusCode, tt.status)
			continue
		}
		if tt.cacheControl != "" && resp.Header.Get("Cache-Control") != tt.cacheControl {
			t.Errorf("GET %s: Cache-Control %q, want %q", tt.path, resp.Header.Get("Cache-Control"), tt.cacheControl)
		}
		if csp := resp.Header.Get("Content-Security-Policy"); tt.csp != strings.Contains(csp, "script-src 'self'") {
			t.Errorf("GET %s: Content-Security-Policy %q", tt.path, csp)
		}
	}
}

func TestPageMayFetchSegmentsFromTheBucket(t *testing.T) {
	web := fstest.MapFS{"index.html": {Data: []byte("<!doctype html>")}}
	origins := []string{}
	s, err := newStaticFiles(web, func() []string { return origins })
	if err != nil {
		t.Fatal(err)
	}
	csp := func() string {
		w := httptest.NewRecorder()
		s.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
		return w.Header().Get("Content-Security-Policy")
	}
	if got := csp(); !strings.Contains(got, "connect-src 'self';") {
		t.Errorf("without a bucket: %q", got)
	}
	origins = []string{"https://cdn.example"}
	if got := csp(); !strings.Contains(got, "connect-src 'self' https://cdn.example;") {
		t.Errorf("with segments on https://cdn.example: %q", got)
	}
}
