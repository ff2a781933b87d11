package tracker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/starling-live/starling/video/tracker"
)

// The swarms the fuzzed tracker serves, and the peers the harness plays.
const (
	fuzzIH      = "XGUHNC+rjOQJsI5ORG2h"
	fuzzIHOther = "eohKZ9lJmAenOJz37SRJ"
	fuzzForeign = "AAAAAAAAAAAAAAAAAAAA"
	residentID  = "-PM0203-resident0000"
	checkerID   = "-PM0203-checker00000"
	fuzzPeer    = "-PM0203-fuzzpeer0000"
	fuzzPeer2   = "-PM0203-fuzzpeer0001"
	fuzzOffer   = "q\u00f0S\u008c0000000000000001"
	fuzzOffer2  = "q\u00f0S\u008c0000000000000002"
	// maxFuzzFrames bounds the messages one input sends.
	maxFuzzFrames = 16
	// hang is how long the harness waits for the tracker before calling it
	// stuck; replies come in microseconds.
	hang = 10 * time.Second
)

// sentinel is a scrape no seed sends: its reply marks the end of what the
// fuzzed socket's messages caused.
var sentinel = []byte(`{"action":"scrape","info_hash":["` + fuzzIH + `","` + fuzzIHOther + `"]}`)

// FuzzTrackerMessages sends a client's messages to a real Tracker over a
// real WebSocket. The input is split at '\n' into messages (one that
// starts with a NUL byte goes as a binary message without it). Beside the
// fuzzed socket, a resident peer sits in the swarm and answers every offer
// it is relayed.
//
// It checks that every message the tracker sends is one the JS client
// reads as an answer (an action, a reason on a failure, ids of 20
// characters), that offers and answers only ever come from the peers that
// made them, that the tracker still answers a valid announce from a new
// socket afterwards, and that once closed it holds no connection and no
// peer.
func FuzzTrackerMessages(f *testing.F) {
	announce := func(peer string, extra string) string {
		return `{"action":"announce","info_hash":"` + fuzzIH + `","peer_id":"` + peer + `","numwant":5,"event":"started"` + extra + `}`
	}
	offers := func(ids ...string) string {
		var os []string
		for _, id := range ids {
			os = append(os, `{"offer_id":"`+id+`","offer":{"type":"offer","sdp":"v=0"}}`)
		}
		return `,"offers":[` + strings.Join(os, ",") + `]`
	}
	answer := func(from, to, offer string) string {
		return `{"action":"announce","info_hash":"` + fuzzIH + `","peer_id":"` + from + `","to_peer_id":"` + to +
			`","offer_id":"` + offer + `","answer":{"type":"answer","sdp":"v=0"}}`
	}
	seeds := [][]string{
		{announce(fuzzPeer, "")},
		{announce(fuzzPeer, offers(fuzzOffer, fuzzOffer2))},
		// Two peers on one socket: the second's offer may go to the first,
		// which answers it.
		{announce(fuzzPeer, ""), announce(fuzzPeer2, offers(fuzzOffer)), answer(fuzzPeer, fuzzPeer2, fuzzOffer)},
		// Answers nobody asked for, and one that claims the resident's id.
		{announce(fuzzPeer, ""), answer(fuzzPeer, residentID, fuzzOffer)},
		{announce(residentID, offers(fuzzOffer)), answer(residentID, fuzzPeer, fuzzOffer)},
		{announce(fuzzPeer, ""), `{"action":"announce","info_hash":"` + fuzzIH + `","peer_id":"` + fuzzPeer + `","event":"stopped"}`},
		{announce(fuzzPeer, ""), `{"action":"announce","info_hash":"` + fuzzIH + `","peer_id":"` + fuzzPeer + `","event":"completed"}`},
		{announce(fuzzPeer, offers(fuzzOffer)+`,"numwant":-1`)},
		{`{"action":"announce","info_hash":"` + fuzzIHOther + `","peer_id":"` + fuzzPeer + `"}`, announce(fuzzPeer, "")},
		{`{"action":"scrape","info_hash":"` + fuzzIH + `"}`, `{"action":"scrape"}`, `{"action":"scrape","info_hash":["` + fuzzForeign + `",1]}`},
		{`{"action":"announce","info_hash":"` + fuzzForeign + `","peer_id":"` + fuzzPeer + `"}`},
		{`{"action":"announce","info_hash":"abc","peer_id":"` + fuzzPeer + `"}`},
		{`{"action":"announce","info_hash":"` + fuzzIH + `","peer_id":"\u4e16` + fuzzPeer[1:] + `"}`},
		{`{"action":"announce","info_hash":"` + fuzzIH + `","peer_id":"` + fuzzPeer + `","offers":[{"offer":{"type":"offer"}}]}`},
		{`{"action":"announce",`, `[1,2,3]`, `{"action":"hello"}`, "\x00binary"},
		{strings.Repeat(`nonsense`+"\n", 10)},
	}
	for _, s := range seeds {
		f.Add([]byte(strings.Join(s, "\n")))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		h := startFuzzTracker(t)
		res := h.resident(t)
		sent := parseFrames(in)

		a := h.dial(t)
		for _, fr := range sent.frames {
			typ := websocket.TextMessage
			if len(fr) > 0 && fr[0] == 0 {
				typ, fr = websocket.BinaryMessage, fr[1:]
			}
			if a.WriteMessage(typ, fr) != nil {
				break // the tracker closed the socket; the checker below says whether it still serves
			}
		}
		if a.WriteMessage(websocket.TextMessage, sentinel) == nil {
			a.SetReadDeadline(time.Now().Add(hang))
			for {
				_, msg, err := a.ReadMessage()
				if err != nil {
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() {
						t.Fatalf("the tracker did not answer within %s", hang)
					}
					break // closed: too many protocol errors, or a message too big
				}
				m := checkMessage(t, msg)
				if m.isRelay() {
					m.checkRelayTo(t, "the fuzzed socket", sent)
				}
				if isSentinelReply(m) {
					break
				}
			}
		}

		// A newcomer is still served, and counted.
		c := h.dial(t)
		if err := c.WriteMessage(websocket.TextMessage, []byte(announce(checkerID, ""))); err != nil {
			t.Fatalf("the checker cannot send: %v", err)
		}
		c.SetReadDeadline(time.Now().Add(hang))
		_, msg, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("no reply to a valid announce after the fuzzed messages: %v", err)
		}
		m := checkMessage(t, msg)
		if m.Action != "announce" || m.Reason != nil || m.InfoHash != fuzzIH || m.Interval != 120 || m.Complete+m.Incomplete < 1 {
			t.Fatalf("a valid announce after the fuzzed messages got %s", msg)
		}
		if st := h.tr.Stats(); st.Peers < m.Complete+m.Incomplete || st.Connections < 1 || st.Connections > 3 {
			t.Fatalf("stats %+v disagree with the reply %s and the 1 to 3 open sockets", st, msg)
		}

		a.Close()
		c.Close()
		h.close(t)
		res.wait(t)
		if st := h.tr.Stats(); st.Connections != 0 || st.Peers != 0 {
			t.Fatalf("after Close the tracker still counts %+v", st)
		}
	})
}

// fuzzTracker is a Tracker on a test server, with the production defaults.
type fuzzTracker struct {
	tr        *tracker.Tracker
	srv       *httptest.Server
	url       string
	closeOnce sync.Once
}

func startFuzzTracker(t *testing.T) *fuzzTracker {
	t.Helper()
	tr := tracker.New(tracker.Deps{
		Logger:  slog.New(slog.DiscardHandler),
		Allowed: func(ih string) bool { return ih == fuzzIH || ih == fuzzIHOther },
		ClientIP: func(r *http.Request) string {
			host, _, _ := net.SplitHostPort(r.RemoteAddr)
			return host
		},
	})
	tr.Start(context.Background())
	srv := httptest.NewServer(tr)
	h := &fuzzTracker{tr: tr, srv: srv, url: "ws" + strings.TrimPrefix(srv.URL, "http")}
	// For an iteration that fails before it closes the tracker itself.
	t.Cleanup(func() { h.close(t) })
	return h
}

func (h *fuzzTracker) close(t *testing.T) {
	t.Helper()
	h.closeOnce.Do(func() {
		if err := h.tr.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		h.srv.Close()
	})
}

func (h *fuzzTracker) dial(t *testing.T) *websocket.Conn {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(h.url, nil)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	t.Cleanup(func() { ws.Close() })
	return ws
}

// resident is a well-behaved peer in the fuzzed swarm: it answers every
// offer relayed to it, and never offers, so it must never get an answer.
type resident struct {
	ws   *websocket.Conn
	done chan struct{}
	// problems are what its reader saw wrong, read after done.
	problems []string
}

func (h *fuzzTracker) resident(t *testing.T) *resident {
	t.Helper()
	r := &resident{ws: h.dial(t), done: make(chan struct{})}
	if err := r.ws.WriteMessage(websocket.TextMessage, []byte(`{"action":"announce","info_hash":"`+fuzzIH+`","peer_id":"`+residentID+`","numwant":5,"event":"started","offers":[]}`)); err != nil {
		t.Fatal(err)
	}
	r.ws.SetReadDeadline(time.Now().Add(hang))
	if _, msg, err := r.ws.ReadMessage(); err != nil || !bytes.Contains(msg, []byte(`"interval":120`)) {
		t.Fatalf("the resident's announce: %v %s", err, msg)
	}
	r.ws.SetReadDeadline(time.Time{})
	go r.run()
	return r
}

func (r *resident) run() {
	defer close(r.done)
	for {
		_, msg, err := r.ws.ReadMessage()
		if err != nil {
			return
		}
		var m trackerMessage
		if json.Unmarshal(msg, &m) != nil || m.Action != "announce" || m.Reason != nil {
			r.problems = append(r.problems, fmt.Sprintf("the resident got %s", msg))
			continue
		}
		switch {
		case m.Answer != nil:
			r.problems = append(r.problems, fmt.Sprintf("the resident never offers, but got an answer: %s", msg))
		case m.Offer != nil:
			if m.InfoHash != fuzzIH || !tracker.ValidID(m.PeerID) || !tracker.ValidID(m.OfferID) {
				r.problems = append(r.problems, fmt.Sprintf("the resident got a malformed offer: %s", msg))
				continue
			}
			ans, _ := json.Marshal(map[string]any{"action": "announce", "info_hash": fuzzIH, "peer_id": residentID,
				"to_peer_id": m.PeerID, "offer_id": m.OfferID, "answer": map[string]string{"type": "answer", "sdp": "v=0"}})
			if r.ws.WriteMessage(websocket.TextMessage, ans) != nil {
				return
			}
		}
	}
}

// wait reports what the resident saw once the tracker has closed it.
func (r *resident) wait(t *testing.T) {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(hang):
		t.Fatalf("the resident's socket is still open %s after Close", hang)
	}
	for _, p := range r.problems {
		t.Error(p)
	}
}

// sentFrames is what the fuzzed socket sent, as far as it parses.
type sentFrames struct {
	frames [][]byte
	// peers are the peer ids it announced; offers its offer ids.
	peers, offers map[string]bool
}

func parseFrames(in []byte) sentFrames {
	s := sentFrames{peers: map[string]bool{}, offers: map[string]bool{}}
	for fr := range bytes.SplitSeq(in, []byte{'\n'}) {
		if len(s.frames) == maxFuzzFrames {
			break
		}
		s.frames = append(s.frames, fr)
		var req struct {
			PeerID string `json:"peer_id"`
			Offers []struct {
				OfferID string `json:"offer_id"`
			} `json:"offers"`
		}
		if json.Unmarshal(fr, &req) != nil {
			continue
		}
		s.peers[req.PeerID] = true
		for _, o := range req.Offers {
			s.offers[o.OfferID] = true
		}
	}
	return s
}

// trackerMessage is every field of what the tracker sends.
type trackerMessage struct {
	raw        []byte
	Action     string                     `json:"action"`
	Reason     *string                    `json:"failure reason"`
	InfoHash   string                     `json:"info_hash"`
	Interval   int                        `json:"interval"`
	Complete   int                        `json:"complete"`
	Incomplete int                        `json:"incomplete"`
	Offer      json.RawMessage            `json:"offer"`
	Answer     json.RawMessage            `json:"answer"`
	OfferID    string                     `json:"offer_id"`
	PeerID     string                     `json:"peer_id"`
	Files      map[string]json.RawMessage `json:"files"`
}

func (m trackerMessage) isRelay() bool { return m.Offer != nil || m.Answer != nil }

// checkMessage checks what the JS client needs of any message: an
// action it knows, a reason on a failure, info hashes of 20 characters.
func checkMessage(t *testing.T, msg []byte) trackerMessage {
	t.Helper()
	m := trackerMessage{raw: msg}
	if err := json.Unmarshal(msg, &m); err != nil {
		t.Fatalf("the tracker sent something that is not a JSON object (%v): %q", err, msg)
	}
	switch {
	case m.Action == "scrape":
		if m.Files == nil {
			t.Fatalf("a scrape reply without files: %s", msg)
		}
		for ih := range m.Files {
			if ih != fuzzIH && ih != fuzzIHOther {
				t.Fatalf("a scrape reply names an info hash the tracker does not serve: %s", msg)
			}
		}
	case m.Action != "announce":
		t.Fatalf("a message without the action the client expects: %s", msg)
	case m.Reason != nil:
		if *m.Reason == "" || m.isRelay() || (m.InfoHash != "" && !tracker.ValidID(m.InfoHash)) {
			t.Fatalf("a malformed failure: %s", msg)
		}
	case m.isRelay():
		if !tracker.ValidID(m.InfoHash) || !tracker.ValidID(m.PeerID) || !tracker.ValidID(m.OfferID) {
			t.Fatalf("a relay without the ids the client needs: %s", msg)
		}
		if m.Offer != nil && m.Answer != nil {
			t.Fatalf("a relay with both an offer and an answer: %s", msg)
		}
		for _, sdp := range []json.RawMessage{m.Offer, m.Answer} {
			if sdp != nil && (len(sdp) == 0 || sdp[0] != '{') {
				t.Fatalf("a relayed offer or answer that is not an object: %s", msg)
			}
		}
	default:
		if m.Interval != 120 || !tracker.ValidID(m.InfoHash) || m.Complete < 0 || m.Incomplete < 0 {
			t.Fatalf("a malformed announce reply: %s", msg)
		}
	}
	return m
}

// checkRelayTo checks an offer or answer relayed to the fuzzed socket: an
// offer comes from one of its own peers (only it offers), and an answer
// answers one of its offers, from the resident or one of its own peers.
func (m trackerMessage) checkRelayTo(t *testing.T, who string, sent sentFrames) {
	t.Helper()
	if m.Offer != nil && !sent.peers[m.PeerID] {
		t.Fatalf("%s got an offer from a peer that made none: %s", who, m.raw)
	}
	if m.Answer != nil && (!sent.offers[m.OfferID] || (m.PeerID != residentID && !sent.peers[m.PeerID])) {
		t.Fatalf("%s got an answer to an offer it did not make: %s", who, m.raw)
	}
}

func isSentinelReply(m trackerMessage) bool {
	return m.Action == "scrape" && len(m.Files) == 2 && m.Files[fuzzIH] != nil && m.Files[fuzzIHOther] != nil
}
