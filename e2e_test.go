package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/grafov/m3u8"

	"github.com/starling-live/starling/core"
	"github.com/starling-live/starling/core/testrig"
)

// TestLivePipeline follows a broadcast through its life: a wrong key, the
// stream going live in two renditions, a second publisher taking over,
// the publisher leaving, and coming back.
func TestLivePipeline(t *testing.T) {
	s := startServer(t)
	s.setVariants(
		core.Variant{Name: "360p", ScaledHeight: 360, VideoBitrate: 800, AudioPassthrough: true, Framerate: 30, CPUUsageLevel: 0},
		core.Variant{Name: "180p", ScaledHeight: 180, VideoBitrate: 300, AudioBitrate: 64, Framerate: 15, CPUUsageLevel: 0},
	)

	t.Run("wrong key is refused and not logged", func(t *testing.T) {
		const wrong = "not-the-key-987"
		p := publish(t, s.RTMPURL+"/"+wrong)
		if err, done := p.exited(30 * time.Second); !done || err == nil {
			t.Fatalf("a publisher with a wrong key was not refused (exited=%v, err=%v)", done, err)
		}
		if s.status().Online {
			t.Error("the stream went online with a wrong key")
		}
		logs := s.logs.String()
		if !strings.Contains(logs, "wrong stream key") || !strings.Contains(logs, "remote=127.0.0.1:") {
			t.Errorf("the refusal is not logged with the publisher's address:\n%s", logs)
		}
		if strings.Contains(logs, wrong) || strings.Contains(logs, testStreamKey) {
			t.Error("a stream key appears in the log")
		}
	})

	pub := publish(t, s.RTMPURL+"/"+testStreamKey)

	t.Run("live in two renditions", func(t *testing.T) {
		testrig.Eventually(t, 30*time.Second, "status online", func() (bool, string) {
			st := s.status()
			return st.Online && st.LastConnectTime != nil, fmt.Sprintf("%+v", st)
		})
		var master m3u8.MasterPlaylist
		testrig.Eventually(t, 60*time.Second, "the master playlist", func() (bool, string) {
			code, b := s.get("/hls/stream.m3u8")
			if code != http.StatusOK {
				return false, strconv.Itoa(code)
			}
			if err := master.DecodeFrom(bytes.NewReader(b), true); err != nil {
				t.Fatalf("master playlist: %v\n%s", err, b)
			}
			return true, ""
		})
		if len(master.Variants) != 2 {
			t.Fatalf("%d variants in the master playlist, want 2", len(master.Variants))
		}
		for i, want := range []struct {
			res    string
			width  int
			height int
			audio  bool
		}{{"640x360", 640, 360, true}, {"320x180", 320, 180, true}} {
			v := master.Variants[i]
			if v.Resolution != want.res || v.Bandwidth == 0 || !strings.Contains(v.Codecs, "avc1") {
				t.Errorf("variant %d: %+v", i, v.VariantParams)
			}
			// A run's first four segments are short (a quick first
			// picture); the rest last the segment length.
			pl := s.waitSegments("/hls/"+v.URI, 6)
			segs := pl.GetAllSegments()
			if segs[0].Duration > 0.25 {
				t.Errorf("variant %d's first segment lasts %.3f s, want about 0.1", i, segs[0].Duration)
			}
			for _, seg := range segs {
				if seg.ProgramDateTime.IsZero() {
					t.Errorf("variant %d segment %s has no EXT-X-PROGRAM-DATE-TIME", i, seg.URI)
				}
			}
			// The newest segment decodes at the rendition's size and lasts
			// the default segment length.
			seg := segs[len(segs)-1]
			dir := v.URI[:strings.LastIndex(v.URI, "/")+1]
			code, data := s.get("/hls/" + dir + seg.URI)
			if code != http.StatusOK {
				t.Fatalf("segment %s: %d", seg.URI, code)
			}
			pr := ffprobe(t, data)
			var video, audio bool
			for _, st := range pr.Streams {
				switch st.CodecType {
				case "video":
					video = st.CodecName == "h264" && st.Width == want.width && st.Height == want.height
				case "audio":
					audio = st.CodecName == "aac"
				}
			}
			if !video || audio != want.audio {
				t.Errorf("variant %d segment probes as %+v", i, pr.Streams)
			}
			d, _ := strconv.ParseFloat(pr.Format.Duration, 64)
			length := float64(core.DefaultSettings().Video.SegmentSeconds)
			if math.Abs(d-length) > 0.25 || math.Abs(seg.Duration-length) > 0.1 {
				t.Errorf("variant %d segment lasts %.3f s (playlist says %.3f), want %g", i, d, seg.Duration, length)
			}
		}

		var as struct {
			Online      bool              `json:"online"`
			Broadcaster *core.Broadcaster `json:"broadcaster"`
		}
		code, b := s.admin(http.MethodGet, "/api/admin/status", nil)
		if code != http.StatusOK {
			t.Fatalf("admin status: %d %s", code, b)
		}
		if err := json.Unmarshal(b, &as); err != nil || as.Broadcaster == nil {
			t.Fatalf("admin status: %v %s", err, b)
		}
		d := as.Broadcaster.StreamDetails
		if d.Width != 640 || d.Height != 360 || d.VideoCodec != "H.264" || d.AudioCodec != "AAC" || !strings.HasPrefix(d.Encoder, "Lavf") {
			t.Errorf("broadcaster details %+v", d)
		}
		if !strings.HasPrefix(as.Broadcaster.RemoteAddr, "127.0.0.1:") {
			t.Errorf("broadcaster address %q", as.Broadcaster.RemoteAddr)
		}

		testrig.Eventually(t, 30*time.Second, "a thumbnail", func() (bool, string) {
			resp, err := http.Get(s.URL + "/thumbnail.jpg")
			if err != nil {
				return false, err.Error()
			}
			defer resp.Body.Close()
			b := make([]byte, 3)
			n, _ := io.ReadFull(resp.Body, b)
			return resp.StatusCode == http.StatusOK && resp.Header.Get("Content-Type") == "image/jpeg" && bytes.Equal(b[:n], []byte{0xff, 0xd8, 0xff}),
				fmt.Sprintf("%d %s % x", resp.StatusCode, resp.Header.Get("Content-Type"), b[:n])
		})
	})

	t.Run("ffmpeg dying mid-stream is restarted", func(t *testing.T) {
		pid := transcoderPID(t)
		syscall.Kill(pid, syscall.SIGKILL)
		testrig.Eventually(t, 60*time.Second, "segments after a discontinuity", func() (bool, string) {
			pl := s.mediaPlaylist("/hls/0/stream.m3u8")
			segs := pl.GetAllSegments()
			for i, seg := range segs {
				if seg.Discontinuity {
					return len(segs)-i >= 2, fmt.Sprintf("discontinuity at %d of %d", i, len(segs))
				}
			}
			return pl.DiscontinuitySeq > 0, "no discontinuity yet"
		})
		if !s.status().Online {
			t.Error("the stream went offline when ffmpeg died")
		}
		if !strings.Contains(s.logs.String(), "restarting it") {
			t.Error("the restart is not logged")
		}
	})

	t.Run("second publisher takes over", func(t *testing.T) {
		before := s.mediaPlaylist("/hls/0/stream.m3u8")
		next := publish(t, s.RTMPURL+"/"+testStreamKey)
		// The first one is disconnected, the stream goes on from the new one.
		if _, done := pub.exited(30 * time.Second); !done {
			t.Fatal("the first publisher was not disconnected")
		}
		if !strings.Contains(s.logs.String(), "took over the broadcast") {
			t.Error("the takeover is not logged")
		}
		pub = next
		testrig.Eventually(t, 60*time.Second, "new segments after a discontinuity", func() (bool, string) {
			now := s.mediaPlaylist("/hls/0/stream.m3u8")
			return now.SeqNo+uint64(len(now.GetAllSegments())) > before.SeqNo+uint64(len(before.GetAllSegments()))+1 &&
				now.DiscontinuitySeq+countDiscontinuities(now) > before.DiscontinuitySeq+countDiscontinuities(before), ""
		})
		if !s.status().Online {
			t.Error("the stream went offline")
		}
	})

	var lastSeq uint64
	t.Run("publisher leaves", func(t *testing.T) {
		pub.stop()
		testrig.Eventually(t, 30*time.Second, "status offline", func() (bool, string) {
			st := s.status()
			return !st.Online && st.LastDisconnectTime != nil, fmt.Sprintf("%+v", st)
		})
		pl := s.mediaPlaylist("/hls/0/stream.m3u8")
		if pl == nil || !pl.Closed {
			t.Fatal("the media playlist was not closed with EXT-X-ENDLIST")
		}
		lastSeq = pl.SeqNo + uint64(len(pl.GetAllSegments()))
		if code, _ := s.get("/hls/stream.m3u8"); code != http.StatusNotFound {
			t.Errorf("the master playlist answers %d while offline, want 404", code)
		}
	})

	t.Run("publisher returns", func(t *testing.T) {
		publish(t, s.RTMPURL+"/"+testStreamKey)
		testrig.Eventually(t, 30*time.Second, "status online again", func() (bool, string) { return s.status().Online, "" })
		testrig.Eventually(t, 60*time.Second, "the master playlist again", func() (bool, string) {
			code, _ := s.get("/hls/stream.m3u8")
			return code == http.StatusOK, strconv.Itoa(code)
		})
		pl := s.waitSegments("/hls/0/stream.m3u8", 2)
		if pl.Closed {
			t.Error("the new broadcast's playlist is closed")
		}
		if pl.SeqNo < lastSeq {
			t.Errorf("media sequence went back from %d to %d: cached segments would be replayed", lastSeq, pl.SeqNo)
		}
	})
}

func TestPassthrough(t *testing.T) {
	for _, tc := range []struct {
		name    string
		extra   []string
		streams int
	}{
		{"video and audio", nil, 2},
		// Without audio and without an announced bit rate, ffmpeg knows no
		// bandwidth for the master playlist: Starling must supply one.
		{"video only, no bit rate announced", []string{"-an"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t)
			s.setVariants(core.Variant{Name: "source", VideoPassthrough: true, AudioPassthrough: true})
			publish(t, s.RTMPURL+"/"+testStreamKey, tc.extra...)
			testrig.Eventually(t, 60*time.Second, "the master playlist", func() (bool, string) {
				code, b := s.get("/hls/stream.m3u8")
				return code == http.StatusOK && strings.Contains(string(b), "BANDWIDTH="), string(b)
			})
			pl := s.waitSegments("/hls/0/stream.m3u8", 2)
			seg := pl.GetAllSegments()[0]
			code, data := s.get("/hls/0/" + seg.URI)
			if code != http.StatusOK {
				t.Fatalf("segment: %d", code)
			}
			pr := ffprobe(t, data)
			if len(pr.Streams) != tc.streams || pr.Streams[0].CodecName != "h264" || pr.Streams[0].Width != 640 {
				t.Errorf("passthrough segment probes as %+v", pr.Streams)
			}
			if tc.streams == 2 && pr.Streams[1].CodecName != "aac" {
				t.Errorf("audio probes as %+v", pr.Streams[1])
			}
			// The publisher's key frames come every 60 frames at 30 fps.
			if math.Abs(seg.Duration-2) > 0.1 {
				t.Errorf("segment lasts %.3f s, want 2 (the publisher's key frame interval)", seg.Duration)
			}
			if strings.Contains(s.logs.String(), "libx264") {
				t.Error("passthrough ran the x264 encoder")
			}
		})
	}
}

// TestShutdownFinishesTheBroadcast stops the server while live, as
// SIGTERM does: ffmpeg must finish, the playlist must end, and the
// database must close.
func TestShutdownFinishesTheBroadcast(t *testing.T) {
	s := startServer(t)
	s.setVariants(core.Variant{Name: "source", VideoPassthrough: true, AudioPassthrough: true})
	publish(t, s.RTMPURL+"/"+testStreamKey)
	s.waitSegments("/hls/0/stream.m3u8", 1)
	if err := s.shutdown(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	logs := s.logs.String()
	if !contains(logs, "ffmpeg exited", "broadcast ended", "msg=stopped") {
		t.Errorf("shutdown did not finish the broadcast:\n%s", logs)
	}
	pl, err := packagerPlaylist(s.app.packager, "0/stream.m3u8")
	if err != nil || !pl.Closed {
		t.Errorf("the playlist was not closed on shutdown (%v)", err)
	}
}

// transcoderPID finds the server's ffmpeg transcoder among this process's
// children.
func transcoderPID(t *testing.T) int {
	t.Helper()
	var pid int
	testrig.Eventually(t, 10*time.Second, "the transcoder process", func() (bool, string) {
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			n, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			stat, err1 := os.ReadFile(fmt.Sprintf("/proc/%d/stat", n))
			cmdline, err2 := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", n))
			if err1 != nil || err2 != nil {
				continue
			}
			fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+2:]))
			if fields[1] == strconv.Itoa(os.Getpid()) && bytes.Contains(cmdline, []byte("-f\x00hls\x00")) {
				pid = n
				return true, ""
			}
		}
		return false, "none"
	})
	return pid
}

func TestInvalidSettingsAreRefusedWithAReason(t *testing.T) {
	s := startServer(t)
	code, body := s.admin(http.MethodPost, "/api/admin/config/video/streamoutputvariants",
		map[string]any{"value": []core.Variant{{Name: "bad", VideoBitrate: 5, Framerate: 30, AudioPassthrough: true}}})
	if code != http.StatusBadRequest || !strings.Contains(string(body), "video bitrate 5 kbit/s is out of range") {
		t.Errorf("invalid variant: %d %s", code, body)
	}
	code, body = s.admin(http.MethodPost, "/api/admin/config/streamtitle", "not an object")
	if code != http.StatusBadRequest || !strings.Contains(string(body), `"success":false`) {
		t.Errorf("malformed body: %d %s", code, body)
	}
	code, body = s.admin(http.MethodPost, "/api/admin/config/streamkeys", map[string]any{"value": []map[string]string{{"key": "short"}}})
	if code != http.StatusBadRequest || !strings.Contains(string(body), "is 5 characters long: use 8 to 256") {
		t.Errorf("short stream key: %d %s", code, body)
	}
	if st := s.status(); st.Online {
		t.Error("status changed")
	}
}

func countDiscontinuities(pl *m3u8.MediaPlaylist) uint64 {
	var n uint64
	for _, seg := range pl.GetAllSegments() {
		if seg.Discontinuity {
			n++
		}
	}
	return n
}
