// Package tracker is the WebTorrent tracker embedded in Starling: viewers'
// pages (p2p-media-loader) announce to it over a WebSocket, and it relays
// their WebRTC offers to other viewers of the same rendition and the
// answers back, so that viewers can fetch segments from each other.
//
// The tracker only introduces peers; no video passes through it. It keeps
// answers to the peer that made the offer (an answer is forwarded only if
// that offer was relayed to the answering peer, as aquatic does), accepts
// only the info hashes of the server's own stream, and limits what one
// address can do.
package tracker

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/time/rate"
)

// Config tunes the tracker. Zero fields take the defaults in parentheses.
type Config struct {
	// Interval is how often clients are told to announce again (2 min).
	// Every announce opens new WebRTC offers, so longer means less churn;
	// newcomers still meet everyone, because their first announce offers
	// to the peers already there.
	Interval time.Duration
	// PeerTTL drops a peer that has not announced for this long
	// (2 x Interval + 30 s): a page can destroy its P2P engine and leave
	// the socket, which the browser pools, open.
	PeerTTL time.Duration
	// OfferTTL is how long an answer to a relayed offer is accepted
	// (60 s; the JS client gives up on an offer after 50 s).
	OfferTTL time.Duration
	// MaxOffers caps the offers relayed per announce (5, what the client
	// sends).
	MaxOffers int
	// MaxMessageBytes caps one message (64 KiB; an announce with five
	// offers is about 4 KiB).
	MaxMessageBytes int64
	// MaxConnsPerIP caps sockets per client address (64: viewers behind
	// one NAT share an address).
	MaxConnsPerIP int
	// AnnounceRate and AnnounceBurst limit announces and answers per
	// client address (5/s, 60).
	AnnounceRate  rate.Limit
	AnnounceBurst int
	// MaxSwarmsPerConn caps the swarms one socket joins (8).
	MaxSwarmsPerConn int
	// MaxPeers caps peers in all swarms together (50 000).
	MaxPeers int
	// PingInterval is how often idle sockets are pinged; one that does not
	// answer for twice as long is closed (30 s).
	PingInterval time.Duration
	// SendQueue is how many messages may wait for a slow client before it
	// is disconnected (32).
	SendQueue int
}

func (c Config) withDefaults() Config {
	dur := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	num := func(n *int, v int) {
		if *n == 0 {
			*n = v
		}
	}
	dur(&c.Interval, 2*time.Minute)
	dur(&c.PeerTTL, 2*c.Interval+30*time.Second)
	dur(&c.OfferTTL, time.Minute)
	dur(&c.PingInterval, 30*time.Second)
	num(&c.MaxOffers, 5)
	num(&c.MaxConnsPerIP, 64)
	num(&c.AnnounceBurst, 60)
	num(&c.MaxSwarmsPerConn, 8)
	num(&c.MaxPeers, 50_000)
	num(&c.SendQueue, 32)
	if c.MaxMessageBytes == 0 {
		c.MaxMessageBytes = 64 << 10
	}
	if c.AnnounceRate == 0 {
		c.AnnounceRate = 5
	}
	return c
}

// Deps are what a Tracker needs.
type Deps struct {
	Logger *slog.Logger
	Config Config
	// Allowed reports whether an info hash is one of the live stream's.
	Allowed func(infoHash string) bool
	// ClientIP is the address limits apply to (the proxy-aware one).
	ClientIP func(*http.Request) string
	// CheckOrigin reports whether a browser page from the request's Origin
	// may connect.
	CheckOrigin func(*http.Request) bool
}

// Stats are the tracker's counters.
type Stats struct {
	Connections    int    `json:"connections"`
	Swarms         int    `json:"swarms"`
	Peers          int    `json:"peers"`
	Announces      uint64 `json:"announces"`
	OffersRelayed  uint64 `json:"offersRelayed"`
	AnswersRelayed uint64 `json:"answersRelayed"`
	AnswersDropped uint64 `json:"answersDropped"`
	Refused        uint64 `json:"refused"`
}

// Tracker is the WebTorrent tracker. It is an http.Handler for the
// WebSocket endpoint.
type Tracker struct {
	log      *slog.Logger
	cfg      Config
	deps     Deps
	upgrader websocket.Upgrader

	// mu guards everything below it, and the peer fields of every conn.
	mu     sync.Mutex
	swarms map[string]*swarm
	peers  int
	ips    map[string]*ipState
	conns  map[*conn]struct{}
	closed bool

	// wg counts connection goroutines and the sweeper.
	wg     sync.WaitGroup
	cancel context.CancelFunc

	// disabled refuses announces: P2P is off.
	disabled atomic.Bool

	announces, offersRelayed, answersRelayed, answersDropped, refused atomic.Uint64
}

type ipState struct {
	conns   int
	limiter *rate.Limiter
	idle    time.Time // when conns dropped to 0
}

// New returns a Tracker. Start it before serving.
func New(d Deps) *Tracker {
	t := &Tracker{
		log:    d.Logger,
		cfg:    d.Config.withDefaults(),
		deps:   d,
		swarms: map[string]*swarm{},
		ips:    map[string]*ipState{},
		conns:  map[*conn]struct{}{},
	}
	t.upgrader = websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		// Idle sockets share write buffers; read buffers come from the
		// HTTP server's connection.
		WriteBufferPool: &sync.Pool{},
		CheckOrigin:     d.CheckOrigin,
	}
	return t
}

// Start begins dropping peers that stopped announcing.
func (t *Tracker) Start(ctx context.Context) {
	ctx, t.cancel = context.WithCancel(ctx)
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		tick := time.NewTicker(max(t.cfg.PeerTTL/4, 10*time.Millisecond))
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-tick.C:
				t.sweep(now)
			}
		}
	}()
}

// Close disconnects every client and waits for their goroutines.
func (t *Tracker) Close() error {
	t.mu.Lock()
	t.closed = true
	conns := make([]*conn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	for _, c := range conns {
		c.goAway()
	}
	if t.cancel != nil {
		t.cancel()
	}
	t.wg.Wait()
	return nil
}

// Stats returns the counters.
func (t *Tracker) Stats() Stats {
	t.mu.Lock()
	st := Stats{Connections: len(t.conns), Swarms: len(t.swarms), Peers: t.peers}
	t.mu.Unlock()
	st.Announces = t.announces.Load()
	st.OffersRelayed = t.offersRelayed.Load()
	st.AnswersRelayed = t.answersRelayed.Load()
	st.AnswersDropped = t.answersDropped.Load()
	st.Refused = t.refused.Load()
	return st
}

// Reset empties every swarm, as when a broadcast starts or ends: viewers
// announce again when their player restarts, into the new broadcast's
// swarms. Sockets stay open.
func (t *Tracker) Reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, s := range t.swarms {
		for _, p := range s.list {
			delete(p.conn.peers, peerKey{s.infoHash, p.id})
		}
	}
	t.swarms = map[string]*swarm{}
	t.peers = 0
}

// SetEnabled turns P2P on or off. Off, announces are refused and the
// swarms are emptied, so that no offer is relayed; sockets stay open, and
// pages play over HTTP.
func (t *Tracker) SetEnabled(on bool) {
	t.disabled.Store(!on)
	if !on {
		t.Reset()
	}
}

// ServeHTTP upgrades a client to a WebSocket and serves it from goroutines
// of its own: the HTTP server's goroutine, with its deep stack and
// buffers, is released, which matters at thousands of viewers.
func (t *Tracker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ip := t.deps.ClientIP(r)
	t.mu.Lock()
	st := t.ips[ip]
	if st == nil {
		st = &ipState{limiter: rate.NewLimiter(t.cfg.AnnounceRate, t.cfg.AnnounceBurst)}
		t.ips[ip] = st
	}
	refused := t.closed || st.conns >= t.cfg.MaxConnsPerIP
	if !refused {
		st.conns++
	}
	t.mu.Unlock()
	if refused {
		t.refused.Add(1)
		http.Error(w, "too many tracker connections from your address", http.StatusTooManyRequests)
		return
	}

	ws, err := t.upgrader.Upgrade(w, r, nil)
	if err != nil {
		// The upgrader has answered: 403 for a foreign origin, 400 else.
		t.log.Debug("tracker upgrade failed", "remote", ip, "err", err)
		t.releaseIP(ip)
		return
	}
	c := &conn{
		t:       t,
		ws:      ws,
		ip:      ip,
		limiter: st.limiter,
		send:    make(chan []byte, t.cfg.SendQueue),
		done:    make(chan struct{}),
		peers:   map[peerKey]*peer{},
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		ws.Close()
		t.releaseIP(ip)
		return
	}
	t.conns[c] = struct{}{}
	t.wg.Add(1)
	t.mu.Unlock()
	go func() {
		defer t.wg.Done()
		defer t.releaseIP(ip)
		c.serve()
	}()
}

func (t *Tracker) releaseIP(ip string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if st := t.ips[ip]; st != nil {
		st.conns--
		if st.conns == 0 {
			st.idle = time.Now()
		}
	}
}

// sweep drops peers that stopped announcing, stale expected answers, and
// the rate limits of addresses gone for a while.
func (t *Tracker) sweep(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for ih, s := range t.swarms {
		for i := 0; i < len(s.list); {
			p := s.list[i]
			if now.Sub(p.lastSeen) > t.cfg.PeerTTL {
				t.removePeerLocked(s, p)
				continue // the last peer moved to index i
			}
			for k, deadline := range p.expect {
				if now.After(deadline) {
					delete(p.expect, k)
				}
			}
			i++
		}
		if len(s.list) == 0 {
			delete(t.swarms, ih)
		}
	}
	for ip, st := range t.ips {
		if st.conns == 0 && now.Sub(st.idle) > time.Minute {
			delete(t.ips, ip)
		}
	}
}

// handle serves one message of c.
func (t *Tracker) handle(c *conn, data []byte) {
	var req request
	if err := json.Unmarshal(data, &req); err != nil {
		c.fail("", "malformed message: the tracker speaks JSON (WebTorrent tracker protocol)")
		return
	}
	switch req.Action {
	case "announce":
		t.announce(c, &req)
	case "scrape":
		t.scrape(c, &req)
	default:
		c.fail("", "unknown action: use announce or scrape")
	}
}

func (t *Tracker) announce(c *conn, req *request) {
	ihs, ok := infoHashes(req.InfoHash)
	if !ok || len(ihs) != 1 || !validID(ihs[0]) {
		c.fail("", "info_hash must be a string of 20 characters")
		return
	}
	ih := ihs[0]
	if !validID(req.PeerID) {
		c.fail(ih, "peer_id must be a string of 20 characters")
		return
	}
	if !c.limiter.Allow() {
		t.refused.Add(1)
		c.refuse(ih, "too many announces from your address: slow down")
		return
	}
	if t.disabled.Load() {
		t.refused.Add(1)
		c.refuse(ih, "peer-to-peer sharing is off on this server: playing over HTTP")
		return
	}
	if !t.deps.Allowed(ih) {
		t.refused.Add(1)
		c.refuse(ih, "unknown info_hash: this tracker serves only this server's live stream")
		return
	}
	t.announces.Add(1)
	switch {
	case req.Answer != nil:
		t.relayAnswer(c, ih, req)
	case req.Event == "stopped":
		t.mu.Lock()
		if s := t.swarms[ih]; s != nil {
			if p := s.peers[req.PeerID]; p != nil && p.conn == c {
				t.removePeerLocked(s, p)
			}
		}
		reply := t.replyLocked(ih)
		t.mu.Unlock()
		c.sendJSON(reply)
	default:
		t.join(c, ih, req)
	}
}

// join adds or refreshes the announcing peer and relays its offers, each
// to a different random peer of the swarm.
func (t *Tracker) join(c *conn, ih string, req *request) {
	offers := req.Offers
	for _, o := range offers {
		if !validID(o.OfferID) || !isObject(o.Offer) {
			c.fail(ih, "each offer needs an offer_id of 20 characters and an offer object")
			return
		}
	}
	now := time.Now()
	t.mu.Lock()
	s := t.swarms[ih]
	if s == nil {
		s = &swarm{infoHash: ih, peers: map[string]*peer{}}
		t.swarms[ih] = s
	}
	p := s.peers[req.PeerID]
	key := peerKey{ih, req.PeerID}
	switch {
	case p == nil:
		if t.peers >= t.cfg.MaxPeers || len(c.peers) >= t.cfg.MaxSwarmsPerConn {
			if len(s.list) == 0 {
				delete(t.swarms, ih)
			}
			t.mu.Unlock()
			t.refused.Add(1)
			c.refuse(ih, "the tracker is full: playing over HTTP")
			return
		}
		p = &peer{id: req.PeerID, conn: c, expect: map[expectKey]time.Time{}}
		s.add(p)
		c.peers[key] = p
		t.peers++
	case p.conn != c:
		// An id belongs to the socket that announced it first, until that
		// socket leaves (dropConn removes its peers): a second socket
		// claiming it would receive the offers meant for its owner.
		t.mu.Unlock()
		t.refused.Add(1)
		c.refuse(ih, "peer_id is in use on another connection: pick a new one")
		return
	}
	p.lastSeen = now
	if req.Event == "completed" {
		p.complete = true
	}
	reply := t.replyLocked(ih)

	n := min(len(offers), t.cfg.MaxOffers)
	if req.NumWant != nil {
		n = min(n, max(*req.NumWant, 0))
	}
	targets := s.targets(p, n)
	deadline := now.Add(t.cfg.OfferTTL)
	if len(p.expect) > 8*t.cfg.MaxOffers {
		for k, d := range p.expect {
			if now.After(d) {
				delete(p.expect, k)
			}
		}
	}
	for i, tg := range targets {
		p.expect[expectKey{tg.id, offers[i].OfferID}] = deadline
	}
	t.mu.Unlock()

	c.sendJSON(reply)
	for i, tg := range targets {
		if tg.conn.sendJSON(relay{Action: "announce", Offer: offers[i].Offer, OfferID: offers[i].OfferID, PeerID: p.id, InfoHash: ih}) {
			t.offersRelayed.Add(1)
		}
	}
}

// relayAnswer forwards an answer to the peer whose offer it answers, if
// that offer was relayed to the answering peer; anything else is dropped.
func (t *Tracker) relayAnswer(c *conn, ih string, req *request) {
	if !validID(req.ToPeerID) || !validID(req.OfferID) || !isObject(req.Answer) {
		c.fail(ih, "an answer needs to_peer_id and offer_id of 20 characters and an answer object")
		return
	}
	t.mu.Lock()
	var target *peer
	if s := t.swarms[ih]; s != nil {
		from, to := s.peers[req.PeerID], s.peers[req.ToPeerID]
		if from != nil && from.conn == c && to != nil {
			k := expectKey{from.id, req.OfferID}
			if deadline, ok := to.expect[k]; ok {
				delete(to.expect, k)
				if !time.Now().After(deadline) {
					target = to
				}
			}
		}
	}
	t.mu.Unlock()
	if target == nil {
		t.answersDropped.Add(1)
		t.log.Debug("tracker dropped an unexpected answer", "remote", c.ip)
		return
	}
	if target.conn.sendJSON(relay{Action: "announce", Answer: req.Answer, OfferID: req.OfferID, PeerID: req.PeerID, InfoHash: ih}) {
		t.answersRelayed.Add(1)
	}
}

func (t *Tracker) scrape(c *conn, req *request) {
	ihs, ok := infoHashes(req.InfoHash)
	if !ok {
		c.fail("", "info_hash must be a string or a list of strings")
		return
	}
	if !c.limiter.Allow() {
		t.refused.Add(1)
		c.refuse("", "too many requests from your address: slow down")
		return
	}
	files := map[string]scrapeStats{}
	t.mu.Lock()
	if len(ihs) == 0 {
		for ih := range t.swarms {
			ihs = append(ihs, ih)
		}
	}
	for _, ih := range ihs {
		if validID(ih) && t.deps.Allowed(ih) {
			var st scrapeStats
			if s := t.swarms[ih]; s != nil {
				st.Complete, st.Incomplete = s.counts()
			}
			files[ih] = st
		}
	}
	t.mu.Unlock()
	c.sendJSON(scrapeReply{Action: "scrape", Files: files})
}

func (t *Tracker) replyLocked(ih string) announceReply {
	r := announceReply{Action: "announce", Interval: int(t.cfg.Interval / time.Second), InfoHash: ih}
	if s := t.swarms[ih]; s != nil {
		r.Complete, r.Incomplete = s.counts()
	}
	return r
}

func (t *Tracker) removePeerLocked(s *swarm, p *peer) {
	s.remove(p)
	delete(p.conn.peers, peerKey{s.infoHash, p.id})
	t.peers--
}

// dropConn forgets a closed connection and its peers.
func (t *Tracker) dropConn(c *conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.conns, c)
	for k, p := range c.peers {
		if s := t.swarms[k.infoHash]; s != nil && s.peers[p.id] == p {
			t.removePeerLocked(s, p)
			if len(s.list) == 0 {
				delete(t.swarms, k.infoHash)
			}
		}
	}
}

// swarm is the peers of one info hash. Guarded by Tracker.mu.
type swarm struct {
	infoHash string
	peers    map[string]*peer
	// list holds the same peers for uniform random choice; peer.idx is a
	// peer's position in it.
	list []*peer
	// lowest is the peer with the lowest id, nil when unknown (lowestPeer).
	lowest *peer
}

type peerKey struct{ infoHash, id string }

// expectKey names an answer a peer may receive: from the peer its offer
// was relayed to, for that offer.
type expectKey struct{ from, offerID string }

type peer struct {
	id       string
	conn     *conn
	idx      int
	lastSeen time.Time
	complete bool
	expect   map[expectKey]time.Time // answer deadlines
}

func (s *swarm) add(p *peer) {
	p.idx = len(s.list)
	s.list = append(s.list, p)
	s.peers[p.id] = p
	if s.lowest != nil && p.id < s.lowest.id {
		s.lowest = p
	}
}

func (s *swarm) remove(p *peer) {
	last := s.list[len(s.list)-1]
	s.list[p.idx] = last
	last.idx = p.idx
	s.list = s.list[:len(s.list)-1]
	delete(s.peers, p.id)
	if s.lowest == p {
		s.lowest = nil
	}
}

// lowestPeer is the peer with the lowest id, found again after it left.
func (s *swarm) lowestPeer() *peer {
	if s.lowest == nil {
		for _, p := range s.list {
			if s.lowest == nil || p.id < s.lowest.id {
				s.lowest = p
			}
		}
	}
	return s.lowest
}

// targets returns up to n distinct peers other than self to relay self's
// offers to: the peer with the lowest id, then random ones. Viewer pages
// elect the lowest id among themselves and their peers as the swarm's
// first holder, the one that fetches each segment from the server first
// (build/web/src/p2p.js); every page meeting the lowest makes that one
// peer, and only it, the first holder. A page that was lowest until a
// lower one came meets it this way too.
func (s *swarm) targets(self *peer, n int) []*peer {
	out := s.random(self, n)
	low := s.lowestPeer()
	if len(out) == 0 || low == self || slices.Contains(out, low) {
		return out
	}
	out[0] = low
	return out
}

func (s *swarm) counts() (complete, incomplete int) {
	for _, p := range s.list {
		if p.complete {
			complete++
		}
	}
	return complete, len(s.list) - complete
}

// random returns up to n distinct peers other than self.
func (s *swarm) random(self *peer, n int) []*peer {
	others := len(s.list) - 1
	if n <= 0 || others <= 0 {
		return nil
	}
	if n >= others {
		out := make([]*peer, 0, others)
		for _, p := range s.list {
			if p != self {
				out = append(out, p)
			}
		}
		rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
		return out
	}
	out := make([]*peer, 0, n)
	for len(out) < n {
		p := s.list[rand.IntN(len(s.list))]
		if p == self || slices.Contains(out, p) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// errSlow closes a client that does not read what it is sent.
var errSlow = errors.New("client too slow")
