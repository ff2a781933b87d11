package transcode

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseProgressLine(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		done  bool
		want  progressBlock
	}{
		{
			name: "ffmpeg 5.1 block",
			lines: []string{"frame=107", "fps=100.61", "stream_0_0_q=29.0", "bitrate=N/A", "total_size=N/A",
				"out_time_us=3738222", "out_time_ms=3738222", "out_time=00:00:03.738222",
				"dup_frames=1", "drop_frames=2", "speed=3.52x", "progress=continue"},
			done: true,
			want: progressBlock{frame: 107, outTime: 3738222 * time.Microsecond, dup: 1, drop: 2, hasFrame: true, hasOutTime: true},
		},
		{
			name:  "last block",
			lines: []string{"frame=5", "out_time_us=200000", "progress=end"},
			done:  true,
			want:  progressBlock{frame: 5, outTime: 200 * time.Millisecond, hasFrame: true, hasOutTime: true, end: true},
		},
		{
			name:  "block not ended",
			lines: []string{"frame=5", "out_time_us=200000"},
			want:  progressBlock{frame: 5, outTime: 200 * time.Millisecond, hasFrame: true, hasOutTime: true},
		},
		{
			name:  "unknown values at the start",
			lines: []string{"frame=0", "out_time_us=N/A", "out_time_ms=N/A", "out_time=N/A", "dup_frames=0", "drop_frames=0", "speed=N/A", "progress=continue"},
			done:  true,
			want:  progressBlock{hasFrame: true},
		},
		{
			name:  "negative start time",
			lines: []string{"out_time_us=-23220", "progress=continue"},
			done:  true,
			want:  progressBlock{outTime: -23220 * time.Microsecond, hasOutTime: true},
		},
		{
			name:  "out_time when out_time_us is missing",
			lines: []string{"out_time=01:02:03.500000", "progress=continue"},
			done:  true,
			want:  progressBlock{outTime: time.Hour + 2*time.Minute + 3500*time.Millisecond, hasOutTime: true},
		},
		{
			name:  "negative out_time",
			lines: []string{"out_time=-00:00:00.023220"},
			want:  progressBlock{outTime: -23220 * time.Microsecond, hasOutTime: true},
		},
		{
			name:  "out_time_us wins over out_time",
			lines: []string{"out_time_us=1000000", "out_time=00:00:09.000000"},
			want:  progressBlock{outTime: time.Second, hasOutTime: true},
		},
		{
			name:  "spaces and carriage returns",
			lines: []string{"  frame = 12 \r", "speed= 121x", "progress=continue\r"},
			done:  true,
			want:  progressBlock{frame: 12, hasFrame: true},
		},
		{
			name: "garbage",
			lines: []string{"", "=", "frame", "frame=", "frame=abc", "frame=-3", "frame=1e3", "frame=99999999999999999999",
				"out_time_us=", "out_time_us=1.5", "out_time=1:2", "out_time=aa:bb:cc", "out_time=00:61:00.0", "out_time=00:00:60.0",
				"out_time=00:00:-1", "dup_frames=-1", "drop_frames=x", "[hls @ 0x55] Opening 'http://x' for writing",
				"Error writing trailer", "\x00\xff=\xfe", strings.Repeat("x", 5000)},
			want: progressBlock{},
		},
		{
			name:  "garbage before the end of a block",
			lines: []string{"frame=9", "Past duration 0.6 too large", "progress=continue"},
			done:  true,
			want:  progressBlock{frame: 9, hasFrame: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b progressBlock
			done := false
			for i, l := range tt.lines {
				done = parseProgressLine(l, &b)
				if done && i != len(tt.lines)-1 {
					t.Fatalf("line %q ended the block early", l)
				}
			}
			if done != tt.done {
				t.Errorf("done = %v, want %v", done, tt.done)
			}
			if b != tt.want {
				t.Errorf("block %+v, want %+v", b, tt.want)
			}
		})
	}
}

// progressReport is a block as ffmpeg 5.1 writes it.
func progressReport(frame int64, out time.Duration, dup, drop int64) string {
	return fmt.Sprintf("frame=%d\nfps=0.00\nstream_0_0_q=23.0\nbitrate=N/A\ntotal_size=N/A\nout_time_us=%d\nout_time_ms=%[2]d\n"+
		"out_time=00:00:00.000000\ndup_frames=%d\ndrop_frames=%d\nspeed=1x\nprogress=continue\n", frame, out.Microseconds(), dup, drop)
}

func TestProgressMeterReadsAStreamCutAnywhere(t *testing.T) {
	var stream strings.Builder
	stream.WriteString("garbage=\nnot a line of the report\nprogress=continue\n") // a block of nothing: ignored
	for i := range 11 {
		stream.WriteString(progressReport(int64(i*15), time.Duration(i)*500*time.Millisecond, 1, int64(i)))
	}
	for _, chunk := range []int{1, 3, 7, 64, 4096} {
		t.Run(fmt.Sprint(chunk), func(t *testing.T) {
			p := newProgressMeter()
			// The clock moves half a second with every block.
			now := time.Unix(1000, 0)
			p.clock = func() time.Time { now = now.Add(500 * time.Millisecond); return now }
			s := stream.String()
			for len(s) > 0 {
				n := min(chunk, len(s))
				if w, err := p.Write([]byte(s[:n])); w != n || err != nil {
					t.Fatalf("Write = %d, %v", w, err)
				}
				s = s[n:]
			}
			got := p.progress()
			if got.Frame != 150 || got.OutTime != 5*time.Second || got.DupFrames != 1 || got.DropFrames != 10 {
				t.Errorf("progress %+v", got)
			}
			if math.Abs(got.Speed-1) > 1e-9 || math.Abs(got.FPS-30) > 1e-9 {
				t.Errorf("speed %.2f, fps %.1f; want 1 and 30", got.Speed, got.FPS)
			}
		})
	}
}

func TestProgressMeterBoundsARunawayLine(t *testing.T) {
	p := newProgressMeter()
	for range 100 {
		p.Write([]byte(strings.Repeat("x", 1000)))
	}
	if len(p.partial) > maxProgressLine+1000 {
		t.Fatalf("a line without an end holds %d bytes", len(p.partial))
	}
	p.Write([]byte("\n" + progressReport(3, time.Second, 0, 0)))
	if got := p.progress(); got.Frame != 3 {
		t.Errorf("the report after a runaway line was lost: %+v", got)
	}
}

func TestProgressRates(t *testing.T) {
	t0 := time.Unix(1000, 0)
	// samples at the given offsets (s), with out time and frames per
	// second of wall time as given.
	type step struct {
		at    float64
		out   float64
		frame int64
	}
	tests := []struct {
		name       string
		steps      []step
		speed, fps float64
	}{
		{name: "none", steps: nil},
		{name: "one sample", steps: []step{{0, 0, 0}}},
		{name: "less than a second", steps: []step{{0, 0, 0}, {0.5, 0.5, 15}, {0.9, 0.9, 27}}},
		{
			name:  "real time at 30 fps",
			steps: []step{{0, 0, 0}, {0.5, 0.5, 15}, {1, 1, 30}, {1.5, 1.5, 45}, {2, 2, 60}},
			speed: 1, fps: 30,
		},
		{
			name:  "a burst at the start falls out of the window",
			steps: []step{{0, 0, 0}, {0.5, 6, 180}, {2, 7.5, 225}, {4, 9.5, 285}, {6, 11.5, 345}, {8, 13.5, 405}, {10, 15.5, 465}},
			speed: 1, fps: 30, // from 6 s back to 2 s
		},
		{
			name:  "falling behind",
			steps: []step{{0, 0, 0}, {1, 0.8, 24}, {2, 1.6, 48}, {3, 2.4, 72}},
			speed: 0.8, fps: 24,
		},
		{
			name:  "a restarted clock never gives a negative rate",
			steps: []step{{0, 50, 1500}, {1, 0, 0}, {2, 1, 30}},
			speed: 0, fps: 0,
		},
		{
			name:  "window exactly 5 s",
			steps: []step{{0, 0, 0}, {5, 4, 100}},
			speed: 0.8, fps: 20,
		},
		{
			name:  "a gap longer than the window",
			steps: []step{{0, 0, 0}, {6, 6, 180}},
			speed: 0, fps: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProgressMeter()
			for _, s := range tt.steps {
				p.add(progressBlock{frame: s.frame, outTime: time.Duration(s.out * float64(time.Second)), hasFrame: true, hasOutTime: true},
					t0.Add(time.Duration(s.at*float64(time.Second))))
			}
			got := p.progress()
			if math.Abs(got.Speed-tt.speed) > 1e-9 || math.Abs(got.FPS-tt.fps) > 1e-9 {
				t.Errorf("speed %v fps %v, want %v and %v", got.Speed, got.FPS, tt.speed, tt.fps)
			}
		})
	}
}

func TestProgressRatesOverAFullRing(t *testing.T) {
	p := newProgressMeter()
	t0 := time.Unix(1000, 0)
	// Ten times the ring, at four blocks a second: the window holds 21
	// samples, and the ones before must not count.
	for i := range 10 * progressSamples {
		at := time.Duration(i) * 250 * time.Millisecond
		out := at
		if i > 9*progressSamples {
			out = time.Duration(9*progressSamples)*250*time.Millisecond + (at-time.Duration(9*progressSamples)*250*time.Millisecond)/2
		}
		p.add(progressBlock{frame: int64(out / (time.Second / 30)), outTime: out, hasFrame: true, hasOutTime: true}, t0.Add(at))
	}
	got := p.progress()
	if math.Abs(got.Speed-0.5) > 0.01 || math.Abs(got.FPS-15) > 0.5 {
		t.Errorf("speed %.3f fps %.2f, want 0.5 and 15: the window reaches too far back", got.Speed, got.FPS)
	}
}

func TestProgressMeterCarriesUnknownValuesForward(t *testing.T) {
	p := newProgressMeter()
	t0 := time.Unix(1000, 0)
	p.add(progressBlock{frame: 30, outTime: time.Second, hasFrame: true, hasOutTime: true}, t0)
	// ffmpeg said "N/A" for the out time: the rate must not see a jump to 0.
	p.add(progressBlock{frame: 60, hasFrame: true}, t0.Add(time.Second))
	p.add(progressBlock{frame: 90, outTime: 3 * time.Second, hasFrame: true, hasOutTime: true}, t0.Add(2*time.Second))
	got := p.progress()
	if got.Speed != 1 || got.FPS != 30 || got.OutTime != 3*time.Second {
		t.Errorf("%+v", got)
	}
	if !got.UpdatedAt.Equal(t0.Add(2 * time.Second)) {
		t.Errorf("UpdatedAt %v", got.UpdatedAt)
	}
}
