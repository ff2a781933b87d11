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
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	rtmp "github.com/yutopp/go-rtmp"
	rtmpmsg "github.com/yutopp/go-rtmp/message"

	"github.com/starling-live/starling/core"
	"github.com/starling-live/starling/video/flv"
)

// App is the RTMP application publishers use: rtmp://HOST/live, with the
// stream key as the stream name.
const App = "live"

// Errors a publish can be refused with.
var (
	ErrWrongApp = errors.New("wrong RTMP application: publish to rtmp://HOST/live with the stream key as the stream name")
	ErrWrongKey = errors.New("stream key rejected: check the key in OBS against the one in the admin panel")
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
	Metadata(core.StreamDetails)
	WriteTag(flv.Tag)
	// Close is called once, when the publisher has gone.
	Close()
}

// Handler starts sessions for accepted publishers.
type Handler interface {
	// Publish returns the session for p's media, or an error (such as
	// core.ErrAlreadyLive) to refuse it.
	Publish(p Publish) (Session, error)
}

type keyChecker interface{ CheckStreamKey(string) bool }

// Deps are what a Server needs.
type Deps struct {
	Logger  *slog.Logger
	Keys    keyChecker
	Handler Handler
	// ReadTimeout drops a publisher that has sent nothing for this long
	// (15 s), so a vanished encoder does not hold the stream live.
	ReadTimeout time.Duration
	// MaxConns caps simultaneous RTMP connections (16).
	MaxConns int
}

// Server is the RTMP server.
type Server struct {
	log  *slog.Logger
	deps Deps
	srv  *rtmp.Server
	ln   net.Listener
	done chan error

	closeOnce sync.Once
	closeErr  error

	// mu guards conns and closed; wg counts connections until their
	// handler closed.
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// New returns a Server.
func New(d Deps) *Server {
	if d.ReadTimeout == 0 {
		d.ReadTimeout = 15 * time.Second
	}
	if d.MaxConns == 0 {
		d.MaxConns = 16
	}
	return &Server{log: d.Logger, deps: d, conns: map[net.Conn]struct{}{}}
}

// Start serves RTMP on ln.
func (s *Server) Start(ln net.Listener) {
	s.ln = ln
	s.srv = rtmp.NewServer(&rtmp.ServerConfig{OnConnect: s.onConnect})
	s.done = make(chan error, 1)
	go func() { s.done <- s.srv.Serve(ln) }()
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
		for c := range s.conns {
			c.Close()
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
	h := &connHandler{srv: s, log: log, addr: addr, nc: nc}

	s.mu.Lock()
	full := len(s.conns) >= s.deps.MaxConns
	refuse := full || s.closed
	if !refuse {
		s.conns[nc] = struct{}{}
		s.wg.Add(1)
	}
	s.mu.Unlock()
	if refuse {
		if full {
			log.Warn("RTMP connection refused: too many connections", "max", s.deps.MaxConns)
		}
		nc.Close()
		h.untracked = true
	}

	logger := logrus.New()
	logger.Out = io.Discard
	return &deadlineConn{Conn: nc, timeout: s.deps.ReadTimeout}, &rtmp.ConnConfig{
		Handler: h,
		// A video frame is tens of kilobytes: read it in one system call,
		// not in go-rtmp's default 4 KiB steps.
		ReaderBufferSize: 64 << 10,
		// OBS's handshake digest does not match go-rtmp's check; the
		// digest proves nothing about the publisher anyway.
		SkipHandshakeVerification: true,
		Logger:                    logger,
	}
}

// deadlineConn gives reads a deadline: go-rtmp has none, and a publisher
// whose network vanished would otherwise stay live forever. The deadline
// moves at most once a second, so a silent publisher is dropped after
// between timeout-1s and timeout.
type deadlineConn struct {
	net.Conn
	timeout time.Duration
	// moved is when the deadline was last set; only the connection's
	// reading goroutine touches it.
	moved time.Time
}

func (c *deadlineConn) Read(p []byte) (int, error) {
	if now := time.Now(); now.Sub(c.moved) >= time.Second {
		if err := c.Conn.SetReadDeadline(now.Add(c.timeout)); err != nil {
			return 0, err
		}
		c.moved = now
	}
	return c.Conn.Read(p)
}

// connHandler handles one RTMP connection. go-rtmp calls it from the
// connection's goroutine only.
type connHandler struct {
	rtmp.DefaultHandler
	srv       *Server
	log       *slog.Logger
	addr      string
	nc        net.Conn
	untracked bool

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
		h.log.Warn("publish refused: wrong RTMP application", "app", app)
		return ErrWrongApp
	}
	if !h.srv.deps.Keys.CheckStreamKey(key) {
		// Never log the key that was tried: it may be a real key with a typo.
		h.log.Warn("publish refused: wrong stream key")
		return ErrWrongKey
	}
	now := time.Now()
	m := newMeter(now)
	sess, err := h.srv.deps.Handler.Publish(Publish{
		RemoteAddr: h.addr,
		Time:       now,
		Kick:       func() { h.nc.Close() },
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

func (h *connHandler) OnClose() {
	h.closeOnce.Do(func() {
		if h.session != nil {
			h.log.Info("publisher disconnected")
			h.session.Close()
		}
		if !h.untracked {
			h.srv.mu.Lock()
			delete(h.srv.conns, h.nc)
			h.srv.mu.Unlock()
			h.srv.wg.Done()
		}
	})
}
