package webserver

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/starling-live/starling/controllers"
)

const secret = "TOP SECRET: outside the HLS directory"

// newTestServer serves an HLS directory holding a playlist and a segment,
// next to a secret file and with symlinks pointing at it.
func newTestServer(t *testing.T) *httptest.Server {
	t.Helper()
	top := t.TempDir()
	hlsDir := filepath.Join(top, "hls")
	thumbs := filepath.Join(top, "thumbs")
	for _, d := range []string{hlsDir, filepath.Join(hlsDir, "0"), thumbs, filepath.Join(top, "private")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(hlsDir, "stream.m3u8"), "#EXTM3U\n")
	write(filepath.Join(hlsDir, "0", "seg-1.ts"), "0123456789")
	write(filepath.Join(top, "secret.ts"), secret)
	write(filepath.Join(top, "private", "secret.ts"), secret)
	write(filepath.Join(top, "secret.m3u8"), secret)
	os.Symlink(filepath.Join(top, "secret.ts"), filepath.Join(hlsDir, "escape.ts"))
	os.Symlink(filepath.Join(top, "private"), filepath.Join(hlsDir, "link"))

	web := fstest.MapFS{
		"index.html":        {Data: []byte("<!doctype html><title>Starling</title>")},
		"assets/app-abc.js": {Data: []byte("console.log(1)")},
		"assets/app-big.js": {Data: []byte(strings.Repeat("console.log(1);\n", 500))},
	}
	s, err := New(Deps{
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
		Handlers:     controllers.New(controllers.Deps{}),
		Tracker:      http.NotFoundHandler(),
		Chat:         http.NotFoundHandler(),
		HLSDir:       hlsDir,
		ThumbnailDir: thumbs,
		PublicDir:    filepath.Join(top, "public"),
		Web:          web,
	})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() { ts.Close(); s.closeRoots() })
	return ts
}

// rawGet sends the request line exactly as given: a Go client would clean
// the path first, an attacker's would not.
func rawGet(t *testing.T, ts *httptest.Server, method, target string) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", method, target)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(body)
}

func TestHLSRejectsHostilePaths(t *testing.T) {
	ts := newTestServer(t)
	for _, target := range []string{
		"/hls/../secret.ts",
		"/hls/%2e%2e/secret.ts",
		"/hls/%2E%2E%2Fsecret.ts",
		"/hls/..%2fsecret.ts",
		"/hls/0/..%2f..%2fsecret.ts",
		"/hls/0/%2e%2e/%2e%2e/secret.ts",
		"/hls/..%5csecret.ts",
		"/hls/0%5c..%5c..%5csecret.ts",
		"/hls//secret.ts",
		"/hls/%2fsecret.ts",
		"/hls/./../secret.m3u8",
		"/hls/escape.ts",          // symlink to a file outside
		"/hls/link/secret.ts",     // symlink to a directory outside
		"/hls/%00.ts",             // NUL
		"/hls/0/seg-1.ts%00.m3u8", // NUL to cut an extension check
		"/hls/stream.m3u8/",       // a file as a directory
		"/hls/",                   // no listings
		"/hls/0/",
		"/hls/0",
		"/hls/0/seg-1.txt", // not a stream file
		"/hls/secret.ts",   // not there
	} {
		resp, body := rawGet(t, ts, http.MethodGet, target)
		if resp.StatusCode == http.StatusOK || strings.Contains(body, "TOP SECRET") {
			t.Errorf("GET %s: %d %q: must not be served", target, resp.StatusCode, body)
		}
		if resp.StatusCode >= 500 {
			t.Errorf("GET %s: %d: hostile input must not cause a server error", target, resp.StatusCode)
		}
	}
}

func TestHLSServesStreamFiles(t *testing.T) {
	ts := newTestServer(t)
	tests := []struct {
		path, contentType, cacheControl, body string
	}{
		{"/hls/stream.m3u8", "application/vnd.apple.mpegurl", "no-cache", "#EXTM3U\n"},
		{"/hls/0/seg-1.ts", "video/mp2t", "public, max-age=31536000, immutable", "0123456789"},
	}
	for _, tt := range tests {
		resp, err := http.Get(ts.URL + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(body) != tt.body {
			t.Errorf("GET %s: %d %q", tt.path, resp.StatusCode, body)
		}
		for h, want := range map[string]string{
			"Content-Type":                tt.contentType,
			"Cache-Control":               tt.cacheControl,
			"Access-Control-Allow-Origin": "*",
			"X-Content-Type-Options":      "nosniff",
		} {
			if got := resp.Header.Get(h); got != want {
				t.Errorf("GET %s: %s = %q, want %q", tt.path, h, got, want)
			}
		}
	}

	// Players fetch byte ranges, and ask for CORS preflights.
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/hls/0/seg-1.ts", nil)
	req.Header.Set("Range", "bytes=2-4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || string(body) != "234" {
		t.Errorf("range request: %d %q", resp.StatusCode, body)
	}
	if resp, _ := rawGet(t, ts, http.MethodOptions, "/hls/0/seg-1.ts"); resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Methods") == "" {
		t.Errorf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	if resp, _ := rawGet(t, ts, http.MethodPost, "/hls/0/seg-1.ts"); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %d, want 405", resp.StatusCode)
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
