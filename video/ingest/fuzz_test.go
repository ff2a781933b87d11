package ingest_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	rtmp "github.com/yutopp/go-rtmp"
	"github.com/yutopp/go-rtmp/handshake"
	rtmpmsg "github.com/yutopp/go-rtmp/message"
	"go.uber.org/goleak"

	"github.com/starling-live/starling/video/flv"
	"github.com/starling-live/starling/video/ingest"
)

// fuzzKey is the stream key the fuzzed server accepts; the captured
// sessions in testdata/fuzz/FuzzIngestRTMP publish with it.
const fuzzKey = "fuzz-key-123"

// hang is how long the harness waits for the server before calling it
// stuck; everything here takes milliseconds.
const hang = 10 * time.Second

// FuzzIngestRTMP sends arbitrary bytes to the RTMP server after a valid
// handshake, the way an encoder's connection reaches ingest. The seeds in
// testdata/fuzz/FuzzIngestRTMP are what ffmpeg and go-rtmp's client send
// after their handshakes: connect, createStream, publish with fuzzKey,
// metadata and the first audio and video tags.
//
// It uses only the package's API (New, Start, Close) with a fake handler,
// and checks that the server closes the connection once the client has
// finished sending, that sessions are used from one goroutine at a time
// and never after Close, that a well-formed publisher is served
// afterwards, and that Close leaves no session open and no goroutine
// running.
func FuzzIngestRTMP(f *testing.F) {
	f.Add([]byte{})
	// A set chunk size of 0, and an abort of chunk stream 3.
	f.Add([]byte{0x02, 0, 0, 0, 0, 0, 4, 0x01, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0x02, 0, 0, 0, 0, 0, 4, 0x02, 0, 0, 0, 0, 0, 0, 0, 3})
	// A message announcing 16 MiB that never comes.
	f.Add([]byte{0x03, 0, 0, 0, 0xff, 0xff, 0xff, 0x14, 0, 0, 0, 0, 0x02, 0, 7, 'c', 'o', 'n', 'n', 'e', 'c', 't'})
	f.Fuzz(func(t *testing.T, in []byte) {
		before := goleak.IgnoreCurrent()
		h := startFuzzIngest(t)

		// The fuzzed connection: a real handshake, then the input, then
		// the end of what the client sends.
		c, err := net.Dial("tcp", h.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(hang))
		if err := handshake.HandshakeWithServer(c, c, &handshake.Config{}); err != nil {
			t.Fatalf("handshake: %v", err)
		}
		if _, err := c.Write(in); err == nil {
			c.(*net.TCPConn).CloseWrite()
		}
		// Whatever the server answers, it must hang up once the client
		// has nothing more to say.
		if _, err := io.Copy(io.Discard, c); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatalf("the server kept the connection %s after the client stopped sending", hang)
			}
		}
		c.Close()

		// A publisher that does everything right is still served.
		h.publishWellFormed(t)

		if err := h.srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		h.checkSessions(t)
		goleak.VerifyNone(t, before)
	})
}

type fuzzIngest struct {
	srv  *ingest.Server
	addr string

	// mu guards sessions, the sessions Publish returned.
	mu       sync.Mutex
	sessions []*fuzzSession
	// published receives each new session.
	published chan *fuzzSession
}

func startFuzzIngest(t *testing.T) *fuzzIngest {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &fuzzIngest{addr: ln.Addr().String(), published: make(chan *fuzzSession, 8)}
	h.srv = ingest.New(ingest.Deps{
		Logger: slog.New(slog.DiscardHandler),
		Keys:   fakeKeys{check: func(k string) bool { return k == fuzzKey }},
		Handler: fakeHandler{publish: func(p ingest.Publish) (ingest.Session, error) {
			s := &fuzzSession{p: p, tagged: make(chan flv.Tag, 16)}
			h.mu.Lock()
			h.sessions = append(h.sessions, s)
			h.mu.Unlock()
			select {
			case h.published <- s:
			default:
			}
			return s, nil
		}},
	})
	h.srv.Start(ln)
	t.Cleanup(func() { h.srv.Close() })
	return h
}

// publishWellFormed publishes with go-rtmp's client and checks that the
// server starts a session and passes it a video tag.
func (h *fuzzIngest) publishWellFormed(t *testing.T) {
	t.Helper()
	// Drain what the fuzzed connection published.
	for len(h.published) > 0 {
		<-h.published
	}
	logger := logrus.New()
	logger.Out = io.Discard
	cc, err := rtmp.Dial("rtmp", h.addr, &rtmp.ConnConfig{Logger: logger})
	if err != nil {
		t.Fatalf("a well-formed publisher cannot connect after the fuzzed one: %v", err)
	}
	defer cc.Close()
	if err := cc.Connect(&rtmpmsg.NetConnectionConnect{Command: rtmpmsg.NetConnectionConnectCommand{App: ingest.App}}); err != nil {
		t.Fatalf("connect after the fuzzed connection: %v", err)
	}
	st, err := cc.CreateStream(nil, 128)
	if err != nil {
		t.Fatalf("createStream after the fuzzed connection: %v", err)
	}
	if err := st.Publish(&rtmpmsg.NetStreamPublish{PublishingName: fuzzKey, PublishingType: "live"}); err != nil {
		t.Fatalf("publish after the fuzzed connection: %v", err)
	}
	var s *fuzzSession
	select {
	case s = <-h.published:
		if s.p.Stats == nil || s.p.Kick == nil || s.p.RemoteAddr == "" {
			t.Errorf("Publish %+v lacks what the handler needs", s.p)
		}
	case <-time.After(hang):
		t.Fatalf("a well-formed publish after the fuzzed connection never reached the handler")
	}
	// An AVC sequence header.
	avc := []byte{0x17, 0x00, 0, 0, 0, 0x01, 0x64, 0x00, 0x1f, 0xff}
	if err := st.Write(6, 0, &rtmpmsg.VideoMessage{Payload: bytes.NewReader(avc)}); err != nil {
		t.Fatalf("video after the fuzzed connection: %v", err)
	}
	for {
		select {
		case tag := <-s.tagged:
			if tag.Type == flv.TagVideo && bytes.Equal(tag.Data, avc) {
				return
			}
		case <-time.After(hang):
			t.Fatalf("the well-formed publisher's video never reached its session")
		}
	}
}

// checkSessions checks, after Close, that every session was closed once
// and not used after.
func (h *fuzzIngest) checkSessions(t *testing.T) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, s := range h.sessions {
		if n := s.closes.Load(); n != 1 {
			t.Errorf("session %d was closed %d times after Close, want once", i, n)
		}
		for _, p := range s.problems() {
			t.Errorf("session %d: %s", i, p)
		}
		// Both are documented as safe at any time.
		if st := s.p.Stats(); !validStats(st) {
			t.Errorf("session %d: Stats %+v", i, st)
		}
		s.p.Kick()
	}
}

// validStats reports whether st holds figures an admin could be shown,
// whatever the publisher sent.
func validStats(st ingest.Stats) bool {
	for _, f := range []float64{st.Bitrate, st.VideoBitrate, st.Framerate} {
		if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
			return false
		}
	}
	return st.VideoBitrate <= st.Bitrate && st.KeyframeInterval >= 0 && st.LastFrameAge >= 0 && st.Span >= 0
}

type fakeKeys struct{ check func(string) bool }

func (k fakeKeys) CheckStreamKey(key string) bool { return k.check(key) }

type fakeHandler struct {
	publish func(ingest.Publish) (ingest.Session, error)
}

func (h fakeHandler) Publish(p ingest.Publish) (ingest.Session, error) { return h.publish(p) }

// fuzzSession records misuse: calls that overlap (they must come from the
// connection's goroutine, in order) and calls after Close.
type fuzzSession struct {
	p      ingest.Publish
	busy   atomic.Bool
	closes atomic.Int32
	// tagged gets the tags, as far as it has room.
	tagged chan flv.Tag

	mu   sync.Mutex
	errs []string
}

func (s *fuzzSession) enter(what string) {
	if !s.busy.CompareAndSwap(false, true) {
		s.fail(what + " was called while another call was running")
	}
	if s.closes.Load() > 0 && what != "Close" {
		s.fail(what + " was called after Close")
	}
}

func (s *fuzzSession) leave() { s.busy.Store(false) }

func (s *fuzzSession) fail(p string) {
	s.mu.Lock()
	s.errs = append(s.errs, p)
	s.mu.Unlock()
}

func (s *fuzzSession) problems() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.errs
}

func (s *fuzzSession) Metadata(ingest.Details) {
	s.enter("Metadata")
	s.leave()
}

func (s *fuzzSession) WriteTag(tag flv.Tag) {
	s.enter("WriteTag")
	defer s.leave()
	if tag.Type != flv.TagAudio && tag.Type != flv.TagVideo && tag.Type != flv.TagScript {
		s.fail(fmt.Sprintf("a tag of type %d", tag.Type))
	}
	select {
	case s.tagged <- tag:
	default:
	}
}

func (s *fuzzSession) Close(how ingest.Leave) {
	s.enter("Close")
	defer s.leave()
	s.closes.Add(1)
	if how != ingest.Unpublished && how != ingest.WentSilent && how != ingest.Dropped {
		s.fail(fmt.Sprintf("Close(%d) says no known way of leaving", how))
	}
}
