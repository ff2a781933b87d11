package webserver

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

// BenchmarkMiddleware is what every request pays before its handler: the
// request id, the client's address, the access log (off at info), the
// security headers, the deadlines and the panic guard.
func BenchmarkMiddleware(b *testing.B) {
	log := slog.New(slog.DiscardHandler)
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {})
	for _, tt := range []struct {
		name    string
		trusted []netip.Prefix
	}{
		{"direct", nil},
		{"via proxy", []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}},
	} {
		h := requestID(clientIP(trustedBy(tt.trusted), accessLog(log, securityHeaders(deadlines(Limits{}.withDefaults(), recoverPanics(log, ok))))))
		r := httptest.NewRequest(http.MethodGet, "/hls/0/stream.m3u8", nil)
		r.RemoteAddr = "192.0.2.7:50000"
		r.Header.Set("X-Forwarded-For", "198.51.100.1")
		w := &discardWriter{h: http.Header{}}
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				h.ServeHTTP(w, r)
			}
		})
	}
}

// discardWriter is a ResponseWriter that keeps nothing, so that the
// benchmark measures the middleware, not a recorder.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header       { return w.h }
func (*discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (*discardWriter) WriteHeader(int)             {}

// The server's own writer takes deadlines.
func (*discardWriter) SetReadDeadline(time.Time) error  { return nil }
func (*discardWriter) SetWriteDeadline(time.Time) error { return nil }
