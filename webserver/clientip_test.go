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
