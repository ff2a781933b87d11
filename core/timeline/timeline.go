// Package timeline keeps the last hour of the live figures, a point every
// few seconds, so that the admin's dashboard can chart viewers, the
// stream's health and how much of the video the viewers carry from the
// moment it opens, not only from then on.
package timeline

import (
	"context"
	"sync"
	"time"
)

// Reading is what the sources say at one moment. The byte and message
// counts are totals since the server started; the timeline turns them
// into what happened between two readings.
type Reading struct {
	Online              bool
	Viewers, P2PViewers int
	HTTPBytes, P2PBytes int64
	IngestKbps          float64
	IngestFramerate     float64
	TranscoderSpeed     float64
	ChatClients         int
	ChatMessages        uint64
}

// Point is one moment of the timeline.
type Point struct {
	Time       time.Time `json:"time"`
	Online     bool      `json:"online"`
	Viewers    int       `json:"viewers"`
	P2PViewers int       `json:"p2pViewers"`
	// HTTPBytes and P2PBytes are the segment bytes viewers got from the
	// server and from each other since the point before; OffloadRatio is
	// P2P's share of them, 0 when there were none.
	HTTPBytes    int64   `json:"httpBytes"`
	P2PBytes     int64   `json:"p2pBytes"`
	OffloadRatio float64 `json:"offloadRatio"`
	// IngestKbps and IngestFramerate are the publisher's; TranscoderSpeed
	// is ffmpeg's (1 when it keeps up).
	IngestKbps      float64 `json:"ingestKbps"`
	IngestFramerate float64 `json:"ingestFramerate"`
	TranscoderSpeed float64 `json:"transcoderSpeed"`
	ChatClients     int     `json:"chatClients"`
	// ChatMessages were sent since the point before.
	ChatMessages uint64 `json:"chatMessages"`
}

// Deps are what a Timeline needs.
type Deps struct {
	// Read returns the figures now.
	Read func() Reading
	// Every is the time between points (5 s); Keep how many are kept
	// (720: an hour).
	Every time.Duration
	Keep  int
}

// Timeline is the recent points, oldest first.
type Timeline struct {
	d Deps

	// mu guards points and last.
	mu     sync.Mutex
	points []Point
	last   *Reading

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a Timeline; Start runs it.
func New(d Deps) *Timeline {
	if d.Every == 0 {
		d.Every = 5 * time.Second
	}
	if d.Keep == 0 {
		d.Keep = 720
	}
	return &Timeline{d: d}
}

// Start takes a reading now and then every d.Every until Close.
func (t *Timeline) Start(ctx context.Context) {
	ctx, t.cancel = context.WithCancel(ctx)
	t.add(time.Now())
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		tick := time.NewTicker(t.d.Every)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-tick.C:
				t.add(now)
			}
		}
	}()
}

// Close stops the readings.
func (t *Timeline) Close() error {
	if t.cancel != nil {
		t.cancel()
		t.wg.Wait()
	}
	return nil
}

// add takes a reading and makes it a point.
func (t *Timeline) add(now time.Time) {
	r := t.d.Read()
	t.mu.Lock()
	defer t.mu.Unlock()
	p := Point{
		Time: now.UTC(), Online: r.Online, Viewers: r.Viewers, P2PViewers: r.P2PViewers,
		IngestKbps: r.IngestKbps, IngestFramerate: r.IngestFramerate, TranscoderSpeed: r.TranscoderSpeed,
		ChatClients: r.ChatClients,
	}
	if prev := t.last; prev != nil {
		// Counters never go back; one that did was reset, and counts
		// from zero.
		p.HTTPBytes = since(r.HTTPBytes, prev.HTTPBytes)
		p.P2PBytes = since(r.P2PBytes, prev.P2PBytes)
		if r.ChatMessages >= prev.ChatMessages {
			p.ChatMessages = r.ChatMessages - prev.ChatMessages
		}
	}
	if total := p.HTTPBytes + p.P2PBytes; total > 0 {
		p.OffloadRatio = float64(p.P2PBytes) / float64(total)
	}
	t.last = &r
	if len(t.points) == t.d.Keep {
		t.points = append(t.points[:0], t.points[1:]...)
	}
	t.points = append(t.points, p)
}

func since(now, before int64) int64 {
	if now < before {
		return now
	}
	return now - before
}

// Since returns the points after t0, oldest first.
func (t *Timeline) Since(t0 time.Time) []Point {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := []Point{}
	for _, p := range t.points {
		if p.Time.After(t0) {
			out = append(out, p)
		}
	}
	return out
}
