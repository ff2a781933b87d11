package webserver

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Limits bound what HTTP clients may hold. Zero fields take the defaults
// in parentheses.
type Limits struct {
	// MaxConnsPerIP caps the open connections of one peer address (256:
	// a browser opens about six, and a school behind one NAT is many
	// browsers). Trusted proxies are exempt: they carry everyone's.
	MaxConnsPerIP int
	// BodyTimeout is how long a request body may take to arrive (30 s);
	// a client that drips its body loses the connection.
	BodyTimeout time.Duration
	// WriteTimeout is how long a response may take to be sent (60 s: a
	// segment to a viewer on a slow link takes seconds).
	WriteTimeout time.Duration
}

func (l Limits) withDefaults() Limits {
	if l.MaxConnsPerIP == 0 {
		l.MaxConnsPerIP = 256
	}
	if l.BodyTimeout == 0 {
		l.BodyTimeout = 30 * time.Second
	}
	if l.WriteTimeout == 0 {
		l.WriteTimeout = 60 * time.Second
	}
	return l
}

// Server-wide limits on the parts of a request read before any handler.
const (
	readHeaderTimeout = 10 * time.Second
	idleTimeout       = 120 * time.Second
	maxHeaderBytes    = 32 << 10
)

// deadlines gives every request with a body a time to send it, and every
// request a time to receive the response, counted from when its headers
// arrived. WebSocket upgrades get none: the chat and the tracker time
// their sockets themselves, and a deadline left from an earlier request
// on the same connection must not cut them off.
func deadlines(l Limits, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var read, write time.Time
		if !isWebSocket(r) {
			now := time.Now()
			write = now.Add(l.WriteTimeout)
			if r.ContentLength != 0 {
				read = now.Add(l.BodyTimeout)
			}
		}
		// net/http's own writer takes deadlines directly; a wrapped one
		// through a ResponseController, which is one allocation more.
		// Errors mean the writer cannot take deadlines (a test
		// recorder): nothing to enforce then.
		if d, ok := w.(deadliner); ok {
			d.SetReadDeadline(read)
			d.SetWriteDeadline(write)
		} else {
			rc := http.NewResponseController(w)
			rc.SetReadDeadline(read)
			rc.SetWriteDeadline(write)
		}
		next.ServeHTTP(w, r)
	})
}

// deadliner is net/http's ResponseWriter, as ResponseController sees it.
type deadliner interface {
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

func isWebSocket(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// connLimiter caps the open connections per peer address. It counts
// what the kernel handed over, before any byte is read, so a client that
// opens sockets and sends nothing is held to its share too.
type connLimiter struct {
	net.Listener
	log     *slog.Logger
	max     int
	trusted func(netip.Addr) bool

	// mu guards open and warned.
	mu     sync.Mutex
	open   map[netip.Addr]int
	warned map[netip.Addr]time.Time
}

func newConnLimiter(ln net.Listener, log *slog.Logger, max int, trusted func(netip.Addr) bool) *connLimiter {
	return &connLimiter{Listener: ln, log: log, max: max, trusted: trusted,
		open: map[netip.Addr]int{}, warned: map[netip.Addr]time.Time{}}
}

// refusal is all a refused connection gets: it has sent nothing yet, so
// the answer is written before its request is read.
const refusal = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nRetry-After: 10\r\nConnection: close\r\nContent-Length: 56\r\n\r\ntoo many connections from your address: close some first"

func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
		ip := ap.Addr().Unmap()
		if l.trusted(ip) {
			return c, nil
		}
		l.mu.Lock()
		full := l.open[ip] >= l.max
		if !full {
			l.open[ip]++
		}
		warn := full && time.Since(l.warned[ip]) > time.Minute
		if warn {
			l.warned[ip] = time.Now()
		}
		l.mu.Unlock()
		if full {
			if warn {
				l.log.Warn("refusing HTTP connections: too many from one address", "remote", ip, "max", l.max)
			}
			c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
			c.Write([]byte(refusal))
			c.Close()
			continue
		}
		return &countedConn{Conn: c, release: func() { l.release(ip) }}, nil
	}
}

func (l *connLimiter) release(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[ip]--; l.open[ip] <= 0 {
		delete(l.open, ip)
		delete(l.warned, ip)
	}
}

// countedConn gives its slot back when closed, whoever closes it: the
// HTTP server, or a WebSocket's owner after a hijack.
type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// ReadFrom hands a response body to the connection's own ReadFrom: the
// HTTP server sends a segment with sendfile(2) only when its connection
// has one, and an embedded net.Conn hides it. Without it, every segment
// went through a 32 KiB buffer, read and written in user space.
func (c *countedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(writerOnly{c.Conn}, r)
}

// writerOnly hides everything of a writer but Write, so that io.Copy
// does not come back to ReadFrom.
type writerOnly struct{ io.Writer }
