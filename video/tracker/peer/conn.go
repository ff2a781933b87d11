package peer

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
)

// One WebRTC connection to a remote peer: how it is set up through the
// tracker (simple-peer 10 as bittorrent-tracker drives it, @thaunknown/
// simple-peer lite.js) and the command protocol on its data channel
// (p2p-media-loader-core src/p2p/peer.ts, peer-protocol.ts, loader.ts).

const (
	// offerTimeout is OFFER_TIMEOUT of websocket-tracker.js: an offer with
	// no answer by then is destroyed.
	offerTimeout = 50 * time.Second
	// connectTimeout bounds the time from an answer to an open data
	// channel. JS waits for ICE to fail instead, which takes about as long.
	connectTimeout = 30 * time.Second
	// iceCompleteTimeout is ICECOMPLETE_TIMEOUT of simple-peer: without
	// trickle ICE the description is sent when gathering completes, or
	// after this long with the candidates found so far.
	iceCompleteTimeout = 5 * time.Second
	// maxBufferedAmount is MAX_BUFFERED_AMOUNT of simple-peer: a sender
	// waits for bufferedamountlow once this much is queued on the channel.
	maxBufferedAmount = 64 * 1024
	// maxSegmentSize bounds the size a remote peer may announce in
	// SegmentData; JS has no bound.
	maxSegmentSize = 1 << 30
)

// connState is the life of a conn.
type connState int

const (
	connPending connState = iota // negotiating
	connOpen                     // data channel open, in Peer.active
	connClosed
)

// conn is one peer connection with its data channel and the state of the
// command protocol on it.
type conn struct {
	p       *Peer
	pc      *webrtc.PeerConnection
	offerID string    // our offer's id; "" when we answered. Immutable.
	created time.Time // immutable
	// logp is the conn's logger; it gains the remote id when an answer
	// names it.
	logp atomic.Pointer[slog.Logger]

	done chan struct{} // closed when the conn closes
	// lowCh has a token when the channel's buffered amount fell to
	// maxBufferedAmount (OnBufferedAmountLow); the uploader waits on it.
	lowCh chan struct{}
	// slot is held by the one Request in flight on this conn.
	slot chan struct{}
	// sendMu keeps the parts of a command together on the channel.
	sendMu sync.Mutex
	// joiner reassembles split commands. Only pion's read loop of the data
	// channel uses it: OnMessage runs there, one message at a time.
	joiner joiner

	// Guarded by Peer.mu:
	remoteID string // from the offer, or for our offers from the answer
	dc       *webrtc.DataChannel
	state    connState
	timer    *time.Timer        // offer expiry, then connect deadline
	loaded   map[int64]struct{} // the remote's last SegmentsAnnouncement
	download *download          // our request in flight
	upload   *upload            // the remote's request being served
}

// download is a segment we requested (peer.ts downloadingContext).
type download struct {
	segmentID, requestID int64
	gotData              bool // SegmentData arrived
	size                 int64
	buf                  []byte
	result               chan error // buffered; gets exactly one value
}

// upload is a segment being sent to the remote peer.
type upload struct {
	segmentID, requestID int64
	stop                 chan struct{} // closed to stop sending
	done                 chan struct{} // closed when the sender returns
}

func (p *Peer) newConn(pc *webrtc.PeerConnection, offerID, remoteID string) *conn {
	c := &conn{
		p:        p,
		pc:       pc,
		offerID:  offerID,
		created:  time.Now(),
		remoteID: remoteID,
		done:     make(chan struct{}),
		lowCh:    make(chan struct{}, 1),
		slot:     make(chan struct{}, 1),
	}
	if offerID != "" {
		ob, _ := binaryBytes(offerID)
		c.logp.Store(p.log.With("offer_id", hex.EncodeToString(ob)))
	} else {
		c.logp.Store(p.log.With("remote", idForLog(remoteID)))
	}
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		// simple-peer destroys on connectionState "failed" and on ICE
		// "failed" or "closed".
		if s == webrtc.PeerConnectionStateFailed || s == webrtc.PeerConnectionStateClosed {
			c.close(fmt.Errorf("peer connection %s", s))
		}
	})
	return c
}

// register adds c to the Peer, unless the Peer is closed or full. It arms
// the timer that closes c if it does not open in time.
func (p *Peer) register(c *conn, timeout time.Duration) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.closed:
		return ErrClosed
	case len(p.conns) >= p.cfg.MaxConns:
		return fmt.Errorf("%d peer connections, the limit", len(p.conns))
	}
	p.conns[c] = struct{}{}
	if c.offerID != "" {
		p.offers[c.offerID] = c
	}
	c.timer = time.AfterFunc(timeout, func() {
		c.closeIf(errors.New("timed out before the data channel opened"), func() bool { return c.state == connPending })
	})
	return nil
}

// makeOffer creates a peer connection and its data channel as simple-peer
// does for an initiator, and returns the offer once ICE gathering is done.
func (p *Peer) makeOffer(ctx context.Context) (*offerMessage, error) {
	pc, err := p.api.NewPeerConnection(webrtc.Configuration{ICEServers: p.cfg.ICEServers})
	if err != nil {
		return nil, err
	}
	offerID := newOfferID()
	c := p.newConn(pc, offerID, "")
	if err := p.register(c, offerTimeout); err != nil {
		_ = pc.GracefulClose()
		return nil, err
	}
	// simple-peer: createDataChannel(hex of 20 random bytes, {}), that is
	// ordered and reliable, negotiated in band.
	label := make([]byte, 20)
	_, _ = rand.Read(label)
	dc, err := pc.CreateDataChannel(hex.EncodeToString(label), nil)
	if err != nil {
		c.close(err)
		return nil, err
	}
	c.attach(dc)
	sdp, err := c.localDescription(ctx, pc.CreateOffer)
	if err != nil {
		c.close(err)
		return nil, err
	}
	return &offerMessage{Offer: sdpMessage{Type: "offer", SDP: sdp}, OfferID: offerID}, nil
}

// localDescription creates our offer or answer and returns its SDP with
// the ICE candidates in it: the JS client does not trickle (trickle:
// false), so it waits for gathering to complete, or iceCompleteTimeout.
func (c *conn) localDescription(ctx context.Context, create func(*webrtc.OfferOptions) (webrtc.SessionDescription, error)) (string, error) {
	desc, err := create(nil)
	if err != nil {
		return "", err
	}
	gathered := webrtc.GatheringCompletePromise(c.pc)
	if err := c.pc.SetLocalDescription(desc); err != nil {
		return "", err
	}
	t := time.NewTimer(iceCompleteTimeout)
	defer t.Stop()
	select {
	case <-gathered:
	case <-t.C:
		c.log().Debug("ICE gathering incomplete; sending the candidates found so far")
	case <-ctx.Done():
		return "", ctx.Err()
	case <-c.done:
		return "", ErrConnClosed
	}
	// pion writes no a=ice-options:trickle, which simple-peer strips.
	return c.pc.LocalDescription().SDP, nil
}

// onOffer answers an offer relayed by the tracker, in its own goroutine.
// Like p2p-media-loader it drops an offer from a peer it is already
// connected to (tracker-client.ts destroys such a connection at once). At
// the connection limit, a peer asking to connect is worth more than one
// of our offers that nobody answered yet: the oldest of those makes room.
func (p *Peer) onOffer(remoteID, offerID string, offer sdpMessage) {
	p.mu.Lock()
	if p.active[remoteID] != nil {
		p.mu.Unlock()
		return
	}
	var oldest *conn
	if len(p.conns) >= p.cfg.MaxConns {
		for _, c := range p.offers {
			if oldest == nil || c.created.Before(oldest.created) {
				oldest = c
			}
		}
	}
	p.mu.Unlock()
	if oldest != nil {
		oldest.closeIf(errors.New("dropped to answer an offer: at the connection limit"), oldest.unanswered)
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.conns) >= p.cfg.MaxConns {
		p.log.Debug("offer dropped: at the connection limit", "remote", idForLog(remoteID))
		return
	}
	p.goLocked(func() {
		if err := p.answer(remoteID, offerID, offer); err != nil && p.ctx.Err() == nil {
			p.log.Warn("answering an offer failed", "remote", idForLog(remoteID), "error", err)
		}
	})
}

func (p *Peer) answer(remoteID, offerID string, offer sdpMessage) error {
	pc, err := p.api.NewPeerConnection(webrtc.Configuration{ICEServers: p.cfg.ICEServers})
	if err != nil {
		return err
	}
	c := p.newConn(pc, "", remoteID)
	if err := p.register(c, connectTimeout); err != nil {
		_ = pc.GracefulClose()
		return err
	}
	// The offerer made the channel; simple-peer's answerer takes it from
	// ondatachannel, whatever its label.
	pc.OnDataChannel(func(dc *webrtc.DataChannel) {
		c.p.mu.Lock()
		first := c.dc == nil && c.state != connClosed
		c.p.mu.Unlock()
		if !first {
			_ = dc.Close()
			return
		}
		c.attach(dc)
	})
	err = pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer.SDP})
	if err != nil {
		c.close(err)
		return fmt.Errorf("offer from %s: %w", idForLog(remoteID), err)
	}
	sdp, err := c.localDescription(p.ctx, func(*webrtc.OfferOptions) (webrtc.SessionDescription, error) {
		return pc.CreateAnswer(nil)
	})
	if err != nil {
		c.close(err)
		return err
	}
	if err := p.sendAnswer(remoteID, offerID, sdp); err != nil {
		c.close(err)
		return fmt.Errorf("send answer: %w", err)
	}
	return nil
}

// onAnswer completes one of our offers with the answer the tracker routed
// back (websocket-tracker.js: peers[offer_id].signal(answer)).
func (p *Peer) onAnswer(remoteID, offerID string, answer sdpMessage) {
	p.mu.Lock()
	c := p.offers[offerID]
	if c == nil {
		p.mu.Unlock()
		p.log.Debug("answer to an unknown or expired offer", "remote", idForLog(remoteID))
		return
	}
	delete(p.offers, offerID)
	dup := p.active[remoteID] != nil
	c.remoteID = remoteID
	c.logp.Store(c.log().With("remote", idForLog(remoteID)))
	c.timer.Reset(connectTimeout)
	p.mu.Unlock()
	if dup {
		c.close(errors.New("already connected to that peer"))
		return
	}
	// Setting the remote description does not wait for the network.
	if err := c.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer.SDP}); err != nil {
		c.close(fmt.Errorf("answer from %s: %w", idForLog(remoteID), err))
	}
}

// dropPendingOffers closes the offers still waiting for an answer.
func (p *Peer) dropPendingOffers() {
	p.mu.Lock()
	var pending []*conn
	for _, c := range p.offers {
		pending = append(pending, c)
	}
	p.mu.Unlock()
	for _, c := range pending {
		c.closeIf(errors.New("tracker connection lost before the answer"), c.unanswered)
	}
}

// unanswered reports whether c is one of our offers still waiting for an
// answer. Peer.mu is held.
func (c *conn) unanswered() bool { return c.p.offers[c.offerID] == c }

func (c *conn) log() *slog.Logger { return c.logp.Load() }

// attach wires the data channel's events to c.
func (c *conn) attach(dc *webrtc.DataChannel) {
	c.p.mu.Lock()
	c.dc = dc
	c.p.mu.Unlock()
	// simple-peer sets bufferedAmountLowThreshold to MAX_BUFFERED_AMOUNT.
	dc.SetBufferedAmountLowThreshold(maxBufferedAmount)
	dc.OnBufferedAmountLow(func() {
		select {
		case c.lowCh <- struct{}{}:
		default:
		}
	})
	dc.OnOpen(c.opened)
	dc.OnClose(func() { c.close(errors.New("data channel closed")) })
	dc.OnMessage(c.onMessage)
}

// opened makes c the connection to its remote peer, unless there already
// is one: then, as p2p-media-loader (tracker-client.ts), the first
// connection to open wins and the later one is closed.
func (c *conn) opened() {
	p := c.p
	// Holding announceMu from the snapshot of our store to the send keeps
	// this announcement in order with those of AddSegment.
	p.announceMu.Lock()
	defer p.announceMu.Unlock()
	p.mu.Lock()
	if c.state != connPending {
		p.mu.Unlock()
		return
	}
	if p.active[c.remoteID] != nil {
		p.mu.Unlock()
		c.close(errors.New("already connected to that peer"))
		return
	}
	c.state = connOpen
	c.timer.Stop()
	p.active[c.remoteID] = c
	ann := p.announcementLocked()
	p.mu.Unlock()
	c.log().Info("connected")
	// loader.ts onPeerConnected: announce our segments to the new peer.
	c.sendCommand(ann)
}

// close ends c for cause: it leaves the Peer, a download in flight fails,
// an upload stops, and the peer connection closes. Safe to call from pion
// callbacks and more than once.
func (c *conn) close(cause error) { c.closeIf(cause, nil) }

// closeIf closes c if cond, called with Peer.mu held, is nil or true, so
// that a timer or a sweep does not close a conn whose state moved on.
func (c *conn) closeIf(cause error, cond func() bool) {
	p := c.p
	p.mu.Lock()
	if c.state == connClosed || cond != nil && !cond() {
		p.mu.Unlock()
		return
	}
	wasOpen := c.state == connOpen
	c.state = connClosed
	close(c.done)
	delete(p.conns, c)
	if p.active[c.remoteID] == c {
		delete(p.active, c.remoteID)
	}
	if c.offerID != "" && p.offers[c.offerID] == c {
		delete(p.offers, c.offerID)
	}
	if c.timer != nil {
		c.timer.Stop()
	}
	d, u := c.download, c.upload
	c.download, c.upload = nil, nil
	// GracefulClose waits for pion's goroutines, so it cannot run in a
	// pion callback: give it a goroutine. Once the Peer is closed, Close
	// closes the connections itself.
	p.goLocked(func() { _ = c.pc.GracefulClose() })
	p.mu.Unlock()

	if d != nil {
		d.result <- fmt.Errorf("%w: %w", ErrConnClosed, cause)
	}
	if u != nil {
		close(u.stop)
	}
	if wasOpen {
		c.log().Info("disconnected", "cause", cause)
	} else {
		c.log().Debug("peer connection closed", "cause", cause)
	}
}

// sendCommand writes a command to the data channel. A command in several
// parts is written as a whole, so that no other command's parts interleave.
func (c *conn) sendCommand(cmd command) {
	c.p.mu.Lock()
	dc := c.dc
	c.p.mu.Unlock()
	if dc == nil {
		return
	}
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	for _, m := range cmd.encode(maxMessageSize) {
		if err := dc.Send(m); err != nil {
			c.log().Debug("send command failed", "command", cmd.Type, "error", err)
			return
		}
	}
}
