package ingest

import (
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/starling-live/starling/core/testrig"
	"github.com/starling-live/starling/video/flv"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type keys string

func (k keys) CheckStreamKey(s string) bool { return s == string(k) }

// recorder is a Handler whose sessions record what they receive.
type recorder struct {
	mu       sync.Mutex
	refuse   error
	sessions []*session
}

type session struct {
	mu     sync.Mutex
	meta   []Details
	tags   []flv.Tag
	closed bool
	how    Leave
}

func (r *recorder) Publish(p Publish) (Session, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refuse != nil {
		return nil, r.refuse
	}
	s := &session{}
	r.sessions = append(r.sessions, s)
	return s, nil
}

func (s *session) Metadata(d Details) {
	s.mu.Lock()
	s.meta = append(s.meta, d)
	s.mu.Unlock()
}
func (s *session) WriteTag(t flv.Tag) { s.mu.Lock(); s.tags = append(s.tags, t); s.mu.Unlock() }
func (s *session) Close(how Leave)    { s.mu.Lock(); s.closed, s.how = true, how; s.mu.Unlock() }

func (s *session) snapshot() (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.tags), s.closed
}

func startServer(t *testing.T, h Handler) (*Server, string, *testrig.LogBuffer) {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Skip("ffmpeg is not installed")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &testrig.LogBuffer{}
	s := New(Deps{Logger: logs.Logger(), Keys: keys("right-key-123"), Handler: h})
	s.Start(ln)
	t.Cleanup(func() { s.Close() })
	return s, "rtmp://" + ln.Addr().String(), logs
}

// push publishes a second of synthetic video with ffmpeg; extra are its
// codec options.
func push(url string, seconds int, extra ...string) *exec.Cmd {
	args := []string{"-hide_banner", "-loglevel", "error", "-nostdin", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30", "-f", "lavfi", "-i", "sine=sample_rate=44100",
		"-t", fmt.Sprint(seconds)}
	args = append(args, extra...)
	args = append(args, "-f", "flv", url)
	return exec.Command("ffmpeg", args...)
}

var h264aac = []string{"-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-pix_fmt", "yuv420p", "-c:a", "aac"}

func TestPublishIsAcceptedAndForwarded(t *testing.T) {
	rec := &recorder{}
	_, url, _ := startServer(t, rec)
	if out, err := push(url+"/live/right-key-123", 1, h264aac...).CombinedOutput(); err != nil {
		t.Fatalf("publish: %v\n%s", err, out)
	}
	testrig.Eventually(t, 30*time.Second, "the session to close", func() (bool, string) {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if len(rec.sessions) != 1 {
			return false, fmt.Sprintf("%d sessions", len(rec.sessions))
		}
		_, closed := rec.sessions[0].snapshot()
		return closed, "open"
	})
	s := rec.sessions[0]
	if s.how != Unpublished {
		t.Errorf("a publisher that ended its stream left as %q, want unpublished", s.how)
	}
	if len(s.meta) != 1 || s.meta[0].Width != 320 || s.meta[0].VideoCodec != "H.264" {
		t.Errorf("metadata %+v", s.meta)
	}
	var video, audio, keyframes int
	for _, tag := range s.tags {
		switch {
		case tag.IsKeyframe():
			keyframes++
			video++
		case tag.Type == flv.TagVideo:
			video++
		case tag.Type == flv.TagAudio:
			audio++
		}
	}
	// One second at 30 fps with a key frame every 30 frames, plus the
	// sequence header.
	if video < 29 || audio < 20 || keyframes < 2 {
		t.Errorf("forwarded %d video tags (%d key), %d audio tags", video, keyframes, audio)
	}
	if !s.tags[0].IsSequenceHeader() && s.tags[0].Type != flv.TagScript {
		t.Errorf("first tag is %s % x", s.tags[0].Type, s.tags[0].Data[:2])
	}
}

func TestBadPublishersAreRefusedWithAReason(t *testing.T) {
	tests := []struct {
		name, path string
		codec      []string
		refuse     error
		log        string
	}{
		{"wrong key", "/live/wrong-key-456", h264aac, nil, "wrong stream key"},
		{"wrong app", "/other/right-key-123", h264aac, nil, "wrong RTMP application"},
		{"key as the app", "/right-key-123/x", h264aac, nil, "wrong RTMP application"},
		{"handler refuses", "/live/right-key-123", h264aac, errors.New("a broadcast is already live"), "already live"},
		{"H.263 video", "/live/right-key-123", []string{"-c:v", "flv1", "-c:a", "aac"}, nil, "Starling takes H.264"},
		{"MP3 audio", "/live/right-key-123", []string{"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "libmp3lame"}, nil, "Starling takes AAC"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{refuse: tt.refuse}
			_, url, logs := startServer(t, rec)
			out, err := push(url+tt.path, 3, tt.codec...).CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) {
				t.Errorf("the publisher was not refused: %v\n%s", err, out)
			}
			testrig.Eventually(t, 30*time.Second, "the refusal in the log", func() (bool, string) {
				return strings.Contains(logs.String(), tt.log), logs.String()
			})
			if strings.Contains(logs.String(), "wrong-key-456") || strings.Contains(logs.String(), "right-key-123") {
				t.Errorf("a tried key is in the log:\n%s", logs)
			}
			if !strings.Contains(logs.String(), "remote=127.0.0.1:") {
				t.Error("the publisher's address is not in the log")
			}
		})
	}
}

func TestCloseDisconnectsPublishers(t *testing.T) {
	rec := &recorder{}
	srv, url, _ := startServer(t, rec)
	pub := push(url+"/live/right-key-123", 60, h264aac...)
	if err := pub.Start(); err != nil {
		t.Fatal(err)
	}
	defer pub.Process.Kill()
	testrig.Eventually(t, 30*time.Second, "media to arrive", func() (bool, string) {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if len(rec.sessions) == 0 {
			return false, "no session"
		}
		n, _ := rec.sessions[0].snapshot()
		return n > 10, fmt.Sprintf("%d tags", n)
	})
	if err := srv.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	// Close waits for the sessions: this holds at once, no polling.
	if _, closed := rec.sessions[0].snapshot(); !closed {
		t.Error("Close returned before the publisher's session was closed")
	}
	done := make(chan error, 1)
	go func() { done <- pub.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Error("the publisher was not disconnected")
	}
}
