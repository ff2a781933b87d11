package ingest

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Pauses between failed accepts, as net/http makes them.
const (
	minAcceptPause = 5 * time.Millisecond
	maxAcceptPause = time.Second
)

// backoffListener retries a failing Accept after a growing pause instead
// of returning the error: go-rtmp's Serve retries at once, forever, and
// with the file descriptors used up that burns a core. Each run of
// failures is logged once when it starts and once when it ends.
type backoffListener struct {
	net.Listener
	log *slog.Logger
	// closing is closed by Close, ending a pause.
	closing   chan struct{}
	closeOnce sync.Once
}

func newBackoffListener(ln net.Listener, log *slog.Logger) *backoffListener {
	return &backoffListener{Listener: ln, log: log, closing: make(chan struct{})}
}

func (l *backoffListener) Accept() (net.Conn, error) {
	var pause time.Duration
	failures := 0
	for {
		c, err := l.Listener.Accept()
		if err == nil {
			if failures > 0 {
				l.log.Info("RTMP accepts connections again", "failed_accepts", failures)
			}
			return c, nil
		}
		if errors.Is(err, net.ErrClosed) {
			return nil, err
		}
		failures++
		if pause == 0 {
			pause = minAcceptPause
			l.log.Warn("RTMP cannot accept connections; retrying with pauses (out of file descriptors? raise the limit: ulimit -n, or LimitNOFILE= in a systemd unit)", "err", err)
		} else {
			pause = min(2*pause, maxAcceptPause)
		}
		t := time.NewTimer(pause)
		select {
		case <-t.C:
		case <-l.closing:
			t.Stop()
			return nil, net.ErrClosed
		}
	}
}

func (l *backoffListener) Close() error {
	l.closeOnce.Do(func() { close(l.closing) })
	return l.Listener.Close()
}
