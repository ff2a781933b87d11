package ingest

import (
	"math"
	"testing"
	"time"

	"github.com/starling-live/starling/video/flv"
)

// Tag bodies as an H.264/AAC publisher sends them (FLV spec E.4.2, E.4.3).
func videoTag(ts uint32, key bool, size int) flv.Tag {
	head := byte(0x27)
	if key {
		head = 0x17
	}
	d := make([]byte, size)
	d[0], d[1] = head, 1
	return flv.Tag{Type: flv.TagVideo, Timestamp: ts, Data: d}
}

func audioTag(ts uint32, size int) flv.Tag {
	d := make([]byte, size)
	d[0], d[1] = 0xaf, 1
	return flv.Tag{Type: flv.TagAudio, Timestamp: ts, Data: d}
}

// stream is a publisher's stream: fps video frames of videoSize bytes a
// second with a key frame every gop, and 40 audio tags of 500 bytes a
// second, arriving on time.
type stream struct {
	fps, gop, videoSize int
}

// play observes the stream's tags from second from to second to, in the
// order they arrive.
func (s stream) play(m *meter, from, to float64) {
	v := int(math.Ceil(from * float64(s.fps)))
	a := int(math.Ceil(from * 40))
	for {
		vAt := time.Duration(float64(v) / float64(s.fps) * float64(time.Second))
		aAt := time.Duration(a) * time.Second / 40
		switch {
		case vAt.Seconds() >= to && aAt.Seconds() >= to:
			return
		case vAt <= aAt:
			m.observe(videoTag(uint32(vAt.Milliseconds()), v%s.gop == 0, s.videoSize), m.start.Add(vAt))
			v++
		default:
			m.observe(audioTag(uint32(aAt.Milliseconds()), 500), m.start.Add(aAt))
			a++
		}
	}
}

func TestMeterWindow(t *testing.T) {
	obs := stream{fps: 30, gop: 60, videoSize: 10_000} // 2.4 Mbit/s video, key frames every 2 s
	const audioKbps = 40 * 500 * 8 / 1000.0
	// The window ends with the bucket now is in, partly filled: at a
	// bucket boundary, the rates cover the 19 buckets before.
	const full = Window - meterBucket
	secs := func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
	tests := []struct {
		name string
		// play runs the stream over these [from, to) seconds.
		play [][2]float64
		at   float64
		want Stats
	}{
		{
			name: "nothing yet",
			at:   3,
			want: Stats{LastFrameAge: 3 * time.Second, Span: 3 * time.Second},
		},
		{
			name: "first second",
			play: [][2]float64{{0, 1}},
			at:   1,
			want: Stats{Bitrate: 2400 + audioKbps, VideoBitrate: 2400, Framerate: 30, LastFrameAge: secs(1 - 29.0/30), Span: time.Second},
		},
		{
			name: "steady",
			play: [][2]float64{{0, 20}},
			at:   20,
			want: Stats{Bitrate: 2400 + audioKbps, VideoBitrate: 2400, Framerate: 30, KeyframeInterval: 2 * time.Second, LastFrameAge: secs(1.0 / 30), Span: full},
		},
		{
			name: "steady, between buckets",
			play: [][2]float64{{0, 20.1}},
			at:   20.1,
			want: Stats{Bitrate: 2400 + audioKbps, VideoBitrate: 2400, Framerate: 30, KeyframeInterval: 2 * time.Second, LastFrameAge: secs(1.0 / 30), Span: secs(4.85)},
		},
		{
			name: "stalled for two seconds",
			play: [][2]float64{{0, 10}},
			at:   12,
			// 2.75 s of the 4.75 had frames.
			want: Stats{Bitrate: (2400 + audioKbps) * 2.75 / 4.75, VideoBitrate: 2400 * 2.75 / 4.75, Framerate: 30 * 2.75 / 4.75,
				KeyframeInterval: 2 * time.Second, LastFrameAge: secs(2 + 1.0/30), Span: full},
		},
		{
			name: "stalled for longer than the window",
			play: [][2]float64{{0, 10}},
			at:   16,
			want: Stats{KeyframeInterval: 2 * time.Second, LastFrameAge: secs(6 + 1.0/30), Span: full},
		},
		{
			name: "resumed after a stall",
			play: [][2]float64{{0, 10}, {30, 40}},
			at:   40,
			want: Stats{Bitrate: 2400 + audioKbps, VideoBitrate: 2400, Framerate: 30, KeyframeInterval: 2 * time.Second, LastFrameAge: secs(1.0 / 30), Span: full},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMeter(time.Unix(1000, 0))
			for _, p := range tt.play {
				obs.play(m, p[0], p[1])
			}
			got := m.stats(m.start.Add(secs(tt.at)))
			near := func(what string, got, want float64) {
				t.Helper()
				// Half a frame in or out of the window is up to 0.6 %.
				if math.Abs(got-want) > 0.01*max(want, 1) {
					t.Errorf("%s = %.3f, want %.3f", what, got, want)
				}
			}
			near("Bitrate", got.Bitrate, tt.want.Bitrate)
			near("VideoBitrate", got.VideoBitrate, tt.want.VideoBitrate)
			near("Framerate", got.Framerate, tt.want.Framerate)
			near("KeyframeInterval", got.KeyframeInterval.Seconds(), tt.want.KeyframeInterval.Seconds())
			near("LastFrameAge", got.LastFrameAge.Seconds(), tt.want.LastFrameAge.Seconds())
			near("Span", got.Span.Seconds(), tt.want.Span.Seconds())
		})
	}
}

func TestMeterKeyframeInterval(t *testing.T) {
	seqHeader := flv.Tag{Type: flv.TagVideo, Data: []byte{0x17, 0, 0, 0, 0, 1, 0x64}}
	endOfSeq := flv.Tag{Type: flv.TagVideo, Data: []byte{0x17, 2, 0, 0, 0}}
	tests := []struct {
		name string
		tags []flv.Tag
		want time.Duration
	}{
		{"none", nil, 0},
		{"one", []flv.Tag{videoTag(0, true, 10)}, 0},
		{"two", []flv.Tag{videoTag(1000, true, 10), videoTag(3000, false, 10), videoTag(11_000, true, 10)}, 10 * time.Second},
		{"the last two count", []flv.Tag{videoTag(0, true, 10), videoTag(10_000, true, 10), videoTag(12_000, true, 10)}, 2 * time.Second},
		{"sequence headers are not key frames", []flv.Tag{seqHeader, videoTag(500, true, 10), seqHeader, videoTag(2500, true, 10), seqHeader}, 2 * time.Second},
		{"end of sequence is not a key frame", []flv.Tag{videoTag(0, true, 10), videoTag(2000, true, 10), endOfSeq}, 2 * time.Second},
		{"audio does not count", []flv.Tag{videoTag(0, true, 10), audioTag(1000, 10), videoTag(4000, true, 10)}, 4 * time.Second},
		{"a clock going back starts again", []flv.Tag{videoTag(50_000, true, 10), videoTag(52_000, true, 10), videoTag(0, true, 10)}, 0},
		{"and measures after it", []flv.Tag{videoTag(50_000, true, 10), videoTag(0, true, 10), videoTag(3000, true, 10)}, 3 * time.Second},
		{"timestamps past 2^31 ms", []flv.Tag{videoTag(1<<31+1000, true, 10), videoTag(1<<31+3000, true, 10)}, 2 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMeter(time.Unix(1000, 0))
			for _, tag := range tt.tags {
				m.observe(tag, m.start)
			}
			if got := m.stats(m.start).KeyframeInterval; got != tt.want {
				t.Errorf("KeyframeInterval = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestMeterCountsPicturesOnly(t *testing.T) {
	m := newMeter(time.Unix(1000, 0))
	at := m.start.Add(time.Second)
	for _, tag := range []flv.Tag{
		{Type: flv.TagVideo, Data: []byte{0x17, 0, 0, 0, 0}}, // sequence header
		{Type: flv.TagVideo, Data: []byte{0x17, 2, 0, 0, 0}}, // end of sequence
		{Type: flv.TagVideo, Data: []byte{0x17}},             // too short to tell
		audioTag(0, 100),
		videoTag(0, true, 100),
		videoTag(33, false, 100),
	} {
		m.observe(tag, at)
	}
	s := m.stats(at)
	if s.Framerate != 2 {
		t.Errorf("Framerate = %v over 1 s, want the 2 pictures", s.Framerate)
	}
	if want := float64(5+5+1+100+100+100) * 8 / 1000; math.Abs(s.Bitrate-want) > 1e-9 {
		t.Errorf("Bitrate = %v, want %v", s.Bitrate, want)
	}
}

func TestMeterIgnoresATagFromTheWindowBefore(t *testing.T) {
	m := newMeter(time.Unix(1000, 0))
	now := m.start.Add(10 * time.Second)
	m.observe(videoTag(0, false, 100), now)
	// 5 s earlier maps to the same slot of the ring; it must not wipe it.
	m.observe(videoTag(0, false, 100), now.Add(-Window))
	if s := m.stats(now); s.Framerate*s.Span.Seconds() != 1 {
		t.Errorf("%+v: want the one frame of now", s)
	}
}

func TestMeterToleratesAClockBeforeItsStart(t *testing.T) {
	m := newMeter(time.Unix(1000, 0))
	early := m.start.Add(-time.Second)
	m.observe(videoTag(0, true, 100), early)
	s := m.stats(early)
	if s.Span != 0 || s.Framerate != 0 || s.LastFrameAge != 0 {
		t.Errorf("%+v", s)
	}
}
