package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/starling-live/starling/build/benchkit"
)

// loopback is simulated user i's own address, so that limits per address
// apply to the load as they would to viewers on the Internet (the tracker
// load tool does the same). Linux routes all of 127.0.0.0/8 to lo.
func loopback(i int) net.IP { return net.IPv4(127, 1, byte(i/250), byte(i%250+1)) }

// register creates user i from its own address and returns its access
// token. It waits and retries when the server answers 429, counting those
// answers in limited, so that a registration limit shows in the report
// instead of failing the run.
func register(web string, i int, limited *atomic.Int64) (string, error) {
	hc := &http.Client{
		Transport: &http.Transport{
			DialContext:       (&net.Dialer{LocalAddr: &net.TCPAddr{IP: loopback(i)}}).DialContext,
			DisableKeepAlives: true,
		},
		Timeout: 30 * time.Second,
	}
	body := fmt.Sprintf(`{"displayName":"load-%d"}`, i)
	for attempt := 0; ; attempt++ {
		resp, err := hc.Post(web+"/api/chat/register", "application/json", strings.NewReader(body))
		if err != nil {
			return "", fmt.Errorf("registering user %d: %w", i, err)
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests && attempt < 20 {
			limited.Add(1)
			wait := 5 * time.Second
			if s, err := time.ParseDuration(resp.Header.Get("Retry-After") + "s"); err == nil && s > 0 {
				wait = s
			}
			time.Sleep(wait)
			continue
		}
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("registering user %d: %d %s", i, resp.StatusCode, bytes.TrimSpace(b))
		}
		var u struct {
			AccessToken string `json:"accessToken"`
		}
		if err := json.Unmarshal(b, &u); err != nil || u.AccessToken == "" {
			return "", fmt.Errorf("registering user %d: no access token in %q", i, b)
		}
		return u.AccessToken, nil
	}
}

// client is one simulated chat user with one WebSocket.
type client struct {
	ws *websocket.Conn
	t0 time.Time // the run's clock origin, shared and read-only

	// ready is closed when CONNECTED_USER_INFO arrives, done when read
	// returns.
	ready, done chan struct{}
	readyOnce   sync.Once

	// Counters others read while the reader runs (the progress lines,
	// the wait for a quiet server, the sender's choice of clients).
	events atomic.Int64 // JSON events read
	got    atomic.Int64 // distinct load messages received
	gone   atomic.Bool  // the server closed the connection or it failed

	// Owned by the reader goroutine; others read them once done is
	// closed.
	lat       benchkit.Histogram // send → receipt of each load message
	toStamp   benchkit.Histogram // send → the event's timestamp, set by the server when it accepts the message
	fromStamp benchkit.Histogram // the event's timestamp → receipt: batching, fan-out, writing, reading
	seen      []uint64           // bitset of the load sequence numbers received
	dups      int                // load messages received more than once
	refusals  map[string]int     // CHAT_ACTION error codes sent to this client
	lastEvent string             // the last event that was not CHAT, USER_JOINED or USER_PARTED
	reason    string             // why the connection ended, if gone

	// lastSent is when this client last sent a message, on the t0 clock;
	// only the sender goroutine uses it.
	lastSent time.Duration
}

func dial(web, token string, i int, t0 time.Time) (*client, error) {
	d := websocket.Dialer{
		NetDial:          (&net.Dialer{LocalAddr: &net.TCPAddr{IP: loopback(i)}}).Dial,
		HandshakeTimeout: 30 * time.Second,
		// A browser's socket holds little at a time; chat frames are small.
		ReadBufferSize: 4096, WriteBufferSize: 1024,
	}
	u := "ws" + strings.TrimPrefix(web, "http") + "/ws?accessToken=" + url.QueryEscape(token)
	ws, resp, err := d.Dial(u, http.Header{"Origin": {web}})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("%w (HTTP %s)", err, resp.Status)
		}
		return nil, err
	}
	return &client{ws: ws, t0: t0, ready: make(chan struct{}), done: make(chan struct{}), lastSent: -time.Hour}, nil
}

// read reads frames until the connection ends. closing says the tool
// itself is closing the connections, so an error then is not a drop.
func (c *client) read(closing *atomic.Bool) {
	defer close(c.done)
	buf := make([]byte, 0, 4096)
	for {
		_, r, err := c.ws.NextReader()
		if err == nil {
			buf, err = appendAll(buf[:0], r)
		}
		if err != nil {
			if !closing.Load() {
				c.reason = dropReason(err, c.lastEvent)
				c.gone.Store(true)
			}
			return
		}
		c.frame(buf, time.Since(c.t0))
	}
}

// appendAll is io.ReadAll into a buffer the reader reuses, so that a
// frame costs no allocation once the buffer has grown.
func appendAll(b []byte, r io.Reader) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// frame handles the events of one text frame, one per line, as received
// at now. The common events are recognised without decoding the JSON: a
// reader has to keep up with a hundred thousand of them a second on a
// machine it shares with the server.
func (c *client) frame(b []byte, now time.Duration) {
	for len(b) > 0 {
		var ev []byte
		ev, b, _ = bytes.Cut(b, []byte{'\n'})
		if len(bytes.TrimSpace(ev)) == 0 {
			continue
		}
		c.events.Add(1)
		typ, _ := jsonString(ev, "type")
		switch string(typ) {
		case "CHAT":
			body, _ := jsonString(ev, "body")
			if seq, sent, ok := parseLoad(body); ok {
				c.delivered(ev, seq, sent, now)
			}
		case "USER_JOINED", "USER_PARTED":
		case "CONNECTED_USER_INFO":
			c.lastEvent = "CONNECTED_USER_INFO"
			c.readyOnce.Do(func() { close(c.ready) })
		default:
			var e struct {
				Type, Error, Body string
			}
			json.Unmarshal(ev, &e)
			c.lastEvent = e.Type
			if e.Error != "" {
				c.lastEvent += " " + e.Error
				if c.refusals == nil {
					c.refusals = map[string]int{}
				}
				c.refusals[e.Error]++
			}
		}
	}
}

// maxSeq bounds the bitset against a garbled sequence number.
const maxSeq = 1 << 26

// delivered records load message seq, sent and received at those times
// on the run's clock.
func (c *client) delivered(ev []byte, seq int, sent, now time.Duration) {
	if seq >= maxSeq {
		return
	}
	w, bit := seq/64, uint64(1)<<(seq%64)
	for len(c.seen) <= w {
		c.seen = append(c.seen, 0)
	}
	if c.seen[w]&bit != 0 {
		c.dups++
		return
	}
	c.seen[w] |= bit
	c.got.Add(1)
	c.lat.Record(now - sent)
	// The server's timestamp is on the wall clock, which t0 also carries.
	if ts, ok := jsonString(ev, "timestamp"); ok {
		if at, err := time.Parse(time.RFC3339Nano, string(ts)); err == nil {
			stamp := at.Sub(c.t0)
			c.toStamp.Record(stamp - sent)
			c.fromStamp.Record(now - stamp)
		}
	}
}

func dropReason(err error, last string) string {
	var ce *websocket.CloseError
	var s string
	switch {
	case errors.As(err, &ce):
		s = fmt.Sprintf("close %d %q", ce.Code, ce.Text)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		s = "closed without a close frame"
	default:
		s = err.Error()
	}
	if last != "" {
		s += ", last event " + last
	}
	return s
}

// jsonString finds "key": "value" in a JSON object and returns value as
// it stands in the text, escapes included. It looks at the first such key
// at any depth, which is enough for the server's events: "type" and
// "body" are top-level and the nested user object has neither.
func jsonString(ev []byte, key string) ([]byte, bool) {
	k := `"` + key + `"`
	for off := 0; ; {
		i := bytes.Index(ev[off:], []byte(k))
		if i < 0 {
			return nil, false
		}
		rest := bytes.TrimLeft(ev[off+i+len(k):], " \t\r")
		off += i + len(k)
		if len(rest) == 0 || rest[0] != ':' {
			continue // the text "key" as a value, not a key
		}
		rest = bytes.TrimLeft(rest[1:], " \t\r")
		if len(rest) == 0 || rest[0] != '"' {
			return nil, false
		}
		rest = rest[1:]
		for j := 0; j < len(rest); j++ {
			switch rest[j] {
			case '\\':
				j++
			case '"':
				return rest[:j], true
			}
		}
		return nil, false
	}
}

// loadBody is the body of load message seq sent at sent on the run's
// clock. The server renders it as HTML ("<p>load 12 345</p>"): plain words
// and numbers, so that no Markdown-lite rule changes them.
func loadBody(seq int, sent time.Duration) string {
	return fmt.Sprintf("load %d %d", seq, sent)
}

// parseLoad reads a body written by loadBody back out of the server's
// rendering, in its JSON escaped form.
func parseLoad(body []byte) (seq int, sent time.Duration, ok bool) {
	i := bytes.Index(body, []byte("load "))
	if i < 0 {
		return 0, 0, false
	}
	rest := body[i+len("load "):]
	a, rest, ok := digits(rest)
	if !ok || len(rest) == 0 || rest[0] != ' ' {
		return 0, 0, false
	}
	b, _, ok := digits(rest[1:])
	if !ok {
		return 0, 0, false
	}
	return int(a), time.Duration(b), true
}

func digits(b []byte) (int64, []byte, bool) {
	var n int64
	i := 0
	for ; i < len(b) && i < 18 && b[i] >= '0' && b[i] <= '9'; i++ {
		n = n*10 + int64(b[i]-'0')
	}
	return n, b[i:], i > 0
}
