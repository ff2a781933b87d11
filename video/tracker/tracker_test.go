package tracker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"
	"golang.org/x/time/rate"

	"github.com/starling-live/starling/core/testrig"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Info hashes of the test stream, and one of somebody else's.
const (
	ihMain    = "XGUHNC+rjOQJsI5ORG2h"
	ihOther   = "eohKZ9lJmAenOJz37SRJ"
	ihForeign = "AAAAAAAAAAAAAAAAAAAA"
)

type testTracker struct {
	*Tracker
	url, origin string
}

func startTracker(t *testing.T, cfg Config) *testTracker {
	t.Helper()
	logs := &testrig.LogBuffer{}
	tr := New(Deps{
		Logger:  logs.Logger(),
		Config:  cfg,
		Allowed: func(ih string) bool { return ih == ihMain || ih == ihOther },
		ClientIP: func(r *http.Request) string {
			host, _, _ := net.SplitHostPort(r.RemoteAddr)
			return host
		},
		CheckOrigin: func(r *http.Request) bool {
			o := r.Header.Get("Origin")
			return o == "" || o == "http://"+r.Host
		},
	})
	tr.Start(context.Background())
	srv := httptest.NewServer(tr)
	t.Cleanup(func() {
		tr.Close()
		srv.Close()
	})
	return &testTracker{Tracker: tr, url: "ws" + strings.TrimPrefix(srv.URL, "http"), origin: srv.URL}
}

// client is a test client of the tracker.
type client struct {
	t  *testing.T
	ws *websocket.Conn
	id string
}

func (tt *testTracker) dial(t *testing.T, id string) *client {
	t.Helper()
	h := http.Header{"Origin": {tt.origin}}
	ws, resp, err := websocket.DefaultDialer.Dial(tt.url, h)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	t.Cleanup(func() { ws.Close() })
	return &client{t: t, ws: ws, id: peerID(id)}
}

// peerID pads a name to the 20 characters of a BitTorrent id.
func peerID(name string) string { return fmt.Sprintf("%-20.20s", "-PM0203-"+name) }

// offerID makes a 20-character binary-string id, with code points above
// 127 as the JS client's random bytes have.
func offerID(n int) string { return fmt.Sprintf("q\u00f0S\u008c%016d", n) }

func (c *client) send(v any) {
	c.t.Helper()
	if err := c.ws.WriteJSON(v); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// next reads the next message, failing the test after 5 s.
func (c *client) next() map[string]any {
	c.t.Helper()
	m, err := c.read(5 * time.Second)
	if err != nil {
		c.t.Fatalf("%s read: %v", c.id, err)
	}
	return m
}

func (c *client) read(timeout time.Duration) (map[string]any, error) {
	c.ws.SetReadDeadline(time.Now().Add(timeout))
	var m map[string]any
	err := c.ws.ReadJSON(&m)
	return m, err
}

func (c *client) announce(ih string, offers ...string) map[string]any {
	c.t.Helper()
	os := []map[string]any{}
	for _, id := range offers {
		os = append(os, map[string]any{"offer_id": id, "offer": map[string]any{"type": "offer", "sdp": "v=0 from " + c.id}})
	}
	c.send(map[string]any{"action": "announce", "info_hash": ih, "peer_id": c.id, "numwant": 5, "event": "started", "offers": os})
	return c.next()
}

func (c *client) answer(ih, to, offer string) {
	c.send(map[string]any{"action": "announce", "info_hash": ih, "peer_id": c.id, "to_peer_id": to, "offer_id": offer,
		"answer": map[string]any{"type": "answer", "sdp": "v=0 from " + c.id}})
}

// quiet checks that nothing is waiting for c: a scrape's reply must be the
// next message.
func (c *client) quiet() {
	c.t.Helper()
	c.send(map[string]any{"action": "scrape", "info_hash": ihMain})
	if m := c.next(); m["action"] != "scrape" {
		c.t.Fatalf("%s got an unexpected message: %v", c.id, m)
	}
}

func TestOffersGoToDistinctPeersAndAnswersBackToTheOfferer(t *testing.T) {
	tr := startTracker(t, Config{})
	var others []*client
	for i := range 4 {
		c := tr.dial(t, fmt.Sprintf("peer%d", i))
		r := c.announce(ihMain)
		if r["action"] != "announce" || r["info_hash"] != ihMain || r["interval"] != float64(120) || r["incomplete"] != float64(i+1) {
			t.Fatalf("announce reply %v", r)
		}
		others = append(others, c)
	}
	newcomer := tr.dial(t, "newcomer")
	offers := []string{offerID(1), offerID(2), offerID(3), offerID(4), offerID(5)}
	if r := newcomer.announce(ihMain, offers...); r["incomplete"] != float64(5) {
		t.Fatalf("newcomer's reply %v", r)
	}
	got := map[string]*client{} // offer id -> peer it went to
	for _, c := range others {
		m := c.next()
		if m["peer_id"] != newcomer.id || m["info_hash"] != ihMain || m["offer"] == nil {
			t.Fatalf("%s got %v, want an offer from the newcomer", c.id, m)
		}
		id := m["offer_id"].(string)
		if got[id] != nil {
			t.Fatalf("offer %q went to two peers", id)
		}
		got[id] = c
	}
	if len(got) != 4 {
		t.Fatalf("4 peers got %d distinct offers", len(got))
	}

	// The answer reaches the offerer, and only it.
	var answered string
	for id, c := range got {
		answered = id
		c.answer(ihMain, newcomer.id, id)
		m := newcomer.next()
		if m["peer_id"] != c.id || m["offer_id"] != id || m["answer"] == nil {
			t.Fatalf("newcomer got %v, want %s's answer", m, c.id)
		}
		break
	}
	for _, c := range others {
		c.quiet()
	}

	// Answers nobody asked for are dropped: a replay, an answer from a peer
	// the offer did not go to, and one to a stranger.
	impostor := got[answered]
	for id, c := range got {
		if c != impostor {
			impostor.answer(ihMain, newcomer.id, id) // offer id went to c, not the impostor
			break
		}
	}
	got[answered].answer(ihMain, newcomer.id, answered) // replay
	impostor.answer(ihMain, peerID("nobody"), offerID(9))
	newcomer.quiet()
	testrig.Eventually(t, 5*time.Second, "dropped answers counted", func() (bool, string) {
		st := tr.Stats()
		return st.AnswersDropped == 3 && st.AnswersRelayed == 1 && st.OffersRelayed == 4, fmt.Sprintf("%+v", st)
	})
}

func TestFewerPeersThanOffers(t *testing.T) {
	tr := startTracker(t, Config{})
	a := tr.dial(t, "a")
	a.announce(ihMain, offerID(1), offerID(2))
	b := tr.dial(t, "b")
	b.announce(ihMain, offerID(3), offerID(4), offerID(5))
	// b's offers: only a can take one.
	if m := a.next(); m["peer_id"] != b.id {
		t.Fatalf("a got %v", m)
	}
	a.quiet()
	// Another swarm is another world.
	c := tr.dial(t, "c")
	if r := c.announce(ihOther, offerID(6)); r["incomplete"] != float64(1) {
		t.Fatalf("other swarm reply %v", r)
	}
	a.quiet()
	b.quiet()
}

func TestPeersLeaveWithTheirSocketOrWhenTheyStopAnnouncing(t *testing.T) {
	tr := startTracker(t, Config{PeerTTL: 300 * time.Millisecond})
	a := tr.dial(t, "a")
	a.announce(ihMain)
	b := tr.dial(t, "b")
	b.announce(ihMain)
	b.announce(ihOther) // one socket, two swarms
	if st := tr.Stats(); st.Peers != 3 || st.Swarms != 2 {
		t.Fatalf("stats %+v", st)
	}
	b.ws.Close()
	testrig.Eventually(t, 5*time.Second, "b's peers to go with its socket", func() (bool, string) {
		st := tr.Stats()
		return st.Peers == 1 && st.Swarms == 1, fmt.Sprintf("%+v", st)
	})
	// a keeps its socket open but never announces again.
	testrig.Eventually(t, 5*time.Second, "a to expire", func() (bool, string) {
		st := tr.Stats()
		return st.Peers == 0 && st.Swarms == 0, fmt.Sprintf("%+v", st)
	})
	// A stopped peer leaves at once.
	c := tr.dial(t, "c")
	c.announce(ihMain)
	c.send(map[string]any{"action": "announce", "info_hash": ihMain, "peer_id": c.id, "event": "stopped"})
	if r := c.next(); r["incomplete"] != float64(0) {
		t.Fatalf("after stopped: %v", r)
	}
}

func TestResetEmptiesTheSwarms(t *testing.T) {
	tr := startTracker(t, Config{})
	a := tr.dial(t, "a")
	a.announce(ihMain)
	tr.Reset()
	if st := tr.Stats(); st.Peers != 0 || st.Swarms != 0 {
		t.Fatalf("after reset %+v", st)
	}
	if r := a.announce(ihMain); r["incomplete"] != float64(1) {
		t.Fatalf("announce after reset %v", r)
	}
}

func TestBadInputIsRefusedWithAReason(t *testing.T) {
	tr := startTracker(t, Config{MaxMessageBytes: 8 << 10})
	c := tr.dial(t, "c")
	tests := []struct {
		name   string
		msg    string
		reason string
		ih     string
	}{
		{"malformed JSON", `{"action":"announce",`, "malformed message", ""},
		{"not an object", `[1,2,3]`, "malformed message", ""},
		{"unknown action", `{"action":"hello"}`, "unknown action", ""},
		{"short info hash", `{"action":"announce","info_hash":"abc","peer_id":"` + c.id + `"}`, "info_hash must be", ""},
		{"long peer id", `{"action":"announce","info_hash":"` + ihMain + `","peer_id":"` + c.id + `x"}`, "peer_id must be", ihMain},
		{"wide character", `{"action":"announce","info_hash":"` + ihMain + `","peer_id":"\u4e16` + c.id[1:] + `"}`, "peer_id must be", ihMain},
		{"foreign info hash", `{"action":"announce","info_hash":"` + ihForeign + `","peer_id":"` + c.id + `"}`, "unknown info_hash", ihForeign},
		{"offer without id", `{"action":"announce","info_hash":"` + ihMain + `","peer_id":"` + c.id + `","offers":[{"offer":{"type":"offer"}}]}`, "offer_id", ihMain},
		{"answer without target", `{"action":"announce","info_hash":"` + ihMain + `","peer_id":"` + c.id + `","answer":{"type":"answer"},"offer_id":"` + offerID(1) + `"}`, "to_peer_id", ihMain},
	}
	for _, tt := range tests {
		if err := c.ws.WriteMessage(websocket.TextMessage, []byte(tt.msg)); err != nil {
			t.Fatal(err)
		}
		m := c.next()
		if m["action"] != "announce" || !strings.Contains(fmt.Sprint(m["failure reason"]), tt.reason) || (tt.ih != "" && m["info_hash"] != tt.ih) {
			t.Errorf("%s: got %v, want a failure naming %q", tt.name, m, tt.reason)
		}
	}
	// The socket survives a few mistakes...
	if r := c.announce(ihMain); r["interval"] == nil {
		t.Fatalf("a valid announce after errors: %v", r)
	}
	// ...but not a message over the size limit.
	big := fmt.Sprintf(`{"action":"announce","info_hash":"%s","peer_id":"%s","offers":[{"offer_id":"%s","offer":{"sdp":"%s"}}]}`,
		ihMain, c.id, offerID(1), strings.Repeat("a", 9<<10))
	c.ws.WriteMessage(websocket.TextMessage, []byte(big))
	_, err := c.read(5 * time.Second)
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseMessageTooBig {
		t.Errorf("oversized message: %v, want close 1009", err)
	}

	// Ten protocol errors in a row close the socket.
	d := tr.dial(t, "d")
	for range maxStrikes {
		d.ws.WriteMessage(websocket.TextMessage, []byte("nonsense"))
	}
	for {
		if _, err := d.read(5 * time.Second); err != nil {
			if !websocket.IsCloseError(err, websocket.CloseGoingAway) && !strings.Contains(err.Error(), "EOF") && !strings.Contains(err.Error(), "reset") {
				t.Errorf("after ten errors: %v", err)
			}
			break
		}
	}
}

func TestOriginIsChecked(t *testing.T) {
	tr := startTracker(t, Config{})
	_, resp, err := websocket.DefaultDialer.Dial(tr.url, http.Header{"Origin": {"http://evil.example"}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign origin: %v %v", err, resp)
	}
}

func TestFloodFromOneAddress(t *testing.T) {
	tr := startTracker(t, Config{MaxConnsPerIP: 3, AnnounceRate: rate.Every(time.Hour), AnnounceBurst: 5})
	var cs []*client
	for i := range 3 {
		cs = append(cs, tr.dial(t, fmt.Sprintf("c%d", i)))
	}
	_, resp, err := websocket.DefaultDialer.Dial(tr.url, http.Header{"Origin": {tr.origin}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("fourth socket from one address: %v %v", err, resp)
	}
	// The announce budget is the address's, whichever socket spends it.
	for i := range 5 {
		if r := cs[i%3].announce(ihMain); r["interval"] == nil {
			t.Fatalf("announce %d within the burst refused: %v", i, r)
		}
	}
	r := cs[0].announce(ihMain)
	if !strings.Contains(fmt.Sprint(r["failure reason"]), "slow down") {
		t.Fatalf("announce past the burst: %v", r)
	}
	if tr.Stats().Refused < 2 {
		t.Errorf("refusals not counted: %+v", tr.Stats())
	}
}

func TestSlowClientIsDropped(t *testing.T) {
	tr := startTracker(t, Config{SendQueue: 2, AnnounceRate: rate.Inf})
	slow := tr.dial(t, "slow") // never reads
	slow.send(map[string]any{"action": "announce", "info_hash": ihMain, "peer_id": slow.id})
	fast := tr.dial(t, "fast")
	fast.announce(ihMain)
	// Offers to the slow client pile up until it is cut off; the fast one
	// keeps being served meanwhile.
	for i := range 200 {
		fast.send(map[string]any{"action": "announce", "info_hash": ihMain, "peer_id": fast.id,
			"offers": []map[string]any{{"offer_id": offerID(i), "offer": map[string]any{"type": "offer", "sdp": strings.Repeat("x", 30000)}}}})
		if r := fast.next(); r["action"] != "announce" {
			t.Fatalf("fast client got %v", r)
		}
		if tr.Stats().Peers == 1 {
			return
		}
	}
	t.Fatalf("the slow client was never dropped: %+v", tr.Stats())
}

func TestScrape(t *testing.T) {
	tr := startTracker(t, Config{})
	a := tr.dial(t, "a")
	a.announce(ihMain)
	a.send(map[string]any{"action": "scrape", "info_hash": []string{ihMain, ihOther, ihForeign}})
	m := a.next()
	files, _ := m["files"].(map[string]any)
	if m["action"] != "scrape" || len(files) != 2 || files[ihMain].(map[string]any)["incomplete"] != float64(1) {
		t.Fatalf("scrape: %v", m)
	}
	raw, _ := json.Marshal(m)
	if strings.Contains(string(raw), ihForeign) {
		t.Error("scrape answered for a foreign info hash")
	}
}

// TestPeerIDBelongsToItsFirstSocket: a second socket announcing a
// victim's peer id is refused and never receives the offers meant for
// the victim; once the victim's socket leaves, the id is free again.
func TestPeerIDBelongsToItsFirstSocket(t *testing.T) {
	tr := startTracker(t, Config{})
	victim := tr.dial(t, "victim")
	victim.announce(ihMain)
	thief := tr.dial(t, "thief")
	thief.id = victim.id
	if r := thief.announce(ihMain); r["failure reason"] == nil || !strings.Contains(r["failure reason"].(string), "in use") {
		t.Fatalf("a second socket claiming the victim's id: %v, want a refusal", r)
	}
	newcomer := tr.dial(t, "newcomer")
	newcomer.announce(ihMain, offerID(1))
	if m := victim.next(); m["offer_id"] != offerID(1) || m["peer_id"] != newcomer.id {
		t.Fatalf("the victim got %v, want the newcomer's offer", m)
	}
	thief.quiet()

	victim.ws.Close()
	testrig.Eventually(t, 5*time.Second, "the victim's socket to leave", func() (bool, string) {
		st := tr.Stats()
		return st.Peers == 1, fmt.Sprintf("%+v", st)
	})
	if r := thief.announce(ihMain); r["failure reason"] != nil || r["incomplete"] != float64(2) {
		t.Fatalf("the id after its socket left: %v", r)
	}
}

// TestDisabledRefusesAnnounces: with P2P off, the tracker relays no offer
// and empties its swarms; turned on again, it serves.
func TestDisabledRefusesAnnounces(t *testing.T) {
	tr := startTracker(t, Config{})
	a, b := tr.dial(t, "a"), tr.dial(t, "b")
	a.announce(ihMain)
	tr.SetEnabled(false)
	if st := tr.Stats(); st.Peers != 0 || st.Swarms != 0 {
		t.Errorf("swarms kept with P2P off: %+v", st)
	}
	if r := b.announce(ihMain, offerID(1)); r["failure reason"] == nil || !strings.Contains(r["failure reason"].(string), "off") {
		t.Fatalf("an announce with P2P off: %v", r)
	}
	a.quiet() // no offer reached a
	tr.SetEnabled(true)
	if r := a.announce(ihMain); r["failure reason"] != nil {
		t.Fatalf("an announce with P2P on again: %v", r)
	}
}

// TestOffersReachTheLowestPeer: a newcomer's offers always reach the peer
// with the lowest id, so every page meets the one that pages elect first
// holder; once it leaves, the next lowest takes its place.
func TestOffersReachTheLowestPeer(t *testing.T) {
	tr := startTracker(t, Config{})
	var peers []*client
	for _, name := range []string{"m", "c", "x", "q", "t", "k"} {
		c := tr.dial(t, name)
		c.announce(ihMain)
		peers = append(peers, c)
	}
	lowest := peers[1] // "c"
	offer := 0
	// offerOne announces one offer from a newcomer and reports who got it.
	offerOne := func(name string) *client {
		t.Helper()
		n := tr.dial(t, name)
		offer++
		n.announce(ihMain, offerID(offer))
		for _, c := range peers {
			c.send(map[string]any{"action": "scrape", "info_hash": ihMain})
			if m := c.next(); m["action"] == "announce" && m["offer_id"] == offerID(offer) {
				c.next() // the scrape's reply
				peers = append(peers, n)
				return c
			}
		}
		t.Fatalf("nobody got %s's offer", name)
		return nil
	}
	for i := range 5 {
		if got := offerOne(fmt.Sprintf("z%d", i)); got != lowest {
			t.Fatalf("newcomer %d's one offer went to %s, not the lowest peer %s", i, got.id, lowest.id)
		}
	}
	lowest.ws.Close()
	next := peers[len(peers)-1]
	for _, c := range peers {
		if c != lowest && c.id < next.id {
			next = c
		}
	}
	testrig.Eventually(t, 5*time.Second, "the lowest peer gone", func() (bool, string) {
		st := tr.Stats()
		return st.Peers == len(peers)-1, fmt.Sprint(st.Peers)
	})
	peers = slices.DeleteFunc(peers, func(c *client) bool { return c == lowest })
	if got := offerOne("zz"); got != next {
		t.Errorf("after the lowest left, an offer went to %s, not the next lowest %s", got.id, next.id)
	}
}
