package webserver

import (
	"bufio"
	"context"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"regexp"
	"runtime/debug"
	"time"
)

type ctxKey int

const requestInfoKey ctxKey = iota

// requestInfo is what the middleware learns of a request, in its context
// under one key: one context and one copy of the request, not one of each
// per fact. requestID creates it; clientIP fills in the client before any
// handler runs, and nothing changes it afterwards.
type requestInfo struct {
	id       string
	clientIP string // "" until clientIP has run
	viaProxy bool
	// header is the X-Request-Id header's value: allocated with the
	// rest, not on its own.
	header [1]string
}

func infoOf(ctx context.Context) *requestInfo {
	info, _ := ctx.Value(requestInfoKey).(*requestInfo)
	return info
}

// RequestID returns the id of the request ctx belongs to, or "".
func RequestID(ctx context.Context) string {
	if info := infoOf(ctx); info != nil {
		return info.id
	}
	return ""
}

// validRequestID accepts ids a reverse proxy may have set already.
var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// requestID gives every request an id, reusing a proxy's X-Request-Id, and
// returns it in the response so a user's report can be found in the log.
// An id only has to be unlikely to repeat, not to be guessed: it comes
// from math/rand/v2, which costs no system call and no lock.
func requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if id == "" || !validRequestID.MatchString(id) {
			id = newRequestID()
		}
		info := &requestInfo{id: id, header: [1]string{id}}
		w.Header()["X-Request-Id"] = info.header[:]
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestInfoKey, info)))
	})
}

// newRequestID is 16 characters of the base32 alphabet (80 bits), as
// crypto/rand.Text's were.
func newRequestID() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	var b [16]byte
	hi, lo := rand.Uint64(), rand.Uint64()
	for i := range 8 {
		b[i] = alphabet[hi&31]
		b[i+8] = alphabet[lo&31]
		hi >>= 5
		lo >>= 5
	}
	return string(b[:])
}

// statusWriter records the status code for the access log. Unwrap lets
// http.ResponseController reach the connection (for WebSockets).
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Hijack hands the connection to a WebSocket upgrader; gorilla/websocket
// asks for http.Hijacker directly rather than through Unwrap.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.status == 0 {
		w.status = http.StatusSwitchingProtocols
	}
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

// accessLog logs each request at debug level; client errors of the API at
// info would be noise from players polling.
func accessLog(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !log.Enabled(r.Context(), slog.LevelDebug) {
			next.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		log.Debug("http", "method", r.Method, "path", r.URL.Path, "status", sw.status,
			"duration", time.Since(start).Round(time.Microsecond), "remote", r.RemoteAddr, "request_id", RequestID(r.Context()))
	})
}

// securityHeaders are sent with every response; pages add their CSP.
// The values are built once and shared by every response, which no one
// modifies (Header.Set and Add replace or reallocate a value, never write
// into it), and the keys are already canonical.
func securityHeaders(next http.Handler) http.Handler {
	nosniff := []string{"nosniff"}
	referrer := []string{"strict-origin-when-cross-origin"}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h["X-Content-Type-Options"] = nosniff
		h["Referrer-Policy"] = referrer
		next.ServeHTTP(w, r)
	})
}

// recoverPanics turns a handler's panic (a bug) into a 500 with the stack
// in the log, instead of a dropped connection.
func recoverPanics(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				log.Error("handler panicked", "path", r.URL.Path, "panic", v, "request_id", RequestID(r.Context()), "stack", string(debug.Stack()))
				http.Error(w, "internal error", http.StatusInternalServerError)
			}
		}()
		next.ServeHTTP(w, r)
	})
}
