package webserver

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

// TestForwardedHostOnlyFromTrustedProxies: the host a signature covers is
// the proxy's X-Forwarded-Host only when the proxy is trusted; anyone else
// claiming one is ignored.
func TestForwardedHostOnlyFromTrustedProxies(t *testing.T) {
	trusted := trustedBy([]netip.Prefix{netip.MustParsePrefix("10.0.0.1/32")})
	var got string
	h := clientIP(trusted, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = ForwardedHost(r) }))
	for _, tc := range []struct{ peer, forwarded, want string }{
		{"10.0.0.1:5000", "live.example.com", "live.example.com"},
		{"10.0.0.1:5000", "live.example.com, evil.example", "live.example.com"},
		{"10.0.0.1:5000", "", "127.0.0.1:8080"},
		{"203.0.113.9:5000", "live.example.com", "127.0.0.1:8080"},
	} {
		r := httptest.NewRequest("POST", "http://127.0.0.1:8080/federation/inbox", nil)
		r.RemoteAddr = tc.peer
		if tc.forwarded != "" {
			r.Header.Set("X-Forwarded-Host", tc.forwarded)
		}
		h.ServeHTTP(httptest.NewRecorder(), r)
		if got != tc.want {
			t.Errorf("from %s with X-Forwarded-Host %q: %q, want %q", tc.peer, tc.forwarded, got, tc.want)
		}
	}
}

// TestForwardedProtoOnlyFromTrustedProxies: a request is https when it
// came over TLS, or from a trusted proxy saying so; anyone else saying so
// is ignored (a Secure cookie over plain http would never come back).
func TestForwardedProtoOnlyFromTrustedProxies(t *testing.T) {
	trusted := trustedBy([]netip.Prefix{netip.MustParsePrefix("10.0.0.1/32")})
	var got string
	h := clientIP(trusted, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = ForwardedProto(r) }))
	for _, tc := range []struct {
		peer, forwarded string
		tls             bool
		want            string
	}{
		{"10.0.0.1:5000", "https", false, "https"},
		{"10.0.0.1:5000", "HTTPS, http", false, "https"},
		{"10.0.0.1:5000", "http, https", false, "http"},
		{"10.0.0.1:5000", "", false, "http"},
		{"10.0.0.1:5000", "", true, "https"},
		{"203.0.113.9:5000", "https", false, "http"},
		{"203.0.113.9:5000", "http", true, "https"},
	} {
		target := "http://127.0.0.1:8080/admin/login"
		if tc.tls {
			target = "https://127.0.0.1:8080/admin/login"
		}
		r := httptest.NewRequest("POST", target, nil)
		r.RemoteAddr = tc.peer
		if tc.forwarded != "" {
			r.Header.Set("X-Forwarded-Proto", tc.forwarded)
		}
		h.ServeHTTP(httptest.NewRecorder(), r)
		if got != tc.want {
			t.Errorf("from %s (tls %v) with X-Forwarded-Proto %q: %q, want %q", tc.peer, tc.tls, tc.forwarded, got, tc.want)
		}
	}
}
