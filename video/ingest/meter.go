package ingest

import (
	"sync"
	"time"

	"github.com/starling-live/starling/video/flv"
)

// Window is how far back the ingest rates look.
const Window = 5 * time.Second

// The window is a ring of buckets: the rates sum the buckets of the last
// Window, the newest one partly filled, so the span they cover is between
// Window-meterBucket and Window.
const (
	meterBucket  = 250 * time.Millisecond
	meterBuckets = int(Window / meterBucket)
)

// Stats are what a publisher sent lately.
type Stats struct {
	// Bitrate counts the audio and video tag bodies, VideoBitrate the video
	// ones, in kbit/s over the last Window.
	Bitrate, VideoBitrate float64
	// Framerate is video frames per second over the last Window.
	Framerate float64
	// KeyframeInterval is the media time between the last two key frames;
	// 0 until two have arrived.
	KeyframeInterval time.Duration
	// LastFrameAge is how long ago the newest video frame arrived, or the
	// publisher started if none has.
	LastFrameAge time.Duration
	// Span is the time the rates are measured over: Window, or less in the
	// first seconds of a broadcast.
	Span time.Duration
}

// Full reports whether the rates cover a whole window: before, a slow
// start weighs more than it will.
func (s Stats) Full() bool { return s.Span >= Window-meterBucket }

// bucket holds what arrived in one meterBucket.
type bucket struct {
	// n is the bucket's number, counted from the meter's start; a slot of
	// the ring whose n is too old is ignored.
	n            int64
	bytes, video int64
	frames       int64
}

// meter measures a publisher's stream. observe runs on the connection's
// goroutine for every tag, so it holds mu for a few additions and never
// allocates; stats may run on any goroutine.
type meter struct {
	// start is when the publisher was accepted; bucket numbers count from
	// it on the monotonic clock. Set once by newMeter.
	start time.Time

	// mu guards the fields below.
	mu      sync.Mutex
	ring    [meterBuckets]bucket
	lastVid time.Time
	// keys counts key frames up to 2; lastKey and prevKey are the media
	// times (ms) of the newest two.
	keys             int
	lastKey, prevKey uint32
}

func newMeter(start time.Time) *meter {
	m := &meter{start: start, lastVid: start}
	for i := range m.ring {
		m.ring[i].n = -1
	}
	return m
}

// isFrame reports whether a video tag carries a picture, rather than the
// decoder configuration or an AVC end of sequence (FLV spec E.4.3).
func isFrame(t flv.Tag) bool {
	return t.Type == flv.TagVideo && len(t.Data) >= 2 && !t.IsSequenceHeader() &&
		(t.Data[0]&0x0f != flv.CodecIDAVC || t.Data[1] == 1)
}

func (m *meter) observe(t flv.Tag, now time.Time) {
	n := max(int64(now.Sub(m.start)/meterBucket), 0)
	frame := isFrame(t)
	m.mu.Lock()
	b := &m.ring[n%int64(meterBuckets)]
	if b.n < n {
		*b = bucket{n: n}
	}
	// A slot holding a newer bucket than n would mean the clock went
	// back; the tag then counts nowhere.
	if b.n == n {
		b.bytes += int64(len(t.Data))
		if t.Type == flv.TagVideo {
			b.video += int64(len(t.Data))
		}
		if frame {
			b.frames++
		}
	}
	if frame {
		m.lastVid = now
		if t.Data[0]>>4 == 1 {
			m.keyframe(t.Timestamp)
		}
	}
	m.mu.Unlock()
}

// keyframe records a key frame's media time. Time going backwards (an
// encoder restarting its clock) starts the count again.
func (m *meter) keyframe(ts uint32) {
	if m.keys > 0 && ts < m.lastKey {
		m.keys = 0
	}
	m.prevKey, m.lastKey = m.lastKey, ts
	m.keys = min(m.keys+1, 2)
}

func (m *meter) stats(now time.Time) Stats {
	cur := int64(now.Sub(m.start) / meterBucket)
	oldest := cur - int64(meterBuckets) + 1
	from := m.start.Add(time.Duration(max(oldest, 0)) * meterBucket)
	var sum bucket
	m.mu.Lock()
	for _, b := range m.ring {
		if b.n >= oldest && b.n <= cur {
			sum.bytes += b.bytes
			sum.video += b.video
			sum.frames += b.frames
		}
	}
	s := Stats{LastFrameAge: max(now.Sub(m.lastVid), 0)}
	if m.keys == 2 {
		s.KeyframeInterval = time.Duration(m.lastKey-m.prevKey) * time.Millisecond
	}
	m.mu.Unlock()
	s.Span = max(now.Sub(from), 0)
	if s.Span == 0 {
		return s
	}
	sec := s.Span.Seconds()
	s.Bitrate = float64(sum.bytes) * 8 / 1000 / sec
	s.VideoBitrate = float64(sum.video) * 8 / 1000 / sec
	s.Framerate = float64(sum.frames) / sec
	return s
}
