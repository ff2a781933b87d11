package peer

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/big"
	"slices"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/pion/webrtc/v4"
)

// Defaults, from p2p-media-loader 2.3.1 and bittorrent-tracker 11.
const (
	// peerIDPrefix is TRACKER_CLIENT_VERSION_PREFIX of 2.3.1 (utils/peer.ts:
	// "-PM" + major and minor version, two digits each, + "-").
	peerIDPrefix = "-PM0203-"
	// peerIDSymbols are HASH_SYMBOLS of utils/peer.ts.
	peerIDSymbols = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	// defaultOffers is min(numwant, 5) of websocket-tracker.js announce.
	defaultOffers = 5
	// defaultMaxConns bounds our peer connections, pending or open. The JS
	// client has no bound; a Go peer in a load tool needs one.
	defaultMaxConns = 20
)

// Config of a Peer.
type Config struct {
	Logger *slog.Logger // nil: no logs
	// TrackerURL is the tracker's WebSocket, e.g. ws://127.0.0.1:8080/tracker.
	TrackerURL string
	// Origin is sent as the WebSocket Origin header, which the tracker
	// checks, e.g. http://127.0.0.1:8080. Empty: no header.
	Origin string
	// InfoHash is the swarm's info hash exactly as p2p-media-loader computes
	// it (20 characters); see tracker.InfoHash and tracker.SwarmInfoHash.
	InfoHash string
	// PeerID is our 20-character peer id. Empty: "-PM0203-" and 12 random
	// [A-Za-z0-9], as p2p-media-loader 2.3.1 makes them.
	PeerID string
	// ICEServers for our peer connections; none are needed on one host.
	ICEServers []webrtc.ICEServer
	// Offers per announce; 0 means 5, as the JS client sends.
	Offers int
	// MaxConns bounds the peer connections, pending or open; 0 means 20.
	// At the limit announces carry fewer offers, and an offer from another
	// peer replaces our oldest unanswered one or, if there is none, goes
	// unanswered.
	MaxConns int
}

// Peer is a member of a p2p-media-loader 2.3.1 swarm: it announces to a
// WebTorrent tracker, connects to the other peers over WebRTC data
// channels, serves the segments it holds and fetches theirs on request.
// Its methods are safe for concurrent use.
type Peer struct {
	cfg Config // immutable after Dial
	log *slog.Logger
	api *webrtc.API

	// ctx ends when Close starts; every goroutine below selects on it.
	ctx    context.Context
	cancel context.CancelFunc
	// wg counts every goroutine the Peer starts. Adds happen before Dial
	// returns, under mu while !closed, or in a goroutine wg counts, so
	// Close can Wait.
	wg sync.WaitGroup

	sock     socket       // the tracker WebSocket
	uploaded atomic.Int64 // segment bytes sent to peers

	// announceMu keeps SegmentsAnnouncements in the order of the store
	// changes they report.
	announceMu sync.Mutex

	// mu guards the fields below and the fields of every conn marked as
	// guarded by Peer.mu.
	mu        sync.Mutex
	closed    bool
	trackerID string
	segments  map[int64][]byte   // our store, by segment id
	conns     map[*conn]struct{} // every live peer connection, pending or open
	offers    map[string]*conn   // our offers waiting for an answer, by offer id
	active    map[string]*conn   // the connection we use with each remote peer id
}

// Dial connects to the tracker and announces (event "started") with
// offers. The Peer then announces every interval the tracker asks for,
// reconnects if the socket drops, answers the offers relayed to it and
// keeps one data channel per remote peer. ctx bounds Dial only.
func Dial(ctx context.Context, c Config) (*Peer, error) {
	if c.TrackerURL == "" {
		return nil, errors.New("peer: Config.TrackerURL is empty: set the tracker's ws:// or wss:// URL")
	}
	if utf8.RuneCountInString(c.InfoHash) != 20 {
		return nil, fmt.Errorf("peer: info hash %q has %d characters, want 20: compute it with tracker.InfoHash or tracker.SwarmInfoHash", c.InfoHash, utf8.RuneCountInString(c.InfoHash))
	}
	if c.PeerID == "" {
		c.PeerID = newPeerID()
	} else if utf8.RuneCountInString(c.PeerID) != 20 {
		return nil, fmt.Errorf("peer: peer id %q has %d characters, want 20", c.PeerID, utf8.RuneCountInString(c.PeerID))
	}
	if c.Offers <= 0 {
		c.Offers = defaultOffers
	}
	if c.MaxConns <= 0 {
		c.MaxConns = defaultMaxConns
	}
	log := c.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "p2p-peer", "peer_id", c.PeerID)

	p := &Peer{
		cfg:      c,
		log:      log,
		api:      newAPI(log),
		segments: map[int64][]byte{},
		conns:    map[*conn]struct{}{},
		offers:   map[string]*conn{},
		active:   map[string]*conn{},
	}
	p.ctx, p.cancel = context.WithCancel(context.Background())

	ws, err := p.dialTracker(ctx)
	if err != nil {
		p.cancel()
		return nil, err
	}
	p.sock.set(ws)
	p.wg.Add(1)
	go p.runTracker(ws)

	// The first announce runs in the caller's context, so that Dial
	// returns its error.
	actx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(p.ctx, cancel)
	err = p.announce(actx, "started")
	stop()
	cancel()
	if err != nil {
		_ = p.Close()
		return nil, err
	}
	return p, nil
}

// newPeerID is generatePeerId of utils/peer.ts, with the first character
// after the prefix '0'. Viewer pages elect as first holder of a swarm the
// peer with the lowest id, and give themselves ids that start '1' (or 'z'
// when they do not upload; build/web/src/p2p.js newPeerId): a Go peer
// takes its segments from the server itself, so it goes first.
func newPeerID() string {
	b := []byte(peerIDPrefix + "0")
	for len(b) < 20 {
		n, _ := rand.Int(rand.Reader, big.NewInt(int64(len(peerIDSymbols))))
		b = append(b, peerIDSymbols[n.Int64()])
	}
	return string(b)
}

// ID is our peer id.
func (p *Peer) ID() string { return p.cfg.PeerID }

// Close closes every peer connection and the tracker socket, and waits for
// the Peer's goroutines. Requests in progress fail with ErrClosed.
func (p *Peer) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	conns := slices.Collect(maps.Keys(p.conns))
	p.mu.Unlock()

	p.cancel()
	p.sock.close()
	// Closing now nobody else may start goroutines: close these ourselves.
	var wg sync.WaitGroup
	for _, c := range conns {
		c.close(ErrClosed)
		wg.Go(func() { _ = c.pc.GracefulClose() })
	}
	wg.Wait()
	p.wg.Wait()
	return nil
}

// goLocked starts f as a goroutine of the Peer, unless the Peer is closed.
// The caller holds p.mu.
func (p *Peer) goLocked(f func()) bool {
	if p.closed {
		return false
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		f()
	}()
	return true
}

// AddSegment stores a segment under its id (the HLS media sequence number
// for live, the index for VOD: the segment's externalId in
// p2p-media-loader) and announces the store to the connected peers. The
// Peer keeps data; the caller must not change it afterwards.
func (p *Peer) AddSegment(id int64, data []byte) {
	p.mu.Lock()
	p.segments[id] = data
	p.mu.Unlock()
	p.broadcastAnnouncement()
}

// RemoveSegment drops a segment from the store, as a live window moves
// on, and announces the store to the connected peers.
func (p *Peer) RemoveSegment(id int64) {
	p.mu.Lock()
	_, ok := p.segments[id]
	delete(p.segments, id)
	p.mu.Unlock()
	if ok {
		p.broadcastAnnouncement()
	}
}

// broadcastAnnouncement sends a SegmentsAnnouncement to every open data
// channel, as p2p-media-loader does when its storage changes.
func (p *Peer) broadcastAnnouncement() {
	p.announceMu.Lock()
	defer p.announceMu.Unlock()
	p.mu.Lock()
	cmd := p.announcementLocked()
	conns := slices.Collect(maps.Values(p.active))
	p.mu.Unlock()
	for _, c := range conns {
		c.sendCommand(cmd)
	}
}

// announcementLocked lists our segments, ascending. p.mu is held.
func (p *Peer) announcementLocked() command {
	ids := slices.Sorted(maps.Keys(p.segments))
	return command{Type: cmdSegmentsAnnouncement, Loaded: ids}
}

// Connected returns the peer ids of the remote peers we have an open data
// channel with, sorted.
func (p *Peer) Connected() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Sorted(maps.Keys(p.active))
}

// Has returns the ids of the segments a connected peer announced as
// loaded, ascending; nil if it is not connected.
func (p *Peer) Has(peerID string) []int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.active[peerID]
	if c == nil {
		return nil
	}
	return slices.Sorted(maps.Keys(c.loaded))
}

// Uploaded returns the segment bytes sent to peers so far.
func (p *Peer) Uploaded() int64 { return p.uploaded.Load() }

// Request fetches a segment from a connected peer: SegmentRequest, then
// SegmentData, the raw chunks and SegmentDataSendingCompleted. It returns
// the bytes, or an error: ErrSegmentAbsent, ErrNotConnected,
// ErrConnClosed, ErrProtocol, ErrClosed or ctx's. As in p2p-media-loader a
// peer serves one request at a time, so concurrent Requests to one peer
// wait their turn. Bound the wait with ctx: on its end the request is
// cancelled at the remote peer (CancelSegmentRequest). A browser answers
// SegmentAbsent for a segment of its playlist that it does not hold, but
// nothing at all for an id outside its playlist.
func (p *Peer) Request(ctx context.Context, peerID string, id int64) ([]byte, error) {
	p.mu.Lock()
	closed, c := p.closed, p.active[peerID]
	p.mu.Unlock()
	switch {
	case closed:
		return nil, ErrClosed
	case c == nil:
		return nil, fmt.Errorf("request segment %d from %s: %w", id, idForLog(peerID), ErrNotConnected)
	}
	return c.request(ctx, id)
}
