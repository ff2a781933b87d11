package webserver

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/starling-live/starling/controllers"
)

// noFederation is a server whose fediverse answers nothing.
type noFederation struct{ http.Handler }

func (noFederation) PublicFollowers(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }
func (noFederation) RemoteFollow(w http.ResponseWriter, r *http.Request)    { http.NotFound(w, r) }

// testDeps are Deps whose every part is a stand-in, with the directories
// in the test's own; a test sets what it looks at.
func testDeps(t *testing.T) Deps {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "thumbs"), 0o755); err != nil {
		t.Fatal(err)
	}
	return Deps{
		Logger:       slog.New(slog.DiscardHandler),
		Handlers:     controllers.New(controllers.Deps{}),
		Admin:        password("the-admin-password"),
		Tracker:      http.NotFoundHandler(),
		Chat:         http.NotFoundHandler(),
		Federation:   noFederation{http.NotFoundHandler()},
		HLS:          http.NotFoundHandler(),
		ThumbnailDir: filepath.Join(dir, "thumbs"),
		PublicDir:    filepath.Join(dir, "public"),
		Web:          fstest.MapFS{"index.html": {Data: []byte("<!doctype html>")}},
		Panel:        fstest.MapFS{"index.html": {Data: []byte("<!doctype html><title>panel</title>")}},
	}
}

type password string

func (p password) CheckAdminPassword(s string) bool { return s == string(p) }
func (p password) AdminPasswordVersion() string     { return string(p) }

// TestEveryAdminPathNeedsTheAdmin walks the admin routes, and paths no
// route has, and fails if any answers without the admin's credentials or
// with wrong ones; with them, an unknown admin path is a 404.
func TestEveryAdminPathNeedsTheAdmin(t *testing.T) {
	d := testDeps(t)
	// The admin's last request comes from another address than the
	// guesses, which get throttled.
	d.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	s, err := New(d)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(t.Context())
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()

	type probe struct{ method, path string }
	var probes []probe
	for _, r := range adminRoutes(controllers.New(controllers.Deps{})) {
		method, path, ok := strings.Cut(r.pattern, " ")
		if !ok {
			t.Fatalf("admin route %q has no method", r.pattern)
		}
		if !isAdminPath(path) {
			t.Errorf("admin route %s is outside the gated prefixes %v", path, adminPrefixes)
		}
		probes = append(probes, probe{method, path})
	}
	// The gate's own routes: the session and logout; the login form is
	// the one admin path open to all.
	probes = append(probes, probe{http.MethodGet, sessionPath}, probe{http.MethodPost, logoutPath})
	for _, p := range []string{"/api/admin/", "/api/admin/nope", "/api/admin/config/nope", "/admin", "/admin/", "/admin/deep/link", "/api/admin/../admin/status", "/metrics"} {
		probes = append(probes, probe{http.MethodGet, p}, probe{http.MethodPost, p})
	}
	for _, p := range probes {
		for _, pw := range []string{"", "wrong-password"} {
			req, _ := http.NewRequest(p.method, ts.URL+p.path, strings.NewReader("{}"))
			req.Header.Set("Content-Type", "application/json")
			if pw != "" {
				req.SetBasicAuth(AdminUser, pw)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			// A guesser is throttled after ten: 429 refuses as well.
			if resp.StatusCode != http.StatusUnauthorized && !(pw != "" && resp.StatusCode == http.StatusTooManyRequests) {
				t.Errorf("%s %s with password %q: %d, want 401", p.method, p.path, pw, resp.StatusCode)
			}
		}
	}
	if resp, err := http.Get(ts.URL + loginPath); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("GET %s: %v %v, want the login form", loginPath, resp, err)
	} else {
		resp.Body.Close()
	}
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/api/admin/nope", nil)
	req.SetBasicAuth(AdminUser, "the-admin-password")
	req.Header.Set("X-Forwarded-For", "203.0.113.5")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), `"success":false`) {
		t.Errorf("an unknown admin path with the password: %d %s", resp.StatusCode, body)
	}
}

func isAdminPath(path string) bool {
	for _, p := range adminPrefixes {
		if path == p || (strings.HasSuffix(p, "/") && strings.HasPrefix(path, p)) {
			return true
		}
	}
	return false
}

// fakeHLS records how each request reached it: through the mux and
// StripPrefix (ServeHTTP) or straight (ServeFile).
type fakeHLS struct{ via []string }

func (f *fakeHLS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.via = append(f.via, "mux "+r.URL.Path)
}

func (f *fakeHLS) ServeFile(w http.ResponseWriter, r *http.Request, name string) {
	f.via = append(f.via, "file "+name)
}

// A clean /hls/ path goes straight to the packager with the prefix taken
// off; one the mux would clean, redirect or unescape goes through the mux
// as before.
func TestHLSGoesStraightToThePackager(t *testing.T) {
	hls := &fakeHLS{}
	d := testDeps(t)
	d.HLS = hls
	s, err := New(d)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(t.Context())
	for _, tc := range []struct{ method, target, via string }{
		{http.MethodGet, "/hls/stream.m3u8", "file stream.m3u8"},
		{http.MethodGet, "/hls/0/seg-17.ts", "file 0/seg-17.ts"},
		{http.MethodOptions, "/hls/0/seg-17.ts", "file 0/seg-17.ts"},
		{http.MethodPost, "/hls/0/stream.m3u8", "file 0/stream.m3u8"},
		{http.MethodGet, "/hls/0%2Fseg-17.ts", "mux 0/seg-17.ts"},
		{http.MethodGet, "/hls/%2e%2e/secret.ts", "mux ../secret.ts"}, // refused by the packager
		{http.MethodGet, "/hls/0/../../secret.ts", ""},
		{http.MethodGet, "/hls//0/seg-17.ts", ""},
		{http.MethodGet, "/hls/", "mux "},
	} {
		hls.via = nil
		r := httptest.NewRequest(tc.method, "http://x"+tc.target, nil)
		r.RemoteAddr = "192.0.2.1:1234"
		s.Handler().ServeHTTP(httptest.NewRecorder(), r)
		if got := strings.Join(hls.via, ","); got != tc.via {
			t.Errorf("%s %s reached the packager as %q, want %q", tc.method, tc.target, got, tc.via)
		}
	}
}
