package webserver

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// readFromConn records whether the HTTP server handed it a body to send
// with ReadFrom (sendfile, for a *net.TCPConn).
type readFromConn struct {
	net.Conn
	readFrom int
}

func (c *readFromConn) ReadFrom(r io.Reader) (int64, error) {
	c.readFrom++
	return io.Copy(writerOnly{c.Conn}, r)
}

// Through the connection limiter a file is still sent with the
// connection's ReadFrom, which is sendfile(2) on TCP.
func TestCountedConnKeepsReadFrom(t *testing.T) {
	dir := t.TempDir()
	body := strings.Repeat("segment ", 64<<10)
	if err := os.WriteFile(filepath.Join(dir, "seg-1.ts"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	server, client := net.Pipe()
	inner := &readFromConn{Conn: server}
	c := &countedConn{Conn: inner, release: func() {}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv := &http.Server{Handler: http.FileServer(http.Dir(dir))}
		srv.Serve(&oneConnListener{c: c})
	}()
	req, _ := http.NewRequest(http.MethodGet, "http://x/seg-1.ts", nil)
	req.Close = true
	tr := &http.Transport{DialContext: func(context.Context, string, string) (net.Conn, error) { return client, nil }}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(got) != body {
		t.Fatalf("body: %d bytes, %v; want %d bytes", len(got), err, len(body))
	}
	c.Close()
	<-done
	if inner.readFrom == 0 {
		t.Error("the body was not sent with the connection's ReadFrom")
	}
}

// The limiter still counts and releases: the slot comes back on Close.
func TestCountedConnReleases(t *testing.T) {
	l := newConnLimiter(nil, nil, 1, func(netip.Addr) bool { return false })
	ip := netip.MustParseAddr("192.0.2.1")
	l.open[ip] = 1
	server, client := net.Pipe()
	defer client.Close()
	c := &countedConn{Conn: server, release: func() { l.release(ip) }}
	c.Close()
	c.Close()
	if n := l.open[ip]; n != 0 {
		t.Errorf("open after two closes: %d, want 0", n)
	}
}

// oneConnListener accepts c once, then reports closed.
type oneConnListener struct {
	c    net.Conn
	done bool
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	if l.done {
		return nil, net.ErrClosed
	}
	l.done = true
	return l.c, nil
}

func (l *oneConnListener) Close() error   { return nil }
func (l *oneConnListener) Addr() net.Addr { return &net.TCPAddr{} }
