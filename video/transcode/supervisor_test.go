package transcode

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/starling-live/starling/core/testrig"
	"github.com/starling-live/starling/video/flv"
)

// The test binary doubles as a fake ffmpeg: with STARLING_FAKE_FFMPEG set
// it behaves as that mode says instead of running the tests.
func TestMain(m *testing.M) {
	if mode := os.Getenv("STARLING_FAKE_FFMPEG"); mode != "" {
		os.Exit(fakeFFmpeg(mode, os.Getenv("STARLING_FAKE_DIR")))
	}
	goleak.VerifyTestMain(m)
}

// fakeFFmpeg numbers its runs in dir and saves its input as runN.flv.
func fakeFFmpeg(mode, dir string) int {
	n := 1
	for ; ; n++ {
		if _, err := os.Stat(filepath.Join(dir, fmt.Sprintf("run%d.flv", n))); os.IsNotExist(err) {
			break
		}
	}
	f, err := os.Create(filepath.Join(dir, fmt.Sprintf("run%d.flv", n)))
	if err != nil {
		return 99
	}
	defer f.Close()
	switch mode {
	case "exit1":
		fmt.Fprintln(os.Stderr, "Unrecognized option 'bogus'.")
		return 1
	case "complain-url":
		// As ffmpeg does when an upload fails: the URL, token and all.
		fmt.Fprintf(os.Stderr, "[http @ 0x55] HTTP error 410 Gone\nFailed to open %s for writing\n", os.Args[len(os.Args)-1])
		return 1
	case "crash-once":
		if n == 1 {
			// Read a little of the stream, then crash.
			io.CopyN(f, os.Stdin, 4096)
			fmt.Fprintln(os.Stderr, "Segmentation fault (pretend)")
			return 3
		}
		io.Copy(f, os.Stdin)
		return 0
	case "progress-crash-once":
		// Report progress as ffmpeg does, on standard output; the first
		// run crashes after two reports.
		dup, drop := 2, 3
		if n > 1 {
			dup, drop = 1, 1
		}
		go io.Copy(f, os.Stdin)
		for i := 1; ; i++ {
			fmt.Printf("frame=%d\nfps=0.00\nout_time_us=%d\ndup_frames=%d\ndrop_frames=%d\nspeed=N/A\nprogress=continue\n", i*3, i*100_000, dup, drop)
			if n == 1 && i == 2 {
				return 3
			}
			time.Sleep(100 * time.Millisecond) // ffmpeg's -stats_period, shortened
		}
	case "copy":
		io.Copy(f, os.Stdin)
		return 0
	case "ignore-sigint":
		signal.Ignore(syscall.SIGINT)
		io.Copy(f, os.Stdin)
		select {} // hang: only SIGKILL ends this
	}
	return 98
}

func startFake(t *testing.T, mode string, p Policy) (*Session, string, *testrig.LogBuffer) {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("STARLING_FAKE_FFMPEG", mode)
	t.Setenv("STARLING_FAKE_DIR", dir)
	logs := &testrig.LogBuffer{}
	s := Start(Deps{
		Logger:  logs.Logger(),
		Program: os.Args[0],
		Args:    func(bool) []string { return nil },
		Policy:  p,
	})
	return s, dir, logs
}

// Tags of a tiny fake stream: metadata, sequence headers, then frames
// with a key frame every tenth.
var (
	metaTag   = flv.Tag{Type: flv.TagScript, Timestamp: 0, Data: []byte("\x02\x00\x0aonMetaData")}
	avcConfig = flv.Tag{Type: flv.TagVideo, Data: []byte{0x17, 0, 0, 0, 0, 1, 2, 3}}
	aacConfig = flv.Tag{Type: flv.TagAudio, Data: []byte{0xaf, 0, 0x12, 0x10}}
)

func frame(i int) flv.Tag {
	ts := uint32(i * 33)
	if i%2 == 1 {
		return flv.Tag{Type: flv.TagAudio, Timestamp: ts, Data: append([]byte{0xaf, 1}, bytes.Repeat([]byte{byte(i)}, 200)...)}
	}
	head := byte(0x27) // inter frame, AVC
	if i%10 == 0 {
		head = 0x17 // key frame, AVC
	}
	return flv.Tag{Type: flv.TagVideo, Timestamp: ts, Data: append([]byte{head, 1, 0, 0, 0}, bytes.Repeat([]byte{byte(i)}, 1000)...)}
}

// feed writes the stream until stop is closed (tags paced at 2 ms).
func feed(s *Session, stop <-chan struct{}) {
	s.WriteTag(metaTag)
	s.WriteTag(avcConfig)
	s.WriteTag(aacConfig)
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		case <-time.After(2 * time.Millisecond):
		}
		s.WriteTag(frame(i))
	}
}

// readTags parses an FLV file into its tags.
func readTags(t *testing.T, b []byte) []flv.Tag {
	t.Helper()
	if !bytes.HasPrefix(b, flv.Header(true, true)) {
		t.Fatalf("input does not start with the FLV header of an audio and video stream: % x", b[:min(len(b), 13)])
	}
	b = b[len(flv.Header(true, true)):]
	var tags []flv.Tag
	for len(b) >= 15 {
		n := int(b[1])<<16 | int(b[2])<<8 | int(b[3])
		if len(b) < 11+n+4 {
			break
		}
		ts := uint32(b[7])<<24 | uint32(b[4])<<16 | uint32(b[5])<<8 | uint32(b[6])
		if prev := binary.BigEndian.Uint32(b[11+n:]); prev != uint32(11+n) {
			t.Fatalf("PreviousTagSize %d, want %d", prev, 11+n)
		}
		tags = append(tags, flv.Tag{Type: flv.TagType(b[0]), Timestamp: ts, Data: b[11 : 11+n]})
		b = b[11+n+4:]
	}
	return tags
}

// TestSecretsStayOutOfTheLog: the packager's token is in ffmpeg's output
// URL; neither the "starting ffmpeg" line nor ffmpeg's complaints about
// the URL, nor the error that explains its exit, may show it.
func TestSecretsStayOutOfTheLog(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("STARLING_FAKE_FFMPEG", "complain-url")
	t.Setenv("STARLING_FAKE_DIR", dir)
	const token = "PACKAGERTOKEN2Q7"
	logs := &testrig.LogBuffer{}
	s := Start(Deps{
		Logger:  logs.Logger(),
		Program: os.Args[0],
		Args: func(bool) []string {
			return []string{"-f", "hls", "http://127.0.0.1:9/" + token + "/1-1/0/stream.m3u8"}
		},
		Redact: func(s string) string { return strings.ReplaceAll(s, token, "TOKEN") },
		Policy: Policy{Backoff: time.Millisecond, MaxFailures: 1},
	})
	stop := make(chan struct{})
	go feed(s, stop)
	defer close(stop)
	err := s.Err()
	if err == nil || strings.Contains(err.Error(), token) {
		t.Errorf("error %v", err)
	}
	if strings.Contains(logs.String(), token) {
		t.Errorf("the token is in the log:\n%s", logs)
	}
	if !strings.Contains(logs.String(), "/TOKEN/1-1/0/stream.m3u8") || !strings.Contains(logs.String(), "Failed to open") {
		t.Errorf("the log lost the redacted command line or ffmpeg's complaint:\n%s", logs)
	}
}

func TestSupervisorGivesUpOnAChildThatKeepsFailing(t *testing.T) {
	s, dir, logs := startFake(t, "exit1", Policy{Backoff: time.Millisecond, MaxFailures: 3})
	stop := make(chan struct{})
	go feed(s, stop)
	defer close(stop)

	<-s.Done()
	err := s.Err()
	if err == nil {
		t.Fatal("the session ended without an error")
	}
	for _, want := range []string{"3 times in a row", "exited with code 1", "Unrecognized option 'bogus'."} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	runs, _ := filepath.Glob(filepath.Join(dir, "run*.flv"))
	if len(runs) != 3 {
		t.Errorf("ffmpeg ran %d times, want 3", len(runs))
	}
	if !strings.Contains(logs.String(), "Unrecognized option") {
		t.Errorf("ffmpeg's stderr is not in the log:\n%s", logs)
	}
	if err := s.Close(); err == nil {
		t.Error("Close after giving up returned no error")
	}
}

func TestSupervisorRestartsACrashedChildFromAKeyFrame(t *testing.T) {
	s, dir, logs := startFake(t, "crash-once", Policy{Backoff: time.Millisecond})
	stop := make(chan struct{})
	fed := make(chan struct{})
	go func() { defer close(fed); feed(s, stop) }()

	run2 := filepath.Join(dir, "run2.flv")
	testrig.Eventually(t, 30*time.Second, "the restarted ffmpeg to receive a second of input", func() (bool, string) {
		st, err := os.Stat(run2)
		return err == nil && st.Size() > 100_000, fmt.Sprint(err)
	})
	close(stop)
	<-fed
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if !strings.Contains(logs.String(), "exited with code 3") || !strings.Contains(logs.String(), "restarting it") {
		t.Errorf("the crash and restart are not logged:\n%s", logs)
	}
	b, err := os.ReadFile(run2)
	if err != nil {
		t.Fatal(err)
	}
	tags := readTags(t, b)
	if len(tags) < 10 {
		t.Fatalf("the restarted ffmpeg got %d tags", len(tags))
	}
	// A decoder can start only from the decoder configuration and a key
	// frame: the restart must replay both.
	want := []flv.Tag{metaTag, avcConfig, aacConfig}
	for i, w := range want {
		if tags[i].Type != w.Type || !bytes.Equal(tags[i].Data, w.Data) {
			t.Errorf("tag %d of the restarted run is %s % x, want %s % x", i, tags[i].Type, tags[i].Data[:min(8, len(tags[i].Data))], w.Type, w.Data)
		}
	}
	if !tags[3].IsKeyframe() {
		t.Errorf("the first frame after the restart is not a key frame: % x", tags[3].Data[:2])
	}
	// Nothing may be lost or reordered after the restart point.
	for i := 4; i < len(tags); i++ {
		if tags[i].Timestamp < tags[i-1].Timestamp {
			t.Fatalf("tag %d goes back in time: %d after %d", i, tags[i].Timestamp, tags[i-1].Timestamp)
		}
	}
}

// Tags queued in a burst go to ffmpeg several to a write, each whole and
// in order, and so do those still queued when the publisher leaves.
func TestBurstsReachFFmpegWholeAndInOrder(t *testing.T) {
	s, dir, _ := startFake(t, "copy", Policy{})
	s.WriteTag(metaTag)
	s.WriteTag(avcConfig)
	s.WriteTag(aacConfig)
	const n = 600
	for i := range n {
		s.WriteTag(frame(i))
		if i%100 == 99 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "run1.flv"))
	if err != nil {
		t.Fatal(err)
	}
	tags := readTags(t, b)
	want := append([]flv.Tag{metaTag, avcConfig, aacConfig}, make([]flv.Tag, n)...)
	for i := range n {
		want[3+i] = frame(i)
	}
	if len(tags) != len(want) {
		t.Fatalf("ffmpeg got %d tags, want %d", len(tags), len(want))
	}
	for i, w := range want {
		if tags[i].Type != w.Type || tags[i].Timestamp != w.Timestamp || !bytes.Equal(tags[i].Data, w.Data) {
			t.Fatalf("tag %d is %s at %d, want %s at %d", i, tags[i].Type, tags[i].Timestamp, w.Type, w.Timestamp)
		}
	}
}

func TestProgressComesFromStandardOutputAndSpansRestarts(t *testing.T) {
	s, _, _ := startFake(t, "progress-crash-once", Policy{Backoff: time.Millisecond})
	if p := s.Progress(); p.Run != 0 || !p.UpdatedAt.IsZero() {
		t.Errorf("progress before ffmpeg started: %+v", p)
	}
	stop := make(chan struct{})
	fed := make(chan struct{})
	go func() { defer close(fed); feed(s, stop) }()

	testrig.Eventually(t, 30*time.Second, "the second run to report a second of progress", func() (bool, string) {
		p := s.Progress()
		return p.Run == 2 && p.Speed > 0, fmt.Sprintf("%+v", p)
	})
	close(stop)
	<-fed
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	p := s.Progress()
	// The fake reports 0.1 s of output and 3 frames every 0.1 s; its sleeps
	// may run long on a busy machine, never short.
	if p.Speed > 1.05 || p.FPS > 31.5 || p.Frame < 30 || p.OutTime < time.Second || p.UpdatedAt.IsZero() {
		t.Errorf("progress %+v", p)
	}
	if p.DupFrames != 2+1 || p.DropFrames != 3+1 {
		t.Errorf("dup %d drop %d, want the two runs' sums 3 and 4", p.DupFrames, p.DropFrames)
	}
}

func TestSupervisorKillsAChildThatIgnoresSIGINT(t *testing.T) {
	s, dir, logs := startFake(t, "ignore-sigint", Policy{Drain: 50 * time.Millisecond, Grace: 200 * time.Millisecond})
	stop := make(chan struct{})
	fed := make(chan struct{})
	go func() { defer close(fed); feed(s, stop) }()
	testrig.Eventually(t, 30*time.Second, "ffmpeg to start", func() (bool, string) {
		_, err := os.Stat(filepath.Join(dir, "run1.flv"))
		return err == nil, fmt.Sprint(err)
	})
	close(stop)
	<-fed

	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not return: the hung ffmpeg was never killed")
	}
	if !strings.Contains(logs.String(), "ended on signal 9") {
		t.Errorf("the log does not say ffmpeg was killed:\n%s", logs)
	}
	if runs, _ := filepath.Glob(filepath.Join(dir, "run*.flv")); len(runs) != 1 {
		t.Errorf("ffmpeg ran %d times, want 1: a publisher leaving is no reason to restart", len(runs))
	}
}

func TestWriteTagDropsToTheNextKeyFrameWhenFull(t *testing.T) {
	// A session with no run loop, so that nothing drains its queue.
	s := &Session{log: slog.New(slog.NewTextHandler(io.Discard, nil)), in: make(chan flv.Tag, 3), closing: make(chan struct{})}
	for i := 1; i <= 3; i++ {
		s.WriteTag(frame(i)) // fills the queue
	}
	s.WriteTag(frame(4)) // dropped: full
	if !s.dropping {
		t.Fatal("a full queue did not start dropping")
	}
	<-s.in
	<-s.in
	s.WriteTag(frame(5)) // audio, still dropping until a key frame
	s.WriteTag(frame(6)) // inter frame: dropped
	if got := s.Progress().SkippedFrames; got != 2 {
		t.Errorf("SkippedFrames = %d, want the 2 video frames dropped", got)
	}
	if len(s.in) != 1 {
		t.Fatalf("queue holds %d tags, want 1: frames after a drop must wait for a key frame", len(s.in))
	}
	s.WriteTag(frame(10)) // key frame: accepted
	if s.dropping || len(s.in) != 2 {
		t.Fatalf("a key frame did not end the drop (dropping=%v, queued=%d)", s.dropping, len(s.in))
	}
	if got := (<-s.in).Timestamp; got != frame(3).Timestamp {
		t.Fatalf("queue head has ts %d", got)
	}
	if got := (<-s.in).Timestamp; got != frame(10).Timestamp {
		t.Fatalf("after the drop the queue resumes at ts %d, want the key frame's %d", got, frame(10).Timestamp)
	}
}
