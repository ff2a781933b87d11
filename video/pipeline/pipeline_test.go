package pipeline

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/starling-live/starling/core"
	"github.com/starling-live/starling/core/data"
	"github.com/starling-live/starling/core/testrig"
	"github.com/starling-live/starling/storage/local"
	"github.com/starling-live/starling/video/hls"
	"github.com/starling-live/starling/video/ingest"
	"github.com/starling-live/starling/video/thumbnail"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// requireFFmpeg skips without ffmpeg, unless STARLING_REQUIRE_TOOLS is set
// (build/test.sh sets it): there a missing tool fails the test.
func requireFFmpeg(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		if os.Getenv("STARLING_REQUIRE_TOOLS") != "" {
			t.Fatal("ffmpeg is not installed: run build/test.sh, which installs it")
		}
		t.Skip("ffmpeg is not installed (build/test.sh installs it)")
	}
}

type keys string

func (k keys) CheckStreamKey(s string) bool { return s == string(k) }

// rig is a pipeline wired as main wires it, on loopback ports with a
// temporary data directory.
type rig struct {
	pipeline *Pipeline
	stream   *core.Stream
	hlsDir   string
	hls      http.Handler // the packager, serving the stream
	thumbDir string       // where the thumbnail is stored
	rtmpURL  string       // rtmp://127.0.0.1:PORT/live/KEY
	logs     *testrig.LogBuffer
}

const streamKey = "pipeline-test-key"

func startRig(t *testing.T, video core.VideoSettings) *rig {
	t.Helper()
	requireFFmpeg(t)
	ctx := context.Background()
	dir := t.TempDir()
	logs := &testrig.LogBuffer{}
	log := logs.Logger()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log:\n%s", logs)
		}
	})

	store, err := data.Open(ctx, filepath.Join(dir, "starling.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	settings, err := core.LoadSettings(ctx, store)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := settings.Update(ctx, func(s *core.Settings) error { s.Video = video; return nil }); err != nil {
		t.Fatal(err)
	}
	stream, err := core.NewStream(ctx, core.StreamDeps{Logger: log, Store: store, Settings: settings})
	if err != nil {
		t.Fatal(err)
	}
	stream.Start()
	t.Cleanup(func() { stream.Close() })
	hlsStore, err := local.New(filepath.Join(dir, "hls"))
	if err != nil {
		t.Fatal(err)
	}
	files, err := os.OpenRoot(hlsStore.Dir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { files.Close() })
	packager := hls.New(hls.Deps{Logger: log.With("component", "hls"), Storage: hlsStore, Files: files.FS()})
	thumbStore, err := local.New(filepath.Join(dir, "thumbnails"))
	if err != nil {
		t.Fatal(err)
	}
	thumbs := thumbnail.New(thumbnail.Deps{Logger: log.With("component", "thumbnail"), Store: thumbStore})
	packager.AddListener(thumbs)
	thumbs.Start(ctx)
	t.Cleanup(func() { thumbs.Close() })
	if err := packager.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { packager.Close() })
	p := New(Deps{Logger: log.With("component", "pipeline"), Stream: stream, Settings: settings, Packager: packager, FFmpeg: "ffmpeg"})
	t.Cleanup(p.Wait)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := ingest.New(ingest.Deps{Logger: log.With("component", "rtmp"), Keys: keys(streamKey), Handler: p})
	srv.Start(ln)
	t.Cleanup(func() { srv.Close() })
	return &rig{pipeline: p, stream: stream, hlsDir: hlsStore.Dir(), hls: packager, logs: logs, thumbDir: thumbStore.Dir(),
		rtmpURL: "rtmp://" + ln.Addr().String() + "/" + ingest.App + "/" + streamKey}
}

// publish runs ffmpeg as the publisher: 320x180 test video at 15 fps with
// a key frame every gop frames, and AAC audio, in real time.
func publish(t *testing.T, url string, seconds, gop int) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
		"-f", "lavfi", "-i", "testsrc=size=320x180:rate=15", "-f", "lavfi", "-i", "sine=sample_rate=44100",
		"-t", fmt.Sprint(seconds),
		"-c:v", "libx264", "-preset", "ultrafast", "-g", fmt.Sprint(gop), "-keyint_min", fmt.Sprint(gop),
		"-pix_fmt", "yuv420p", "-b:v", "300k",
		"-c:a", "aac", "-b:a", "64k",
		"-f", "flv", url)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("publisher output:\n%s", out.String())
		}
	})
	return cmd
}

// lightVideo is one small variant that a busy test machine transcodes in
// real time.
var lightVideo = core.VideoSettings{
	Codec:            "libx264",
	SegmentSeconds:   2,
	PlaylistSegments: 5,
	Variants: []core.Variant{{
		Name: "180p", ScaledHeight: 180, VideoBitrate: 300, AudioPassthrough: true, Framerate: 15, CPUUsageLevel: 0,
	}},
}

func TestHealthOfALiveStream(t *testing.T) {
	r := startRig(t, lightVideo)
	if h := r.pipeline.Health(); h.Online || h.Warnings == nil || len(h.Warnings) != 0 || h.UpdatedAt.IsZero() {
		t.Errorf("health before anyone publishes: %+v", h)
	}

	pub := publish(t, r.rtmpURL, 120, 30) // key frames every 2 s

	// What the publisher sends is known exactly, once the window no longer
	// reaches back before its first frame (the frame rate is 14 then).
	// ffmpeg starts with a burst through what queued while it started
	// (speed 3 or more), and then runs at real time, at least on average
	// over a few seconds; how close to 1 depends on the machine.
	var h core.StreamHealth
	testrig.Eventually(t, 60*time.Second, "health to measure a full window of the stream and ffmpeg at real time", func() (bool, string) {
		h = r.pipeline.Health()
		ok := h.Online &&
			h.IngestFramerate > 14.25 && h.IngestFramerate < 15.75 &&
			h.KeyframeIntervalSeconds > 1.9 && h.KeyframeIntervalSeconds < 2.1 &&
			h.VideoBitrateKbps > 0 && h.IngestBitrateKbps > h.VideoBitrateKbps &&
			h.TranscoderSpeed > 0.5 && h.TranscoderSpeed < 1.5 &&
			h.TranscoderFramerate > 0 && h.TranscoderOutTimeSeconds > 0
		return ok, fmt.Sprintf("%+v", h)
	})
	t.Logf("health: %+v", h)
	if h.LastFrameAgeSeconds > 1 {
		t.Errorf("last frame %.2f s ago while the publisher sends 15 a second", h.LastFrameAgeSeconds)
	}
	// Audio at 64 kbit/s and its framing: the total must exceed the video by about that.
	if audio := h.IngestBitrateKbps - h.VideoBitrateKbps; audio < 30 || audio > 120 {
		t.Errorf("audio bit rate %.0f kbit/s (total %.0f, video %.0f), want about 64", audio, h.IngestBitrateKbps, h.VideoBitrateKbps)
	}
	if h.TranscoderRestarts != 0 || h.SkippedFrames != 0 {
		t.Errorf("ffmpeg restarted %d times, %d frames skipped", h.TranscoderRestarts, h.SkippedFrames)
	}
	for _, w := range h.Warnings {
		// Only ffmpeg's speed depends on how busy the machine is.
		if !strings.HasPrefix(w, "ffmpeg runs at") {
			t.Errorf("warning about a healthy stream: %s", w)
		}
	}

	// The publisher leaves: nothing is live, and nothing is left to warn about.
	if err := pub.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	testrig.Eventually(t, 30*time.Second, "health to go offline", func() (bool, string) {
		h = r.pipeline.Health()
		return !h.Online, fmt.Sprintf("%+v", h)
	})
	if h.IngestFramerate != 0 || h.TranscoderSpeed != 0 || len(h.Warnings) != 0 {
		t.Errorf("health offline: %+v", h)
	}
}

func TestHealthWarnsOfSparseKeyFrames(t *testing.T) {
	r := startRig(t, lightVideo)
	publish(t, r.rtmpURL, 120, 45) // key frames every 3 s, segments of 2
	want := "key frames every 3 s: set the encoder's keyframe interval to 2 s"
	testrig.Eventually(t, 60*time.Second, "a warning about the key frames", func() (bool, string) {
		h := r.pipeline.Health()
		for _, w := range h.Warnings {
			if strings.HasPrefix(w, want) {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", h)
	})
}
