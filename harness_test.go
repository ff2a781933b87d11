package main

// The test harness: a fully wired Starling on random loopback ports with a
// temporary data directory, and a real ffmpeg publishing a synthetic
// stream to it. End-to-end tests are a few lines on top of it.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/grafov/m3u8"

	"github.com/starling-live/starling/core"
	"github.com/starling-live/starling/core/testrig"
	"github.com/starling-live/starling/video/hls"
)

// TestMain lets the test binary run as the starling command itself, for
// tests of the boot contract (flags, signals, exit codes).
func TestMain(m *testing.M) {
	if os.Getenv("STARLING_TEST_RUN_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

const (
	testStreamKey     = "test-stream-key-1234"
	testAdminPassword = "test-admin-password"
)

// requireTools skips a test whose tools are missing, unless
// STARLING_REQUIRE_TOOLS is set (as the test command sets it): there a
// missing tool is a failure, never a silent skip.
func requireTools(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("STARLING_REQUIRE_TOOLS") != "" {
				t.Fatalf("%s is not installed: run build/test.sh, which installs it", tool)
			}
			t.Skipf("%s is not installed (build/test.sh installs it)", tool)
		}
	}
}

type testServer struct {
	t       *testing.T
	app     *app
	logs    *testrig.LogBuffer
	stop    context.CancelFunc
	done    chan error
	URL     string // http://127.0.0.1:PORT
	RTMPURL string // rtmp://127.0.0.1:PORT/live
}

// startServer runs Starling until the test ends; opts adjust its config.
func startServer(t *testing.T, opts ...func(*config)) *testServer {
	t.Helper()
	requireTools(t, "ffmpeg", "ffprobe")
	logs := &testrig.LogBuffer{}
	cfg := config{
		HTTPAddr:      "127.0.0.1:0",
		RTMPAddr:      "127.0.0.1:0",
		DataDir:       t.TempDir(),
		StreamKey:     testStreamKey,
		AdminPassword: testAdminPassword,
		FFmpeg:        "ffmpeg",
		LogLevel:      slog.LevelDebug,
		P2P:           true,
	}
	for _, o := range opts {
		o(&cfg)
	}
	ctx, stop := context.WithCancel(context.Background())
	a, err := newApp(ctx, cfg, newLogger(logs, cfg.LogLevel))
	if err != nil {
		stop()
		t.Fatalf("start: %v", err)
	}
	s := &testServer{
		t: t, app: a, logs: logs, stop: stop, done: make(chan error, 1),
		URL:     "http://" + a.httpLn.Addr().String(),
		RTMPURL: "rtmp://" + a.rtmpLn.Addr().String() + "/live",
	}
	go func() { s.done <- a.run(ctx) }()
	t.Cleanup(func() {
		if err := s.shutdown(); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if t.Failed() {
			t.Logf("server log:\n%s", logs)
		}
	})
	return s
}

// shutdown stops the server as SIGTERM would, once.
func (s *testServer) shutdown() error {
	s.stop()
	select {
	case err, ok := <-s.done:
		if !ok {
			return nil
		}
		close(s.done)
		return err
	case <-time.After(60 * time.Second):
		return fmt.Errorf("the server did not stop within a minute")
	}
}

// get fetches a path and returns status and body.
func (s *testServer) get(path string) (int, []byte) {
	s.t.Helper()
	resp, err := http.Get(s.URL + path)
	if err != nil {
		s.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, b
}

// getJSON fetches a path that must answer 200 with JSON.
func (s *testServer) getJSON(path string, v any) {
	s.t.Helper()
	code, b := s.get(path)
	if code != http.StatusOK {
		s.t.Fatalf("GET %s: %d %s", path, code, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		s.t.Fatalf("GET %s: %v in %s", path, err, b)
	}
}

// admin calls the admin API.
func (s *testServer) admin(method, path string, body any) (int, []byte) {
	s.t.Helper()
	code, _, b := s.send(method, path, func(r *http.Request) { r.SetBasicAuth("admin", testAdminPassword) }, body)
	return code, b
}

// send makes a request with a JSON body (none if nil; a rawBody is sent
// as it is, with its own content type), authorized by auth.
func (s *testServer) send(method, path string, auth func(*http.Request), body any) (int, http.Header, []byte) {
	s.t.Helper()
	var r io.Reader
	contentType := "application/json"
	switch b := body.(type) {
	case nil:
	case rawBody:
		r, contentType = strings.NewReader(b.data), b.contentType
	default:
		raw, _ := json.Marshal(body)
		r = bytes.NewReader(raw)
	}
	req, _ := http.NewRequest(method, s.URL+path, r)
	if auth != nil {
		auth(req)
	}
	if body != nil {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, out
}

// rawBody is a request body sent as it is.
type rawBody struct{ contentType, data string }

// setVariants configures the output variants through the admin API.
func (s *testServer) setVariants(vs ...core.Variant) {
	s.t.Helper()
	if code, b := s.admin(http.MethodPost, "/api/admin/config/video/streamoutputvariants", map[string]any{"value": vs}); code != http.StatusOK {
		s.t.Fatalf("set variants: %d %s", code, b)
	}
}

type status struct {
	Online             bool    `json:"online"`
	LastConnectTime    *string `json:"lastConnectTime"`
	LastDisconnectTime *string `json:"lastDisconnectTime"`
	StreamTitle        string  `json:"streamTitle"`
	VersionNumber      string  `json:"versionNumber"`
}

func (s *testServer) status() status {
	s.t.Helper()
	var st status
	s.getJSON("/api/status", &st)
	return st
}

// mediaPlaylist fetches and decodes a media playlist, or returns nil.
func (s *testServer) mediaPlaylist(path string) *m3u8.MediaPlaylist {
	s.t.Helper()
	code, b := s.get(path)
	if code != http.StatusOK {
		return nil
	}
	pl, typ, err := m3u8.DecodeFrom(bytes.NewReader(b), true)
	if err != nil || typ != m3u8.MEDIA {
		s.t.Fatalf("%s is not a media playlist (%v):\n%s", path, err, b)
	}
	return pl.(*m3u8.MediaPlaylist)
}

// liveServer starts a server with a stream live on it: a publisher
// pushing, and the first rendition's playlist listing two segments.
func liveServer(t *testing.T) *testServer {
	t.Helper()
	s := startServer(t)
	publish(t, s.RTMPURL+"/"+testStreamKey)
	s.waitSegments("/hls/0/stream.m3u8", 2)
	return s
}

// waitSegments waits until a media playlist lists at least n segments.
func (s *testServer) waitSegments(path string, n int) *m3u8.MediaPlaylist {
	s.t.Helper()
	var pl *m3u8.MediaPlaylist
	testrig.Eventually(s.t, 60*time.Second, fmt.Sprintf("%d segments in %s", n, path), func() (bool, string) {
		pl = s.mediaPlaylist(path)
		if pl == nil {
			return false, "no playlist"
		}
		return len(pl.GetAllSegments()) >= n, fmt.Sprintf("%d segments", len(pl.GetAllSegments()))
	})
	return pl
}

// publisher is an ffmpeg pushing a synthetic 640x360 test picture with a
// tone over RTMP, in real time, until stopped.
type publisher struct {
	t      *testing.T
	cmd    *exec.Cmd
	stderr *testrig.LogBuffer
	done   chan struct{}
	err    error
}

func publish(t *testing.T, url string, extra ...string) *publisher {
	t.Helper()
	args := []string{"-hide_banner", "-loglevel", "error", "-nostdin", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "60", "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-b:a", "64k"}
	args = append(args, extra...)
	args = append(args, "-f", "flv", url)
	p := &publisher{t: t, cmd: exec.Command("ffmpeg", args...), stderr: &testrig.LogBuffer{}, done: make(chan struct{})}
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start publisher: %v", err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.stopWith(syscall.SIGKILL) })
	return p
}

// exited waits for the publisher to end by itself and returns its error.
func (p *publisher) exited(timeout time.Duration) (error, bool) {
	select {
	case <-p.done:
		return p.err, true
	case <-time.After(timeout):
		return nil, false
	}
}

// stop ends the publisher as a streamer stopping OBS would.
func (p *publisher) stop() { p.stopWith(syscall.SIGINT) }

func (p *publisher) stopWith(sig syscall.Signal) {
	select {
	case <-p.done:
		return
	default:
	}
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// probe describes a media file as ffprobe sees it.
type probe struct {
	Streams []struct {
		CodecType string `json:"codec_type"`
		CodecName string `json:"codec_name"`
		Width     int    `json:"width"`
		Height    int    `json:"height"`
	} `json:"streams"`
	Format struct {
		Duration string `json:"duration"`
	} `json:"format"`
}

func ffprobe(t *testing.T, data []byte) probe {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "seg-*.ts")
	if err != nil {
		t.Fatal(err)
	}
	f.Write(data)
	f.Close()
	out, err := exec.Command("ffprobe", "-v", "error", "-show_entries",
		"stream=codec_type,codec_name,width,height:format=duration", "-of", "json", f.Name()).Output()
	if err != nil {
		t.Fatalf("ffprobe: %v", err)
	}
	var p probe
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatalf("ffprobe output: %v: %s", err, out)
	}
	return p
}

// packagerPlaylist decodes the media playlist name as the packager
// serves it, which it still does after the web server has stopped.
func packagerPlaylist(p *hls.Packager, name string) (*m3u8.MediaPlaylist, error) {
	w := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.URL.Path = name // as mounted, /hls/ stripped
	p.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %d %s", name, w.Code, w.Body)
	}
	pl, typ, err := m3u8.DecodeFrom(w.Body, true)
	if err != nil {
		return nil, err
	}
	if typ != m3u8.MEDIA {
		return nil, fmt.Errorf("%s is not a media playlist", name)
	}
	return pl.(*m3u8.MediaPlaylist), nil
}

func contains(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
