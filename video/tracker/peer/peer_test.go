package peer

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/starling-live/starling/video/tracker"
)

func TestMain(m *testing.M) {
	// Close must leave no goroutine behind, pion's included.
	goleak.VerifyTestMain(m)
}

const testOrigin = "http://starling.test"

// relay is just enough of a WebTorrent tracker for two Go peers to meet:
// it answers announces, hands offer i to the i-th other peer and routes
// answers by to_peer_id (shared/notes/p2p.md 3.1). The real tracker is in
// package video/tracker; this one records what it gets.
type relay struct {
	t        testing.TB
	srv      *httptest.Server // nil when mounted elsewhere
	interval int              // seconds, sent in every announce reply
	origin   string           // the only Origin accepted

	mu       sync.Mutex
	conns    map[string]*relayConn // by peer id
	received []received
}

type relayConn struct {
	ws *websocket.Conn
	mu sync.Mutex // one writer at a time
}

func (c *relayConn) send(v any) {
	b, _ := json.Marshal(v)
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.ws.WriteMessage(websocket.TextMessage, b)
}

// received is one message from a peer, raw and decoded.
type received struct {
	raw  []byte
	conn *relayConn
	m    struct {
		NumWant  *int   `json:"numwant"`
		Event    string `json:"event"`
		Action   string `json:"action"`
		InfoHash string `json:"info_hash"`
		PeerID   string `json:"peer_id"`
		Offers   []struct {
			Offer   json.RawMessage `json:"offer"`
			OfferID string          `json:"offer_id"`
		} `json:"offers"`
		Answer   json.RawMessage `json:"answer"`
		OfferID  string          `json:"offer_id"`
		ToPeerID string          `json:"to_peer_id"`
	}
}

func newRelay(t testing.TB, interval int) *relay {
	r := newRelayHandler(t, interval, testOrigin)
	r.srv = httptest.NewServer(r)
	t.Cleanup(r.srv.Close)
	return r
}

// newRelayHandler makes a relay to mount on a server of the caller's; it
// accepts WebSockets from origin only.
func newRelayHandler(t testing.TB, interval int, origin string) *relay {
	return &relay{t: t, interval: interval, origin: origin, conns: map[string]*relayConn{}}
}

func (r *relay) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	up := websocket.Upgrader{CheckOrigin: func(req *http.Request) bool {
		return req.Header.Get("Origin") == r.origin
	}}
	ws, err := up.Upgrade(w, req, nil)
	if err != nil {
		return
	}
	r.serve(&relayConn{ws: ws})
}

func (r *relay) url() string { return "ws" + strings.TrimPrefix(r.srv.URL, "http") + "/tracker" }

func (r *relay) serve(c *relayConn) {
	defer func() {
		_ = c.ws.Close()
		r.mu.Lock()
		for id, cc := range r.conns {
			if cc == c {
				delete(r.conns, id)
			}
		}
		r.mu.Unlock()
	}()
	for {
		_, raw, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		rec := received{raw: raw, conn: c}
		if err := json.Unmarshal(raw, &rec.m); err != nil {
			r.t.Errorf("relay: peer sent invalid JSON %q: %v", raw, err)
			return
		}
		m := rec.m
		r.mu.Lock()
		r.received = append(r.received, rec)
		if m.Answer != nil {
			to := r.conns[m.ToPeerID]
			r.mu.Unlock()
			if to != nil {
				to.send(map[string]any{"action": "announce", "answer": m.Answer, "offer_id": m.OfferID, "peer_id": m.PeerID, "info_hash": m.InfoHash})
			}
			continue
		}
		r.conns[m.PeerID] = c
		var others []*relayConn
		for id, cc := range r.conns {
			if id != m.PeerID {
				others = append(others, cc)
			}
		}
		n := len(r.conns)
		r.mu.Unlock()
		c.send(map[string]any{"action": "announce", "interval": r.interval, "info_hash": m.InfoHash, "complete": 0, "incomplete": n})
		for i, o := range m.Offers {
			if i < len(others) {
				others[i].send(map[string]any{"action": "announce", "offer": o.Offer, "offer_id": o.OfferID, "peer_id": m.PeerID, "info_hash": m.InfoHash})
			}
		}
	}
}

// messages returns what the relay got so far.
func (r *relay) messages() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.received)
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("PEER_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
}

func dial(t testing.TB, r *relay, infoHash string) *Peer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := Dial(ctx, Config{Logger: testLogger(t), TrackerURL: r.url(), Origin: testOrigin, InfoHash: infoHash})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

var testInfoHash = tracker.SwarmInfoHash("http://127.0.0.1:8090/live/index.m3u8", tracker.StreamMain, tracker.StreamShortID(tracker.StreamProps{}))

// connectedPair dials two peers through r and waits until each has an
// open data channel to the other.
func connectedPair(t testing.TB, r *relay) (a, b *Peer) {
	a = dial(t, r, testInfoHash)
	b = dial(t, r, testInfoHash) // b's offers go to a, a answers
	eventually(t, "the data channels to open", 20*time.Second, func() bool {
		return slices.Equal(a.Connected(), []string{b.ID()}) && slices.Equal(b.Connected(), []string{a.ID()})
	})
	return a, b
}

func TestTwoPeersExchangeSegments(t *testing.T) {
	r := newRelay(t, 2)
	a, b := connectedPair(t, r)

	// A live segment of 1 MiB under a media sequence number around 1.8e10.
	// Its first chunk starts with "cstr" and ends with "cend": sent as is,
	// the receiver would take it for a command.
	const seq = int64(18_000_000_123)
	seg := make([]byte, 1<<20)
	_, _ = rand.Read(seg)
	copy(seg, "cstr")
	copy(seg[maxMessageSize-4:], "cend")
	a.AddSegment(seq, seg)
	eventually(t, "b to learn that a has the segment", 10*time.Second, func() bool {
		return slices.Equal(b.Has(a.ID()), []int64{seq})
	})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	got, err := b.Request(ctx, a.ID(), seq)
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, seg) {
		t.Fatalf("got %d bytes, not the %d sent", len(got), len(seg))
	}
	t.Logf("1 MiB over the data channel in %v", elapsed)
	if a.Uploaded() != int64(len(seg)) {
		t.Errorf("a.Uploaded() = %d, want %d", a.Uploaded(), len(seg))
	}

	// The other way, and a segment nobody has.
	small := []byte("a small segment")
	b.AddSegment(-5, small)
	eventually(t, "a to learn that b has the segment", 10*time.Second, func() bool {
		return slices.Equal(a.Has(b.ID()), []int64{-5})
	})
	if got, err := a.Request(ctx, b.ID(), -5); err != nil || !bytes.Equal(got, small) {
		t.Fatalf("a.Request = %q, %v", got, err)
	}
	if _, err := a.Request(ctx, b.ID(), 42); !errors.Is(err, ErrSegmentAbsent) {
		t.Fatalf("request for a missing segment: %v, want ErrSegmentAbsent", err)
	}
	if _, err := a.Request(ctx, "-PM0203-nobodyHere00", 42); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("request to an unknown peer: %v, want ErrNotConnected", err)
	}

	// A request given up early is cancelled at the sender, and the next
	// one on the same channel still gets exactly the segment.
	short, cancelShort := context.WithTimeout(ctx, time.Millisecond)
	_, err = b.Request(short, a.ID(), seq)
	cancelShort()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("request with a 1 ms deadline: %v", err)
	}
	if got, err := b.Request(ctx, a.ID(), seq); err != nil || !bytes.Equal(got, seg) {
		t.Fatalf("request after a cancelled one: %d bytes, %v", len(got), err)
	}

	// Removing a segment is announced.
	a.RemoveSegment(seq)
	eventually(t, "b to learn that a dropped the segment", 10*time.Second, func() bool {
		return len(b.Has(a.ID())) == 0
	})

	// The periodic announce comes on the tracker's interval, without
	// "event", and its offers to an already connected peer are dropped.
	eventually(t, "a periodic announce from each peer", 10*time.Second, func() bool {
		n := map[string]int{}
		for _, m := range r.messages() {
			if m.m.Action == "announce" && m.m.Answer == nil && m.m.Event == "" {
				n[m.m.PeerID]++
			}
		}
		return n[a.ID()] > 0 && n[b.ID()] > 0
	})
	if !slices.Equal(a.Connected(), []string{b.ID()}) {
		t.Fatalf("a.Connected() = %q after re-announces", a.Connected())
	}

	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a to see b leave", 40*time.Second, func() bool { return len(a.Connected()) == 0 })
	if _, err := b.Request(ctx, a.ID(), seq); !errors.Is(err, ErrClosed) {
		t.Fatalf("request on a closed peer: %v, want ErrClosed", err)
	}
}

// TestAnnounceShape checks our messages against what bittorrent-tracker's
// client sends (shared/notes/p2p.md 2.2), field order included.
func TestAnnounceShape(t *testing.T) {
	r := newRelay(t, 120)
	a, b := connectedPair(t, r)

	var started, answer *received
	for _, m := range r.messages() {
		switch {
		case m.m.PeerID == b.ID() && m.m.Event == "started":
			started = &m
		case m.m.PeerID == a.ID() && m.m.Answer != nil:
			answer = &m
		}
	}
	if started == nil || answer == nil {
		t.Fatal("no started announce from b or no answer from a")
	}
	prefix := `{"numwant":5,"uploaded":0,"downloaded":0,"event":"started","action":"announce","info_hash":"` +
		testInfoHash + `","peer_id":"` + b.ID() + `","offers":[{"offer":{"type":"offer","sdp":"v=0\r\n`
	if !strings.HasPrefix(string(started.raw), prefix) {
		t.Errorf("announce starts %.200s\nwant %s", started.raw, prefix)
	}
	t.Logf("started announce: %d bytes", len(started.raw))
	if len(started.m.Offers) != 5 {
		t.Errorf("%d offers, want 5", len(started.m.Offers))
	}
	ids := map[string]bool{}
	for _, o := range started.m.Offers {
		if n := utf8.RuneCountInString(o.OfferID); n != 20 {
			t.Errorf("offer_id of %d characters", n)
		}
		if _, ok := binaryBytes(o.OfferID); !ok {
			t.Errorf("offer_id %q is not a binary string", o.OfferID)
		}
		ids[o.OfferID] = true
		var sdp sdpMessage
		_ = json.Unmarshal(o.Offer, &sdp)
		// Non-trickle: the candidates are in the offer. One application
		// section for the data channel, as a browser's.
		for _, want := range []string{"m=application ", "UDP/DTLS/SCTP webrtc-datachannel", "a=sctp-port:", "a=candidate:", "a=setup:actpass"} {
			if !strings.Contains(sdp.SDP, want) {
				t.Errorf("offer SDP lacks %q:\n%s", want, sdp.SDP)
			}
		}
		if strings.Contains(sdp.SDP, "m=audio") || strings.Contains(sdp.SDP, "m=video") {
			t.Errorf("offer SDP has media sections:\n%s", sdp.SDP)
		}
	}
	if len(ids) != 5 {
		t.Errorf("offer ids repeat: %d distinct", len(ids))
	}
	prefix = `{"action":"announce","info_hash":"` + testInfoHash + `","peer_id":"` + a.ID() + `","to_peer_id":"` + b.ID() + `","answer":{"type":"answer","sdp":"v=0\r\n`
	if !strings.HasPrefix(string(answer.raw), prefix) {
		t.Errorf("answer starts %.200s\nwant %s", answer.raw, prefix)
	}
	if !ids[answer.m.OfferID] {
		t.Error("the answer's offer_id is none of b's")
	}
}

// TestTrackerHostileMessages: what a tracker sends cannot break the peer.
// Each message goes to a peer alone in its swarm; afterwards it must still
// be on the same socket, with no peer connection left over.
func TestTrackerHostileMessages(t *testing.T) {
	r := newRelay(t, 120)
	p := dial(t, r, testInfoHash)
	eventually(t, "the relay to register the peer", 10*time.Second, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.conns[p.ID()] != nil
	})
	r.mu.Lock()
	c := r.conns[p.ID()]
	r.mu.Unlock()

	for _, tc := range []struct {
		name string
		msg  string
	}{
		{"not JSON", `{"action":`},
		{"scrape", `{"action":"scrape","files":{}}`},
		{"other swarm", `{"action":"announce","info_hash":"AAAAAAAAAAAAAAAAAAAA","offer":{"type":"offer","sdp":"x"},"offer_id":"x","peer_id":"-PM0203-aaaaaaaaaaaa"}`},
		{"info_hash array", `{"action":"announce","info_hash":["` + testInfoHash + `"],"offer":{"type":"offer","sdp":"x"},"offer_id":"x","peer_id":"-PM0203-aaaaaaaaaaaa"}`},
		{"from ourselves", `{"action":"announce","info_hash":"` + testInfoHash + `","offer":{"type":"offer","sdp":"x"},"offer_id":"x","peer_id":"` + p.ID() + `"}`},
		{"failure", `{"action":"announce","info_hash":"` + testInfoHash + `","failure reason":"go away"}`},
		{"interval as text", `{"action":"announce","info_hash":"` + testInfoHash + `","interval":"soon"}`},
		{"tiny interval", `{"action":"announce","info_hash":"` + testInfoHash + `","interval":0.001}`},
		{"answer to no offer", `{"action":"announce","info_hash":"` + testInfoHash + `","answer":{"type":"answer","sdp":"x"},"offer_id":"nope","peer_id":"-PM0203-aaaaaaaaaaaa"}`},
		{"offer with a broken SDP", `{"action":"announce","info_hash":"` + testInfoHash + `","offer":{"type":"offer","sdp":"v=0\r\nnonsense"},"offer_id":"\u00f0\u0001","peer_id":"-PM0203-aaaaaaaaaaaa"}`},
		{"offer as text", `{"action":"announce","info_hash":"` + testInfoHash + `","offer":"v=0","offer_id":"x","peer_id":"-PM0203-aaaaaaaaaaaa"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The peer reads messages in order: once it has taken the
			// probe's tracker id, it has handled the message before.
			probe := `{"action":"announce","info_hash":"` + testInfoHash + `","tracker id":"` + tc.name + `"}`
			c.mu.Lock()
			err := c.ws.WriteMessage(websocket.TextMessage, []byte(tc.msg))
			if err == nil {
				err = c.ws.WriteMessage(websocket.TextMessage, []byte(probe))
			}
			c.mu.Unlock()
			if err != nil {
				t.Fatal(err)
			}
			eventually(t, "the probe", 10*time.Second, func() bool {
				p.mu.Lock()
				defer p.mu.Unlock()
				return p.trackerID == tc.name
			})
			eventually(t, "the peer to drop what it started for the message", 10*time.Second, func() bool {
				p.mu.Lock()
				defer p.mu.Unlock()
				return len(p.conns) == len(p.offers) // only our own pending offers remain
			})
		})
	}
	r.mu.Lock()
	still := r.conns[p.ID()] == c
	r.mu.Unlock()
	if !still {
		t.Fatal("the peer left its tracker socket")
	}
}

// TestReconnect: when the tracker drops the socket the peer comes back on
// a new one and announces without an event, as the JS client does.
func TestReconnect(t *testing.T) {
	r := newRelay(t, 120)
	p := dial(t, r, testInfoHash)
	var first *relayConn
	eventually(t, "the first announce", 10*time.Second, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		first = r.conns[p.ID()]
		return first != nil
	})
	_ = first.ws.Close()
	eventually(t, "an announce on a new socket", 20*time.Second, func() bool {
		for _, m := range r.messages() {
			if m.conn != first && m.m.PeerID == p.ID() && m.m.Event == "" && len(m.m.Offers) > 0 {
				return true
			}
		}
		return false
	})
}

func TestDialErrors(t *testing.T) {
	r := newRelay(t, 120)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no URL", Config{InfoHash: testInfoHash}, "TrackerURL is empty"},
		{"short info hash", Config{TrackerURL: r.url(), InfoHash: "abc"}, "want 20"},
		{"bad peer id", Config{TrackerURL: r.url(), InfoHash: testInfoHash, PeerID: "x"}, "want 20"},
		{"origin refused", Config{TrackerURL: r.url(), InfoHash: testInfoHash, Origin: "http://evil.test"}, "Origin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Dial(ctx, tc.cfg)
			if err == nil {
				_ = p.Close()
				t.Fatal("Dial succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

// TestConnectionLimit: a peer whose own unanswered offers fill its limit
// still answers a peer that wants to connect, dropping its oldest offer.
func TestConnectionLimit(t *testing.T) {
	r := newRelay(t, 120)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, err := Dial(ctx, Config{Logger: testLogger(t), TrackerURL: r.url(), Origin: testOrigin, InfoHash: testInfoHash, MaxConns: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	count := func() (conns, offers int) {
		a.mu.Lock()
		defer a.mu.Unlock()
		return len(a.conns), len(a.offers)
	}
	if conns, offers := count(); conns != 5 || offers != 5 {
		t.Fatalf("after the first announce: %d connections, %d offers; want 5 offers alone", conns, offers)
	}
	b := dial(t, r, testInfoHash)
	eventually(t, "a and b to connect", 20*time.Second, func() bool {
		return slices.Equal(a.Connected(), []string{b.ID()})
	})
	if conns, offers := count(); conns > 5 || offers != 4 {
		t.Fatalf("%d connections, %d offers; want at most 5 with 4 offers", conns, offers)
	}
}

// BenchmarkRequest measures one 1 MiB segment from one Go peer to another
// over loopback, with simple-peer's 64 KiB backpressure threshold.
func BenchmarkRequest(b *testing.B) {
	r := newRelay(b, 120)
	a, c := connectedPair(b, r)
	seg := make([]byte, 1<<20)
	_, _ = rand.Read(seg)
	a.AddSegment(1, seg)
	eventually(b, "the announcement", 10*time.Second, func() bool { return slices.Equal(c.Has(a.ID()), []int64{1}) })
	ctx := context.Background()
	b.SetBytes(int64(len(seg)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Request(ctx, a.ID(), 1); err != nil {
			b.Fatal(err)
		}
	}
}
