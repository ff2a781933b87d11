package hls

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
)

// ownerListener accepts only connections from sockets of this process's
// user: another local user can read ffmpeg's command line (and the token in
// it) from /proc, but cannot make its socket this user's. The kernel
// reports each socket's owner through sock_diag (netlink); the lookup is
// by the exact address pair, so it costs a few microseconds a connection.
type ownerListener struct {
	net.Listener
	log *slog.Logger
	uid uint32

	// mu guards warned: refusals are logged once a minute at most.
	mu     sync.Mutex
	warned time.Time
}

// newOwnerListener wraps ln, unless the kernel will not say who owns a
// socket (a sandbox without sock_diag); then ln is returned as it is,
// with a warning, and the token alone keeps other users out.
func newOwnerListener(ln net.Listener, log *slog.Logger) net.Listener {
	l := &ownerListener{Listener: ln, log: log, uid: uint32(os.Geteuid())}
	if err := l.selfTest(); err != nil {
		log.Warn("cannot check who connects to the packager; other local users who read ffmpeg's command line could write to the stream", "err", err)
		return ln
	}
	return l
}

// selfTest looks up a connection of its own.
func (l *ownerListener) selfTest() error {
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		return err
	}
	defer c.Close()
	uid, err := socketOwner(c.LocalAddr(), c.RemoteAddr())
	if err != nil {
		return err
	}
	if uid != l.uid {
		return fmt.Errorf("own socket reported as uid %d, not %d", uid, l.uid)
	}
	return nil
}

func (l *ownerListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		// The peer's socket: its local address is our remote one.
		uid, err := socketOwner(c.RemoteAddr(), c.LocalAddr())
		if err == nil && uid == l.uid {
			return c, nil
		}
		c.Close()
		l.mu.Lock()
		warn := time.Since(l.warned) > time.Minute
		if warn {
			l.warned = time.Now()
		}
		l.mu.Unlock()
		switch {
		case !warn:
		case err != nil:
			l.log.Warn("refused a connection to the packager whose owner is unknown", "remote", c.RemoteAddr().String(), "err", err)
		default:
			l.log.Warn("refused a connection to the packager from a process of another user", "remote", c.RemoteAddr().String(), "uid", uid)
		}
	}
}

func socketOwner(local, remote net.Addr) (uint32, error) {
	s, err := netlink.SocketGet(local, remote)
	if err != nil {
		return 0, fmt.Errorf("look up the owner of %s: %w", local, err)
	}
	return s.UID, nil
}
