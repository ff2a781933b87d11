package s3test

import (
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// FaultProxy is a loopback HTTP reverse proxy in front of an S3 server
// whose behaviour a test switches while requests flow: for the failures
// a healthy server does not produce (a dropped connection, a stall, an
// overloaded or skewed-clock answer). It keeps the request's Host header,
// so signed requests still verify behind it.
type FaultProxy struct {
	// URL is the proxy's address, "http://127.0.0.1:PORT", to use as the
	// endpoint.
	URL string

	mode     atomic.Pointer[Mode]
	requests atomic.Int64
	faulted  atomic.Int64
	closed   chan struct{} // closed in cleanup: ends the delays
	proxy    *httputil.ReverseProxy

	mu   sync.Mutex
	seen []Request // guarded by mu
}

// Request is one request the proxy saw.
type Request struct {
	Method, Path, RawQuery string
	// Fault reports whether the mode's fault hit it (rather than it
	// passing).
	Fault bool
}

type modeKind int

const (
	pass modeKind = iota
	drop
	delay
	status
)

// Mode is what the proxy does with a request. The zero Mode passes.
type Mode struct {
	kind    modeKind
	delay   time.Duration
	status  int
	code    string
	message string
	when    func(*http.Request) bool
}

// Pass forwards every request.
func Pass() Mode { return Mode{} }

// Drop closes the connection on the request, without an answer.
func Drop() Mode { return Mode{kind: drop} }

// Delay waits d, then forwards; the wait ends early if the client gives up.
func Delay(d time.Duration) Mode { return Mode{kind: delay, delay: d} }

// Status answers with an HTTP status and the S3 error code that usually
// comes with it (503 SlowDown, 500 InternalError, 403 AccessDenied...).
func Status(code int) Mode {
	s3code := map[int]string{
		http.StatusServiceUnavailable:  "SlowDown",
		http.StatusInternalServerError: "InternalError",
		http.StatusForbidden:           "AccessDenied",
		http.StatusNotFound:            "NoSuchKey",
		http.StatusBadRequest:          "InvalidRequest",
	}[code]
	if s3code == "" {
		s3code = http.StatusText(code)
	}
	return S3Error(code, s3code, "fault injected by s3test.FaultProxy")
}

// S3Error answers with an HTTP status and an S3 error document carrying
// code ("RequestTimeTooSkewed") and message.
func S3Error(httpStatus int, code, message string) Mode {
	return Mode{kind: status, status: httpStatus, code: code, message: message}
}

// When limits the mode to the requests match accepts; the others pass.
func (m Mode) When(match func(*http.Request) bool) Mode {
	m.when = match
	return m
}

// NewFaultProxy starts a proxy to target (an S3 endpoint URL) in Pass
// mode; it stops in the test's cleanup.
func NewFaultProxy(t testing.TB, target string) *FaultProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatalf("fault proxy target %q: %v", target, err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	p := &FaultProxy{
		closed: make(chan struct{}),
		proxy: &httputil.ReverseProxy{
			Rewrite: func(r *httputil.ProxyRequest) {
				r.SetURL(u)
				r.Out.Host = r.In.Host // signed into the request
			},
			Transport: tr,
		},
	}
	p.mode.Store(&Mode{})
	srv := httptest.NewServer(http.HandlerFunc(p.serve))
	p.URL = srv.URL
	t.Cleanup(func() {
		close(p.closed)
		srv.Close()
		tr.CloseIdleConnections()
	})
	return p
}

// Set switches the mode for the requests that arrive from now on.
func (p *FaultProxy) Set(m Mode) { p.mode.Store(&m) }

// Requests counts the requests seen.
func (p *FaultProxy) Requests() int64 { return p.requests.Load() }

// Faulted counts the requests a fault hit.
func (p *FaultProxy) Faulted() int64 { return p.faulted.Load() }

// Seen lists the requests seen, oldest first.
func (p *FaultProxy) Seen() []Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Request(nil), p.seen...)
}

func (p *FaultProxy) serve(w http.ResponseWriter, r *http.Request) {
	m := *p.mode.Load()
	if m.when != nil && !m.when(r) {
		m = Mode{}
	}
	p.requests.Add(1)
	if m.kind != pass {
		p.faulted.Add(1)
	}
	p.mu.Lock()
	p.seen = append(p.seen, Request{Method: r.Method, Path: r.URL.Path, RawQuery: r.URL.RawQuery, Fault: m.kind != pass})
	p.mu.Unlock()

	switch m.kind {
	case drop:
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			http.Error(w, "s3test: cannot drop the connection: "+err.Error(), http.StatusInternalServerError)
			return
		}
		conn.Close()
		return
	case delay:
		t := time.NewTimer(m.delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		case <-p.closed:
			return
		}
	case status:
		w.Header().Set("Content-Type", "application/xml")
		w.Header().Set("X-Amz-Request-Id", "s3test-fault")
		w.WriteHeader(m.status)
		if r.Method != http.MethodHead {
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
				`<Error><Code>%s</Code><Message>%s</Message><Resource>%s</Resource><RequestId>s3test-fault</RequestId></Error>`,
				html.EscapeString(m.code), html.EscapeString(m.message), html.EscapeString(r.URL.Path))
		}
		return
	}
	p.proxy.ServeHTTP(w, r)
}
