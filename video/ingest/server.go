// Package ingest is the RTMP server publishers push to, built on
// github.com/yutopp/go-rtmp. It checks the stream key, accepts H.264 video
// with AAC audio, and hands the media on as FLV tags.
package ingest

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	rtmp "github.com/yutopp/go-rtmp"
	rtmpmsg "github.com/yutopp/go-rtmp/message"
	"golang.org/x/time/rate"

	"github.com/starling-live/starling/core/ratelimit"
	"github.com/starling-live/starling/video/flv"
)

// App is the RTMP application publishers use: rtmp://HOST/live, with the
// stream key as the stream name.
const App = "live"

// Errors a publish can be refused with.
var (
	ErrWrongApp = errors.New("wrong RTMP application: publish to rtmp://HOST/live with the stream key as the stream name")
	ErrWrongKey = errors.New("stream key rejected: check the key in OBS against the one in the admin panel")
	// ErrTooManyGuesses refuses an address that got the key wrong too
	// often: the key is a password, and guessing it must be slow.
	ErrTooManyGuesses = errors.New("too many wrong stream keys from this address: wait a few seconds, then check the key in OBS")
)

// Publish describes a publisher whose key was accepted.
type Publish struct {
	RemoteAddr string
	Time       time.Time
	// Kick disconnects the publisher, e.g. when its stream cannot be
	// transcoded.
	Kick func()
	// Stats measures what the publisher sends; safe to call from any
	// goroutine, for as long as anyone likes.
	Stats func() Stats
}

// Session receives one publisher's media. Its methods are called from the
// publisher's connection goroutine, in order.
type Session interface {
	Metadata(Details)
	WriteTag(flv.Tag)
	// Close is called once, when the publisher has gone, saying how.
	Close(Leave)
}

// Leave says how a publisher left, and so whether it may be back.
type Leave int

const (
	// Unpublished: the encoder said it stopped (FCUnpublish or
	// deleteStream), the publisher was kicked, or the server is closing.
	Unpublished Leave = iota
	// WentSilent: nothing arrived for ReadTimeout. The wait for it is
	// over.
	WentSilent
	// Dropped: the connection ended without a word, as when an encoder
	// restarts or a network fails; it may be back within seconds.
	Dropped
)

func (l Leave) String() string {
	switch l {
	case Unpublished:
		return "unpublished"
	case WentSilent:
		return "went silent"
	default:
		return "dropped"
	}
}

// Handler starts sessions for accepted publishers.
type Handler interface {
	// Publish returns the session for p's media, or an error to refuse
	// it (as when a broadcast is already live); the error is logged.
	Publish(p Publish) (Session, error)
}

type keyChecker interface{ CheckStreamKey(string) bool }

// Limits bound what RTMP clients may hold; a client is pending from its
// first byte until its publish is accepted. Zero fields take the
// defaults in parentheses.
//
// When MaxPending or MaxPendingPerIP is reached, a new connection takes
// the place of the oldest pending one (of its address, or of all): a
// publisher with the right key gets in while strangers hold sockets,
// unless they open new ones faster than it completes its handshake.
type Limits struct {
	// MaxPending caps pending connections (32), MaxPendingPerIP those of
	// one address (4).
	MaxPending, MaxPendingPerIP int
	// AuthTimeout is how long a connection may be pending: handshake,
	// connect and publish together, however slowly its bytes arrive
	// (10 s; an encoder needs four round trips).
	AuthTimeout time.Duration
	// PendingBytes is how much a connection may send while pending
	// (64 KiB; OBS sends about 4 KiB). With the read buffers this bounds
	// what a stranger makes the server hold: under 300 KiB a connection.
	PendingBytes int
	// ReadTimeout drops a publisher that has sent nothing for this long
	// (3 s): an encoder sends many frames a second, and one whose network
	// vanished must not hold the stream live. It reconnects and takes
	// over (see Handler).
	ReadTimeout time.Duration
	// MaxChunkStreams caps the RTMP chunk streams of a connection, each
	// of which may hold a message being assembled (16; encoders use five).
	MaxChunkStreams int
	// KeyGuesses is how many wrong stream keys one address may try at
	// once (10); after that one a KeyGuessInterval (6 s). A right key
	// costs nothing.
	KeyGuesses       int
	KeyGuessInterval time.Duration
}

func (l Limits) withDefaults() Limits {
	num := func(n *int, v int) {
		if *n == 0 {
			*n = v
		}
	}
	dur := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	num(&l.MaxPending, 32)
	num(&l.MaxPendingPerIP, 4)
	num(&l.PendingBytes, 64<<10)
	num(&l.MaxChunkStreams, 16)
	num(&l.KeyGuesses, 10)
	dur(&l.KeyGuessInterval, 6*time.Second)
	dur(&l.AuthTimeout, 10*time.Second)
	dur(&l.ReadTimeout, 3*time.Second)
	return l
}

// Deps are what a Server needs.
type Deps struct {
	Logger  *slog.Logger
	Keys    keyChecker
	Handler Handler
	Limits  Limits
}

// Server is the RTMP server.
type Server struct {
	log    *slog.Logger
	deps   Deps
	limits Limits
	// guesses are the stream keys each address may still get wrong.
	guesses *ratelimit.Keyed
	srv     *rtmp.Server
	ln      *backoffListener
	done    chan error

	closeOnce sync.Once
	closeErr  error

	// mu guards the fields below; wg counts connections until their
	// handler closed.
	mu      sync.Mutex
	conns   map[*connHandler]struct{}
	pending map[netip.Addr]int // pending connections per address
	npend   int
	npub    int    // publishing connections
	accepts uint64 // connections accepted, numbering them
	evicted uint64
	closed  bool
	wg      sync.WaitGroup
}

// ConnStats count the RTMP connections.
type ConnStats struct {
	// Pending have not published yet; Publishing have.
	Pending    int `json:"pending"`
	Publishing int `json:"publishing"`
	// Evicted pending connections made room for newer ones.
	Evicted uint64 `json:"evicted"`
}

// RecheckKeys disconnects publishers whose stream key is no longer valid:
// call it when the keys change.
func (s *Server) RecheckKeys() {
	s.mu.Lock()
	var revoked []*connHandler
	for h := range s.conns {
		if h.state == statePublishing && !s.deps.Keys.CheckStreamKey(h.key) {
			revoked = append(revoked, h)
		}
	}
	s.mu.Unlock()
	for _, h := range revoked {
		h.log.Warn("disconnecting the publisher: its stream key was revoked")
		h.kick()
	}
}

// Connections returns the connection counts.
func (s *Server) Connections() ConnStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return ConnStats{Pending: s.npend, Publishing: s.npub, Evicted: s.evicted}
}

// New returns a Server.
func New(d Deps) *Server {
	l := d.Limits.withDefaults()
	return &Server{log: d.Logger, deps: d, limits: l,
		guesses: ratelimit.New(rate.Every(l.KeyGuessInterval), l.KeyGuesses),
		conns:   map[*connHandler]struct{}{}, pending: map[netip.Addr]int{}}
}

// Start serves RTMP on ln.
func (s *Server) Start(ln net.Listener) {
	s.ln = newBackoffListener(ln, s.log)
	s.srv = rtmp.NewServer(&rtmp.ServerConfig{OnConnect: s.onConnect})
	s.done = make(chan error, 1)
	go func() { s.done <- s.srv.Serve(s.ln) }()
}

// Close stops accepting, disconnects every publisher and waits until their
// sessions are closed.
func (s *Server) Close() error {
	if s.srv == nil {
		return nil
	}
	s.closeOnce.Do(func() {
		// srv.Close, never ln.Close: go-rtmp v0.0.7 spins on Accept errors
		// unless it was closed itself.
		err := s.srv.Close()
		if serr := <-s.done; !errors.Is(serr, rtmp.ErrClosed) {
			err = errors.Join(err, serr)
		}
		s.mu.Lock()
		s.closed = true
		for h := range s.conns {
			h.nc.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
		s.closeErr = err
	})
	return s.closeErr
}

func (s *Server) onConnect(nc net.Conn) (io.ReadWriteCloser, *rtmp.ConnConfig) {
	addr := nc.RemoteAddr().String()
	log := s.log.With("remote", addr)
	ap, _ := netip.ParseAddrPort(addr)
	h := &connHandler{srv: s, log: log, addr: addr, ip: ap.Addr().Unmap(), nc: nc}
	dc := &deadlineConn{Conn: nc, budget: s.limits.PendingBytes}
	h.dc = dc

	if victim, ok := s.admit(h); !ok {
		log.Debug("RTMP connection refused: the server is closing")
		nc.Close()
		h.untracked = true
	} else if victim != nil {
		victim.log.Info("closing a connection that has not published, to make room for a newer one")
		victim.nc.Close()
	}
	// One deadline for handshake, connect and publish, however the
	// bytes trickle in.
	nc.SetDeadline(time.Now().Add(s.limits.AuthTimeout))

	logger := logrus.New()
	logger.Out = io.Discard
	return &guardedConn{deadlineConn: dc, guard: newAMFGuard(s.limits.MaxChunkStreams), log: log}, &rtmp.ConnConfig{
		Handler: h,
		// A video frame is tens of kilobytes: read it in one system call,
		// not in go-rtmp's default 4 KiB steps.
		ReaderBufferSize: 64 << 10,
		// OBS's handshake digest does not match go-rtmp's check; the
		// digest proves nothing about the publisher anyway.
		SkipHandshakeVerification: true,
		ControlState:              rtmp.StreamControlStateConfig{MaxChunkStreams: s.limits.MaxChunkStreams},
		Logger:                    logger,
	}
}

// admit counts h as pending, making room by evicting the oldest pending
// connection of its address, or of all, when the limits are reached. It
// returns the connection to close, and false once the server is closing.
func (s *Server) admit(h *connHandler) (victim *connHandler, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, false
	}
	switch {
	case s.pending[h.ip] >= s.limits.MaxPendingPerIP:
		victim = s.oldestPendingLocked(func(o *connHandler) bool { return o.ip == h.ip })
	case s.npend >= s.limits.MaxPending:
		victim = s.oldestPendingLocked(func(*connHandler) bool { return true })
	}
	if victim != nil {
		s.setStateLocked(victim, stateGone)
		s.evicted++
	}
	s.accepts++
	h.seq = s.accepts
	s.setStateLocked(h, statePending)
	s.conns[h] = struct{}{}
	s.wg.Add(1)
	return victim, true
}

func (s *Server) oldestPendingLocked(match func(*connHandler) bool) *connHandler {
	var oldest *connHandler
	for o := range s.conns {
		if o.state == statePending && match(o) && (oldest == nil || o.seq < oldest.seq) {
			oldest = o
		}
	}
	return oldest
}

// A connection is pending from accept until its publish is accepted,
// then publishing, and gone once evicted or closed.
type connState int

const (
	stateNew connState = iota
	statePending
	statePublishing
	stateGone
)

// setStateLocked moves h to state, keeping the counts.
func (s *Server) setStateLocked(h *connHandler, state connState) {
	switch h.state {
	case statePending:
		s.npend--
		if s.pending[h.ip]--; s.pending[h.ip] <= 0 {
			delete(s.pending, h.ip)
		}
	case statePublishing:
		s.npub--
	}
	switch state {
	case statePending:
		s.npend++
		s.pending[h.ip]++
	case statePublishing:
		s.npub++
	}
	h.state = state
}

// deadlineConn limits what a connection may send before it publishes,
// and afterwards gives reads a deadline that moves with the stream: go-rtmp
// has none, and a publisher whose network vanished would otherwise stay
// live forever. The deadline moves at most once a second, so a silent
// publisher is dropped after between timeout-1s and timeout.
//
// Only the connection's goroutine (go-rtmp's reader, which also runs the
// handler's callbacks) touches its fields.
type deadlineConn struct {
	net.Conn
	// budget is what the connection may still send while pending.
	budget int
	// timeout is 0 while pending: the deadline set at accept holds.
	timeout time.Duration
	// moved is when the deadline was last set.
	moved time.Time
	// silent is set when a read timed out after the publish.
	silent bool
	// lowWater is the receive low-water mark set on the socket (0: the
	// kernel's, one byte); got counts the bytes read since moved.
	lowWater int
	got      int
}

// The reader of a publisher is woken once about gatherWindow of its data
// has arrived, at most maxLowWater bytes, instead of for every arrival:
// an encoder sends each frame as it comes, in several writes, and each
// wake-up costs reads, acknowledgements and the runtime's scheduling,
// about 200 a second for 30 fps video with audio and most of the server's
// CPU while streaming with no viewers. The mark follows the publisher's
// rate of the last second; the delay is nothing next to a segment's
// seconds.
const (
	gatherWindow = 50 * time.Millisecond
	maxLowWater  = 32 << 10
)

// errTooMuchPending closes a connection that sends more than a publisher
// needs to before its publish is accepted.
var errTooMuchPending = errors.New("too much data before publishing: an encoder needs a few kilobytes")

// errEvicted ends a pending connection that made room for a newer one.
var errEvicted = errors.New("closed to make room for a newer connection")

func (c *deadlineConn) Read(p []byte) (int, error) {
	if c.timeout == 0 {
		if c.budget <= 0 {
			return 0, errTooMuchPending
		}
		p = p[:min(len(p), c.budget)]
		n, err := c.Conn.Read(p)
		c.budget -= n
		return n, err
	}
	if now := time.Now(); now.Sub(c.moved) >= time.Second {
		if err := c.Conn.SetReadDeadline(now.Add(c.timeout)); err != nil {
			return 0, err
		}
		if !c.moved.IsZero() {
			c.gather(c.got, now.Sub(c.moved))
		}
		c.moved, c.got = now, 0
	}
	n, err := c.Conn.Read(p)
	c.got += n
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() && n == 0 && c.lowWater > 1 {
		// Silent, or only below the mark? A publisher that sends
		// anything at all is not silent.
		if q, qerr := queued(c.Conn); qerr == nil && q > 0 {
			c.setLowWater(1)
			if err = c.Conn.SetReadDeadline(time.Now().Add(c.timeout)); err == nil {
				n, err = c.Conn.Read(p)
				c.got += n
			}
		}
	}
	if errors.As(err, &ne) && ne.Timeout() {
		c.silent = true
	}
	return n, err
}

// gather sets the low-water mark to gatherWindow of what arrived in
// elapsed. Only a change of a quarter or more is worth a system call.
func (c *deadlineConn) gather(got int, elapsed time.Duration) {
	want := min(max(int(int64(got)*int64(gatherWindow)/int64(elapsed)), 1), maxLowWater)
	if d := want - c.lowWater; d > c.lowWater/4 || -d > c.lowWater/4 {
		c.setLowWater(want)
	}
}

func (c *deadlineConn) setLowWater(n int) {
	if err := setLowWater(c.Conn, n); err == nil {
		c.lowWater = n
	}
}

// published lifts the pending limits: from now on a read deadline of
// timeout moves with the stream.
func (c *deadlineConn) published(timeout time.Duration) {
	c.timeout = timeout
	c.moved = time.Time{}
	// go-rtmp bounds its own writes; a stale deadline must not cut them.
	c.Conn.SetWriteDeadline(time.Time{})
}

// connHandler handles one RTMP connection. go-rtmp calls it from the
// connection's goroutine only.
type connHandler struct {
	rtmp.DefaultHandler
	srv       *Server
	log       *slog.Logger
	addr      string
	ip        netip.Addr
	nc        net.Conn
	dc        *deadlineConn
	untracked bool

	// seq numbers the connection in accept order; both fields are
	// guarded by srv.mu.
	seq   uint64
	state connState

	// kicked is set before the server closes the connection on purpose;
	// unpublished when the encoder says it stops.
	kicked      atomic.Bool
	unpublished bool
	// key is the stream key the publisher used, kept to end its broadcast
	// if the key is revoked; set before the state becomes publishing.
	key string

	app       string
	session   Session
	meter     *meter // measures the tags passed to session; set with it
	sawAudio  bool
	sawVideo  bool
	closeOnce sync.Once
}

func (h *connHandler) OnConnect(_ uint32, cmd *rtmpmsg.NetConnectionConnect) error {
	h.app = strings.Trim(cmd.Command.App, "/")
	return nil
}

func (h *connHandler) OnPublish(_ *rtmp.StreamContext, _ uint32, cmd *rtmpmsg.NetStreamPublish) error {
	// OBS sends the key as the stream name; "live/KEY" in the app covers
	// encoders that put the whole path in the server URL.
	app, rest, _ := strings.Cut(h.app, "/")
	key := cmd.PublishingName
	if key == "" {
		key = rest
	}
	// Some encoders append "?query" parameters to the key.
	key, _, _ = strings.Cut(key, "?")
	if app != App || (rest != "" && rest != key) {
		// Never log the application either: a streamer who put the key
		// in the server URL sent it there.
		h.log.Warn("publish refused: wrong RTMP application")
		return ErrWrongApp
	}
	// A guess is spent before the key is checked and given back if it
	// was right: while an address is throttled, even the right key waits.
	give, wait := h.srv.guesses.Take(h.ip.String(), time.Now())
	if wait > 0 {
		h.log.Warn("publish refused: too many wrong stream keys from this address", "retry_in", wait.Round(time.Second))
		return ErrTooManyGuesses
	}
	if !h.srv.deps.Keys.CheckStreamKey(key) {
		// Never log the key that was tried: it may be a real key with a typo.
		h.log.Warn("publish refused: wrong stream key")
		return ErrWrongKey
	}
	give()
	// From here the connection is a publisher's: no newcomer may evict
	// it. One evicted a moment ago is already closing.
	h.srv.mu.Lock()
	evicted := h.state != statePending
	if !evicted {
		h.key = key
		h.srv.setStateLocked(h, statePublishing)
	}
	h.srv.mu.Unlock()
	if evicted {
		return errEvicted
	}
	h.dc.published(h.srv.limits.ReadTimeout)
	now := time.Now()
	m := newMeter(now)
	sess, err := h.srv.deps.Handler.Publish(Publish{
		RemoteAddr: h.addr,
		Time:       now,
		Kick:       h.kick,
		Stats:      func() Stats { return m.stats(time.Now()) },
	})
	if err != nil {
		h.log.Warn("publish refused", "err", err)
		return err
	}
	h.log.Info("publisher connected")
	h.session, h.meter = sess, m
	return nil
}

func (h *connHandler) OnSetDataFrame(ts uint32, data *rtmpmsg.NetStreamSetDataFrame) error {
	if h.session == nil {
		return nil
	}
	if d, err := parseMetadata(data.Payload); err != nil {
		h.log.Debug("ignoring unreadable metadata", "err", err)
	} else {
		h.log.Info("encoder metadata", "encoder", d.Encoder, "width", d.Width, "height", d.Height,
			"framerate", d.FrameRate, "video_kbps", d.VideoBitrate, "audio_kbps", d.AudioBitrate,
			"video_codec", d.VideoCodec, "audio_codec", d.AudioCodec)
		h.session.Metadata(d)
	}
	h.session.WriteTag(flv.Tag{Type: flv.TagScript, Timestamp: ts, Data: data.Payload})
	return nil
}

func (h *connHandler) OnAudio(ts uint32, payload io.Reader) error {
	return h.media(flv.TagAudio, ts, payload)
}

func (h *connHandler) OnVideo(ts uint32, payload io.Reader) error {
	return h.media(flv.TagVideo, ts, payload)
}

// media copies a tag body (go-rtmp reuses the reader after the callback)
// and passes it on, after checking its codec once per track.
func (h *connHandler) media(typ flv.TagType, ts uint32, payload io.Reader) error {
	if h.session == nil {
		return nil
	}
	data, err := io.ReadAll(payload)
	if err != nil {
		return err
	}
	if len(data) == 0 {
		return nil
	}
	if err := h.checkCodec(typ, data); err != nil {
		h.log.Error("publisher disconnected", "err", err)
		return err
	}
	t := flv.Tag{Type: typ, Timestamp: ts, Data: data}
	h.meter.observe(t, time.Now())
	h.session.WriteTag(t)
	return nil
}

func (h *connHandler) checkCodec(typ flv.TagType, data []byte) error {
	switch typ {
	case flv.TagVideo:
		if h.sawVideo {
			return nil
		}
		h.sawVideo = true
		// Enhanced RTMP (HEVC, AV1) sets the top bit of the first byte;
		// Debian's ffmpeg 5.1 cannot read it from FLV.
		if data[0]&0x80 != 0 || data[0]&0x0f != flv.CodecIDAVC {
			return fmt.Errorf("unsupported video codec (FLV codec byte 0x%02x): Starling takes H.264; set the encoder to x264 or a hardware H.264 encoder", data[0])
		}
	case flv.TagAudio:
		if h.sawAudio {
			return nil
		}
		h.sawAudio = true
		if data[0]>>4 != flv.SoundFormatAAC {
			return fmt.Errorf("unsupported audio codec (FLV sound format %d): Starling takes AAC; set the encoder's audio to AAC", data[0]>>4)
		}
	}
	return nil
}

// kick disconnects the publisher on the server's behalf.
func (h *connHandler) kick() {
	h.kicked.Store(true)
	h.nc.Close()
}

// OnFCUnpublish and OnDeleteStream are how an encoder says it stops
// (OBS, ffmpeg and GStreamer send both); the broadcast can end at once.
func (h *connHandler) OnFCUnpublish(uint32, *rtmpmsg.NetStreamFCUnpublish) error {
	h.unpublished = true
	return nil
}

func (h *connHandler) OnDeleteStream(uint32, *rtmpmsg.NetStreamDeleteStream) error {
	h.unpublished = true
	return nil
}

// leave says how the publisher left.
func (h *connHandler) leave() Leave {
	h.srv.mu.Lock()
	closing := h.srv.closed
	h.srv.mu.Unlock()
	switch {
	case h.unpublished || h.kicked.Load() || closing:
		return Unpublished
	case h.dc.silent:
		return WentSilent
	default:
		return Dropped
	}
}

func (h *connHandler) OnClose() {
	h.closeOnce.Do(func() {
		if h.session != nil {
			how := h.leave()
			h.log.Info("publisher disconnected", "how", how.String())
			h.session.Close(how)
		}
		if !h.untracked {
			h.srv.mu.Lock()
			h.srv.setStateLocked(h, stateGone)
			delete(h.srv.conns, h)
			h.srv.mu.Unlock()
			h.srv.wg.Done()
		}
	})
}
