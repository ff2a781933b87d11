package tracker

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"
)

// maxStrikes protocol errors close a socket: a real client makes none, and
// answering a broken one forever costs more than reconnecting it.
const maxStrikes = 10

// conn is one client socket: the reader runs in the HTTP handler's
// goroutine, the writer in its own. Messages to the client go through
// send, so a slow client never blocks the tracker; when send is full the
// client is disconnected.
type conn struct {
	t       *Tracker
	ws      *websocket.Conn
	ip      string
	limiter *rate.Limiter // shared by the address's sockets

	send     chan []byte
	done     chan struct{} // closed by kill
	killOnce sync.Once
	strikes  int // reader goroutine only

	// peers are the (info hash, peer id) pairs announced on this socket.
	// Guarded by Tracker.mu.
	peers map[peerKey]*peer
}

func (c *conn) serve() {
	t := c.t
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.write()
	}()
	defer func() {
		c.kill()
		<-writerDone
		t.dropConn(c)
	}()

	c.ws.SetReadLimit(t.cfg.MaxMessageBytes)
	alive := func() { c.ws.SetReadDeadline(time.Now().Add(2*t.cfg.PingInterval + 10*time.Second)) }
	alive()
	c.ws.SetPongHandler(func(string) error { alive(); return nil })
	for {
		typ, data, err := c.ws.ReadMessage()
		if err != nil {
			// A message over the limit ends here too (close code 1009).
			t.log.Debug("tracker client left", "remote", c.ip, "err", err)
			return
		}
		alive()
		if typ != websocket.TextMessage {
			c.fail("", "the tracker speaks JSON text messages")
			continue
		}
		t.handle(c, data)
		if c.strikes >= maxStrikes {
			t.log.Info("tracker client disconnected after repeated protocol errors", "remote", c.ip)
			return
		}
	}
}

// write sends queued messages and pings until the connection is killed.
func (c *conn) write() {
	ping := time.NewTicker(c.t.cfg.PingInterval)
	defer ping.Stop()
	for {
		select {
		case <-c.done:
			return
		case msg := <-c.send:
			c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if err := c.ws.WriteMessage(websocket.TextMessage, msg); err != nil {
				c.kill()
				return
			}
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(10*time.Second)); err != nil {
				c.kill()
				return
			}
		}
	}
}

// kill ends the connection at once: closing the socket unblocks a writer
// stuck on a client that does not read, and the reader, which then cleans
// up. (gorilla/websocket allows Close beside the other methods.)
func (c *conn) kill() {
	c.killOnce.Do(func() {
		close(c.done)
		c.ws.Close()
	})
}

// goAway tells the client the server is leaving, then ends the connection.
func (c *conn) goAway() {
	c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down"), time.Now().Add(time.Second))
	c.kill()
}

// sendJSON queues a message without blocking; a client whose queue is
// full is disconnected. It reports whether the message was queued.
func (c *conn) sendJSON(v any) bool {
	b, err := json.Marshal(v)
	if err != nil {
		c.t.log.Error("tracker could not encode a message", "err", err)
		return false
	}
	select {
	case <-c.done:
		return false
	default:
	}
	select {
	case c.send <- b:
		return true
	default:
		c.t.log.Info("tracker client disconnected", "remote", c.ip, "err", errSlow)
		c.kill()
		return false
	}
}

// fail answers a protocol error and counts it against the socket.
func (c *conn) fail(infoHash, reason string) {
	c.strikes++
	c.refuse(infoHash, reason)
}

// refuse answers a request the tracker will not serve (a limit, a foreign
// info hash) but that is no protocol error.
func (c *conn) refuse(infoHash, reason string) {
	c.sendJSON(failure{Action: "announce", InfoHash: infoHash, Reason: reason})
}
