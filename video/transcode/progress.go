package transcode

import (
	"bytes"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Progress is how an ffmpeg run is doing, from the blocks of key=value
// lines it writes with -progress (ffmpeg's print_report): "frame=",
// "out_time_us=", "dup_frames=", ..., ending with "progress=continue"
// every half second and "progress=end" at exit.
type Progress struct {
	// Run numbers ffmpeg's runs in this session, from 1; 0 before the first.
	Run int
	// Frame is how many frames the first video output has had, OutTime
	// how far into the stream the output has got.
	Frame   int64
	OutTime time.Duration
	// DupFrames and DropFrames are what ffmpeg's frame rate conversion
	// duplicated and dropped, summed over the session's runs.
	DupFrames, DropFrames int64
	// Speed is output media time per wall-clock second, FPS output frames
	// per second, both over the last progressWindow; 0 until measured.
	// ffmpeg's own speed= and fps= average over the whole run, which a
	// burst at the start (the queue ffmpeg finds) skews for minutes.
	Speed, FPS float64
	// UpdatedAt is when the newest block arrived; zero if none has.
	UpdatedAt time.Time
	// SkippedFrames counts video frames the session dropped before they
	// reached ffmpeg, because ffmpeg was not keeping up.
	SkippedFrames int64
}

// progressWindow is how far back Speed and FPS look, and progressSamples
// how many blocks the window can hold: ffmpeg writes one every
// -stats_period (0.5 s by default).
const (
	progressWindow  = 5 * time.Second
	progressSamples = 32
)

// progressBlock is one block of ffmpeg's progress report. Fields ffmpeg
// wrote as "N/A", or not at all, stay unset.
type progressBlock struct {
	frame, dup, drop     int64
	outTime              time.Duration
	hasFrame, hasOutTime bool
	end                  bool
}

// parseProgressLine adds one line of ffmpeg's progress output to b and
// reports whether it ended the block. Lines that are not key=value, keys
// it does not use, and values that do not parse are ignored: the format
// gains keys across ffmpeg versions and reads "N/A" for what is unknown.
func parseProgressLine(line string, b *progressBlock) (done bool) {
	key, val, ok := strings.Cut(line, "=")
	if !ok {
		return false
	}
	key, val = strings.TrimSpace(key), strings.TrimSpace(val)
	switch key {
	case "frame":
		if n, err := strconv.ParseInt(val, 10, 64); err == nil && n >= 0 {
			b.frame, b.hasFrame = n, true
		}
	case "out_time_us":
		if n, err := strconv.ParseInt(val, 10, 64); err == nil {
			b.outTime, b.hasOutTime = time.Duration(n)*time.Microsecond, true
		}
	case "out_time":
		// The same time as out_time_us, which wins. out_time_ms is
		// skipped: it holds microseconds too (an old ffmpeg mistake kept
		// for compatibility).
		if b.hasOutTime {
			break
		}
		if d, ok := parseClock(val); ok {
			b.outTime, b.hasOutTime = d, true
		}
	case "dup_frames":
		if n, err := strconv.ParseInt(val, 10, 64); err == nil && n >= 0 {
			b.dup = n
		}
	case "drop_frames":
		if n, err := strconv.ParseInt(val, 10, 64); err == nil && n >= 0 {
			b.drop = n
		}
	case "progress":
		b.end = val == "end"
		return true
	}
	return false
}

// parseClock reads ffmpeg's [-]HH:MM:SS.micro.
func parseClock(s string) (time.Duration, bool) {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return 0, false
	}
	h, err1 := strconv.ParseUint(parts[0], 10, 32)
	m, err2 := strconv.ParseUint(parts[1], 10, 8)
	sec, err3 := strconv.ParseFloat(parts[2], 64)
	if err1 != nil || err2 != nil || err3 != nil || m >= 60 || sec < 0 || sec >= 60 {
		return 0, false
	}
	d := time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(sec*float64(time.Second))
	if neg {
		d = -d
	}
	return d, true
}

// sample is a progress block as the rates need it.
type sample struct {
	at      time.Time
	frame   int64
	outTime time.Duration
}

// progressMeter is one ffmpeg run's progress: ffmpeg's standard output,
// written by exec's copying goroutine, read by Session.Progress.
type progressMeter struct {
	// mu guards the fields below.
	mu      sync.Mutex
	partial []byte
	block   progressBlock
	last    progressBlock
	// ring holds the newest n samples, newest at ring[(next-1)%len].
	ring [progressSamples]sample
	next int
	n    int
	// clock is time.Now; tests replace it.
	clock func() time.Time
}

func newProgressMeter() *progressMeter { return &progressMeter{clock: time.Now} }

// maxProgressLine bounds a line, so that output that never ends a line
// cannot grow the buffer.
const maxProgressLine = 1024

func (p *progressMeter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.partial = append(p.partial, b...)
	for {
		i := bytes.IndexAny(p.partial, "\r\n")
		if i < 0 {
			break
		}
		p.line(string(p.partial[:i]))
		p.partial = p.partial[i+1:]
	}
	if len(p.partial) > maxProgressLine {
		p.partial = p.partial[:0]
	}
	return len(b), nil
}

func (p *progressMeter) line(s string) {
	if !parseProgressLine(s, &p.block) {
		return
	}
	b := p.block
	p.block = progressBlock{}
	p.add(b, p.clock())
}

// add records a complete block that arrived at now.
func (p *progressMeter) add(b progressBlock, now time.Time) {
	if !b.hasFrame && !b.hasOutTime && !b.end {
		return // nothing a block can be judged by: garbage before "progress="
	}
	// A value ffmpeg could not give this time keeps the last one, so
	// that rates never go backwards.
	if !b.hasFrame {
		b.frame = p.last.frame
	}
	if !b.hasOutTime {
		b.outTime = p.last.outTime
	}
	p.last = b
	p.ring[p.next] = sample{at: now, frame: b.frame, outTime: b.outTime}
	p.next = (p.next + 1) % len(p.ring)
	p.n = min(p.n+1, len(p.ring))
}

// progress returns the run's numbers; Run and the session's totals are the
// caller's to fill in.
func (p *progressMeter) progress() Progress {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n == 0 {
		return Progress{}
	}
	newest := p.ring[(p.next-1+len(p.ring))%len(p.ring)]
	pr := Progress{
		Frame:      p.last.frame,
		OutTime:    p.last.outTime,
		DupFrames:  p.last.dup,
		DropFrames: p.last.drop,
		UpdatedAt:  newest.at,
	}
	pr.Speed, pr.FPS = rates(p.ring[:], p.next, p.n, progressWindow)
	return pr
}

// rates measures speed and frame rate between the newest sample and the
// oldest one no more than window before it, in a ring of n samples whose
// next slot is next. It needs a second of history.
func rates(ring []sample, next, n int, window time.Duration) (speed, fps float64) {
	at := func(i int) sample { return ring[(next-1-i+2*len(ring))%len(ring)] } // i back from the newest
	newest := at(0)
	oldest := newest
	for i := 1; i < n; i++ {
		s := at(i)
		if newest.at.Sub(s.at) > window {
			break
		}
		oldest = s
	}
	span := newest.at.Sub(oldest.at).Seconds()
	if span < 1 {
		return 0, 0
	}
	speed = max((newest.outTime-oldest.outTime).Seconds()/span, 0)
	fps = max(float64(newest.frame-oldest.frame)/span, 0)
	return speed, fps
}
