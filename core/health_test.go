package core

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestHealthWarnings(t *testing.T) {
	// healthy is a 30 fps stream with key frames every 2 s that ffmpeg
	// keeps up with.
	healthy := StreamHealth{
		Online: true, IngestBitrateKbps: 2600, VideoBitrateKbps: 2500, IngestFramerate: 29.9,
		KeyframeIntervalSeconds: 2, LastFrameAgeSeconds: 0.03,
		TranscoderSpeed: 1.0, TranscoderFramerate: 30, TranscoderProgressAgeSeconds: 0.4,
	}
	targets := HealthTargets{KeyframeIntervalSeconds: 2, Framerate: 30}
	with := func(change func(*StreamHealth)) StreamHealth {
		h := healthy
		change(&h)
		return h
	}
	tests := []struct {
		name string
		h    StreamHealth
		want HealthTargets
		// warnings are the starts of the expected warnings, in order.
		warnings []string
	}{
		{"offline", StreamHealth{}, targets, nil},
		{"offline with stale numbers", with(func(h *StreamHealth) { h.Online = false; h.TranscoderSpeed = 0.1 }), targets, nil},
		{"healthy", healthy, targets, nil},
		// The frame rate is judged once a whole window is measured.
		{"just started: nothing measured", StreamHealth{Online: true, LastFrameAgeSeconds: 0.5, TranscoderProgressAgeSeconds: 0.5}, HealthTargets{KeyframeIntervalSeconds: 2}, nil},
		{
			"ffmpeg too slow", with(func(h *StreamHealth) { h.TranscoderSpeed = 0.8 }), targets,
			[]string{"ffmpeg runs at 0.80x real time: lower the output resolution or bitrate"},
		},
		{"ffmpeg just at the limit", with(func(h *StreamHealth) { h.TranscoderSpeed = 0.95 }), targets, nil},
		{"ffmpeg catching up", with(func(h *StreamHealth) { h.TranscoderSpeed = 4 }), targets, nil},
		{
			"OBS's automatic key frames", with(func(h *StreamHealth) { h.KeyframeIntervalSeconds = 8.333 }), targets,
			[]string{"key frames every 8.3 s: set the encoder's keyframe interval to 2 s (OBS: Settings > Output > Keyframe Interval)"},
		},
		{
			"key frames against longer segments", with(func(h *StreamHealth) { h.KeyframeIntervalSeconds = 10 }), HealthTargets{KeyframeIntervalSeconds: 4},
			[]string{"key frames every 10 s: set the encoder's keyframe interval to 4 s"},
		},
		{"key frames a few frames late", with(func(h *StreamHealth) { h.KeyframeIntervalSeconds = 2.1 }), targets, nil},
		{"key frames more often than needed", with(func(h *StreamHealth) { h.KeyframeIntervalSeconds = 1 }), targets, nil},
		{
			"encoder stalled", with(func(h *StreamHealth) {
				h.LastFrameAgeSeconds, h.IngestFramerate, h.TranscoderProgressAgeSeconds = 20, 0, 20
			}), targets,
			// Neither the frame rate nor ffmpeg's silence is worth a word
			// while nothing arrives.
			[]string{"no video from the encoder for 20 s: check that it is still streaming"},
		},
		{
			"encoder drops frames", with(func(h *StreamHealth) { h.IngestFramerate = 21.56 }), targets,
			[]string{"the encoder sends 21.6 frames/s of the 30 it announced: it is overloaded"},
		},
		{"frame rate not yet judged", with(func(h *StreamHealth) { h.IngestFramerate = 12 }), HealthTargets{KeyframeIntervalSeconds: 2}, nil},
		{"slight frame rate jitter", with(func(h *StreamHealth) { h.IngestFramerate = 28 }), targets, nil},
		{
			"ffmpeg silent", with(func(h *StreamHealth) { h.TranscoderSpeed, h.TranscoderProgressAgeSeconds = 0, 16 }), targets,
			[]string{"ffmpeg has reported no progress for 16 s: it is starting, restarting after a failure, or hung"},
		},
		{"ffmpeg starting", with(func(h *StreamHealth) { h.TranscoderSpeed, h.TranscoderProgressAgeSeconds = 0, 9 }), targets, nil},
		{
			"everything at once", with(func(h *StreamHealth) {
				h.IngestFramerate, h.KeyframeIntervalSeconds, h.TranscoderSpeed = 20, 10, 0.5
			}), targets,
			[]string{"the encoder sends 20 frames/s", "key frames every 10 s", "ffmpeg runs at 0.50x"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := HealthWarnings(tt.h, tt.want)
			if got == nil {
				t.Fatal("nil warnings: they must encode as a JSON array")
			}
			ok := len(got) == len(tt.warnings)
			for i := 0; ok && i < len(got); i++ {
				ok = strings.HasPrefix(got[i], tt.warnings[i])
			}
			if !ok {
				t.Errorf("warnings:\n  %s\nwant ones starting:\n  %s", strings.Join(got, "\n  "), strings.Join(tt.warnings, "\n  "))
			}
			for _, w := range got {
				if !strings.Contains(w, ": ") {
					t.Errorf("warning %q does not say what to do", w)
				}
			}
		})
	}
}

func TestStreamHealthJSON(t *testing.T) {
	b, err := json.Marshal(StreamHealth{Online: true, Warnings: HealthWarnings(StreamHealth{}, HealthTargets{})})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"droppedFrames", "duplicatedFrames", "ingestBitrateKbps", "ingestFramerate", "keyframeIntervalSeconds",
		"lastFrameAgeSeconds", "online", "skippedFrames", "transcoderFramerate", "transcoderOutTimeSeconds",
		"transcoderProgressAgeSeconds", "transcoderRestarts", "transcoderSpeed", "updatedAt", "videoBitrateKbps", "warnings"}
	if !slices.Equal(keys, want) {
		t.Errorf("JSON keys %v, want %v", keys, want)
	}
	if !strings.Contains(string(b), `"warnings":[]`) {
		t.Errorf("warnings are not an empty array: %s", b)
	}
}
