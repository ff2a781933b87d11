package peer

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// The WebTorrent tracker protocol over WebSocket, client side, as
// bittorrent-tracker 11.2.3 speaks it for p2p-media-loader 2.3.1
// (webtorrent/bittorrent-tracker lib/client/websocket-tracker.js and
// client.js; shared/notes/p2p.md sections 2.2 and 3.1).

const (
	// defaultAnnounceInterval is DEFAULT_ANNOUNCE_INTERVAL: the period until
	// the tracker sends "interval".
	defaultAnnounceInterval = 30 * time.Second
	// minAnnounceInterval bounds what a tracker can ask for: every announce
	// makes new peer connections. JS has no such floor.
	minAnnounceInterval = 2 * time.Second
	// writeTimeout bounds one message to the tracker.
	writeTimeout = 10 * time.Second
	// maxTrackerMessage bounds what we read, like the trackers' 64 KiB.
	maxTrackerMessage = 1 << 20
	// Reconnection after the socket drops: 1 s doubling to 30 s, plus up to
	// half of that at random. Browsers wait 10 s to 1 h plus up to 5 min
	// (_startReconnectTimer); a test or load tool should not.
	reconnectMin = time.Second
	reconnectMax = 30 * time.Second
)

// sdpMessage is an RTCSessionDescriptionInit as simple-peer signals it.
type sdpMessage struct {
	Type string `json:"type"`
	SDP  string `json:"sdp"`
}

type offerMessage struct {
	Offer   sdpMessage `json:"offer"`
	OfferID string     `json:"offer_id"`
}

// announceMessage is what WebSocketTracker.announce sends; the fields are in
// the order JSON.stringify writes them there. uploaded and downloaded stay
// 0 because p2p-media-loader gives the client no getAnnounceOpts.
type announceMessage struct {
	NumWant    int            `json:"numwant"`
	Uploaded   int64          `json:"uploaded"`
	Downloaded int64          `json:"downloaded"`
	Event      string         `json:"event,omitempty"`
	Action     string         `json:"action"`
	InfoHash   string         `json:"info_hash"`
	PeerID     string         `json:"peer_id"`
	TrackerID  string         `json:"trackerid,omitempty"`
	Offers     []offerMessage `json:"offers"`
}

// answerMessage answers a relayed offer (_onAnnounceResponse, "signal").
type answerMessage struct {
	Action    string     `json:"action"`
	InfoHash  string     `json:"info_hash"`
	PeerID    string     `json:"peer_id"`
	ToPeerID  string     `json:"to_peer_id"`
	Answer    sdpMessage `json:"answer"`
	OfferID   string     `json:"offer_id"`
	TrackerID string     `json:"trackerid,omitempty"`
}

// trackerMessage is anything the tracker sends. Fields whose type a tracker
// might get wrong are raw, so that one bad field does not drop the message.
type trackerMessage struct {
	Action      string          `json:"action"`
	InfoHash    json.RawMessage `json:"info_hash"`
	PeerID      string          `json:"peer_id"`
	Offer       *sdpMessage     `json:"offer"`
	Answer      *sdpMessage     `json:"answer"`
	OfferID     string          `json:"offer_id"`
	Interval    json.RawMessage `json:"interval"`
	MinInterval json.RawMessage `json:"min interval"`
	Failure     string          `json:"failure reason"`
	Warning     string          `json:"warning message"`
	TrackerID   string          `json:"tracker id"`
}

// binaryString is the JS "binary string" of b, one character per byte, as
// uint8-util's hex2bin makes ids. The tracker and JSON carry it as text;
// as a Go string it is the UTF-8 of those characters, and encoding/json
// writes and reads it back as the same JS string.
func binaryString(b []byte) string {
	r := make([]rune, len(b))
	for i, c := range b {
		r[i] = rune(c)
	}
	return string(r)
}

// binaryBytes is the reverse of binaryString; false if a character is not
// a byte value.
func binaryBytes(s string) ([]byte, bool) {
	b := make([]byte, 0, len(s))
	for _, r := range s {
		if r > 0xff {
			return nil, false
		}
		b = append(b, byte(r))
	}
	return b, true
}

// idForLog shows an id as text when it is printable ASCII, else in hex.
func idForLog(s string) string {
	b, ok := binaryBytes(s)
	if !ok {
		return strconv.Quote(s)
	}
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return hex.EncodeToString(b)
		}
	}
	return s
}

// socket is the current tracker WebSocket. gorilla/websocket allows one
// writer at a time, and announces and answers come from several
// goroutines; Close may run beside a write.
type socket struct {
	ws  atomic.Pointer[websocket.Conn] // nil while reconnecting
	wmu sync.Mutex                     // held while writing
}

func (s *socket) set(ws *websocket.Conn) { s.ws.Store(ws) }

// close closes the current connection, which ends its reader and any
// write in progress.
func (s *socket) close() {
	if ws := s.ws.Load(); ws != nil {
		_ = ws.Close()
	}
}

func (s *socket) send(v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // as JSON.stringify
	if err := enc.Encode(v); err != nil {
		return err
	}
	msg := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	s.wmu.Lock()
	defer s.wmu.Unlock()
	ws := s.ws.Load()
	if ws == nil {
		return errors.New("not connected to the tracker")
	}
	_ = ws.SetWriteDeadline(time.Now().Add(writeTimeout))
	return ws.WriteMessage(websocket.TextMessage, msg)
}

// dialTracker opens the WebSocket with the Origin header the tracker checks.
func (p *Peer) dialTracker(ctx context.Context) (*websocket.Conn, error) {
	h := http.Header{}
	if p.cfg.Origin != "" {
		h.Set("Origin", p.cfg.Origin)
	}
	ws, resp, err := websocket.DefaultDialer.DialContext(ctx, p.cfg.TrackerURL, h)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("connect to tracker %s: %w (HTTP %s: check the URL and the Origin it allows)", p.cfg.TrackerURL, err, resp.Status)
		}
		return nil, fmt.Errorf("connect to tracker %s: %w", p.cfg.TrackerURL, err)
	}
	ws.SetReadLimit(maxTrackerMessage)
	return ws, nil
}

// runTracker owns the tracker connection: it announces every interval,
// reconnects when the socket drops, and returns when the Peer closes.
func (p *Peer) runTracker(ws *websocket.Conn) {
	defer p.wg.Done()
	for {
		err := p.serveSocket(ws)
		if p.ctx.Err() != nil {
			return
		}
		p.log.Warn("tracker connection lost; reconnecting", "error", err)
		// websocket-tracker.js destroys the offers still waiting for an
		// answer when its socket goes: the answer can no longer come.
		p.dropPendingOffers()
		for retries := 0; ; retries++ {
			base := min(reconnectMin<<min(retries, 10), reconnectMax)
			select {
			case <-p.ctx.Done():
				return
			case <-time.After(base + mrand.N(base/2+1)):
			}
			ws, err = p.dialTracker(p.ctx)
			if err == nil {
				break
			}
			p.log.Warn("tracker reconnect failed; retrying", "error", err)
		}
		p.sock.set(ws)
		// After a reconnect JS announces without an event (_onSocketConnect).
		if err := p.announce(p.ctx, ""); err != nil {
			p.log.Warn("announce after reconnect failed", "error", err)
		}
	}
}

// serveSocket reads ws until it fails, announcing on the interval timer.
func (p *Peer) serveSocket(ws *websocket.Conn) error {
	intervals := make(chan time.Duration, 1)
	readErr := make(chan error, 1)
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		readErr <- p.readTracker(ws, intervals)
	}()
	defer func() {
		_ = ws.Close()
		p.sock.set(nil)
	}()

	interval := defaultAnnounceInterval // Tracker.setInterval() on start
	timer := time.NewTimer(interval)
	defer timer.Stop()
	for {
		select {
		case <-p.ctx.Done():
			_ = ws.Close()
			<-readErr
			return p.ctx.Err()
		case err := <-readErr:
			return err
		case interval = <-intervals:
			// setInterval restarts the periodic announce from now.
			timer.Reset(interval)
		case <-timer.C:
			if err := p.announce(p.ctx, ""); err != nil {
				p.log.Warn("periodic announce failed", "error", err)
			}
			timer.Reset(interval)
		}
	}
}

// readTracker handles the tracker's messages until the socket fails
// (_onSocketData, _onAnnounceResponse).
func (p *Peer) readTracker(ws *websocket.Conn, intervals chan time.Duration) error {
	for {
		_, data, err := ws.ReadMessage()
		if err != nil {
			return err
		}
		var m trackerMessage
		if err := json.Unmarshal(data, &m); err != nil {
			p.log.Warn("invalid tracker message", "error", err)
			continue
		}
		switch m.Action {
		case "announce":
		case "scrape":
			continue // we never scrape
		default:
			// JS treats this as a socket error and reconnects.
			return fmt.Errorf("tracker sent action %q, want announce or scrape", m.Action)
		}
		var infoHash string
		if json.Unmarshal(m.InfoHash, &infoHash) != nil || infoHash != p.cfg.InfoHash {
			continue // another swarm on a shared socket, or no info_hash at all
		}
		if m.PeerID != "" && m.PeerID == p.cfg.PeerID {
			continue // our own offer or answer
		}
		if m.Failure != "" {
			p.log.Warn("tracker failure", "reason", m.Failure)
			continue
		}
		if m.Warning != "" {
			p.log.Warn("tracker warning", "message", m.Warning)
		}
		if d, ok := announceInterval(m); ok {
			select {
			case <-intervals: // keep only the latest
			default:
			}
			intervals <- d
		}
		if m.TrackerID != "" {
			p.setTrackerID(m.TrackerID)
		}
		switch {
		case m.Offer != nil && m.PeerID != "":
			p.onOffer(m.PeerID, m.OfferID, *m.Offer)
		case m.Answer != nil && m.PeerID != "":
			p.onAnswer(m.PeerID, m.OfferID, *m.Answer)
		}
	}
}

// announceInterval reads `data.interval || data['min interval']`, in seconds.
func announceInterval(m trackerMessage) (time.Duration, bool) {
	for _, raw := range []json.RawMessage{m.Interval, m.MinInterval} {
		var s float64
		if json.Unmarshal(raw, &s) == nil && s > 0 && !math.IsInf(s, 0) {
			d := time.Duration(min(s, 24*3600) * float64(time.Second))
			return max(d, minAnnounceInterval), true
		}
	}
	return 0, false
}

func (p *Peer) setTrackerID(id string) {
	p.mu.Lock()
	p.trackerID = id
	p.mu.Unlock()
}

// announce sends an announce with fresh offers, as many as Config.Offers
// allows and the connection limit leaves room for. event is "started" or
// "" for the periodic update.
func (p *Peer) announce(ctx context.Context, event string) error {
	p.mu.Lock()
	n := min(p.cfg.Offers, p.cfg.MaxConns-len(p.conns))
	trackerID := p.trackerID
	p.mu.Unlock()

	offers := p.makeOffers(ctx, max(n, 0))
	msg := announceMessage{
		NumWant:   len(offers),
		Event:     event,
		Action:    "announce",
		InfoHash:  p.cfg.InfoHash,
		PeerID:    p.cfg.PeerID,
		TrackerID: trackerID,
		Offers:    offers,
	}
	if msg.Offers == nil {
		msg.Offers = []offerMessage{}
	}
	if err := p.sock.send(msg); err != nil {
		return fmt.Errorf("announce to tracker: %w", err)
	}
	p.log.Debug("announced", "event", event, "offers", len(offers))
	return nil
}

// makeOffers creates n peer connections with their offers, in parallel as
// _generateOffers does. An offer that fails is left out.
func (p *Peer) makeOffers(ctx context.Context, n int) []offerMessage {
	results := make([]*offerMessage, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			o, err := p.makeOffer(ctx)
			if err != nil {
				if ctx.Err() == nil && !errors.Is(err, ErrClosed) {
					p.log.Warn("create offer failed", "error", err)
				}
				return
			}
			results[i] = o
		})
	}
	wg.Wait()
	var offers []offerMessage
	for _, o := range results {
		if o != nil {
			offers = append(offers, *o)
		}
	}
	return offers
}

// sendAnswer relays our answer to the peer that made the offer.
func (p *Peer) sendAnswer(toPeerID, offerID, sdp string) error {
	p.mu.Lock()
	trackerID := p.trackerID
	p.mu.Unlock()
	return p.sock.send(answerMessage{
		Action:    "announce",
		InfoHash:  p.cfg.InfoHash,
		PeerID:    p.cfg.PeerID,
		ToPeerID:  toPeerID,
		Answer:    sdpMessage{Type: "answer", SDP: sdp},
		OfferID:   offerID,
		TrackerID: trackerID,
	})
}

// newOfferID is 20 random bytes as a binary string
// (hex2bin(arr2hex(randomBytes(20)))).
func newOfferID() string {
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	return binaryString(b)
}
