package core

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/starling-live/starling/core/data"
)

type viewerStore interface {
	State(ctx context.Context, key string) (string, error)
	SetState(ctx context.Context, key, value string) error
	AddViewerSample(ctx context.Context, v data.ViewerSample, keep time.Duration) error
	ViewerSamples(ctx context.Context, since time.Time) ([]data.ViewerSample, error)
}

type viewerCounter interface {
	Stats(now time.Time) PlaybackStats
}

// ViewerHistoryDeps are what ViewerHistory needs.
type ViewerHistoryDeps struct {
	Logger *slog.Logger
	Store  viewerStore
	// Viewers counts the viewers now: the pages that reported lately.
	Viewers viewerCounter
	// Tick is how often the count is read (default 10 s); Sample how often
	// the highest count since the last sample is stored (default 1 min);
	// Keep how long samples are kept (default 30 days).
	Tick, Sample, Keep time.Duration
}

// ViewerHistory keeps the viewer count over time and its peaks: the peak
// of the current broadcast and the peak ever, which survives restarts.
type ViewerHistory struct {
	d ViewerHistoryDeps

	// mu guards the peaks.
	mu          sync.Mutex
	sessionPeak int
	overallPeak int
	// sinceSample is the highest count since the last sample (run only).
	sinceSample int

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

const stateOverallPeak = "overall_peak_viewers"

// NewViewerHistory returns a ViewerHistory; Start runs it.
func NewViewerHistory(d ViewerHistoryDeps) *ViewerHistory {
	if d.Tick == 0 {
		d.Tick = 10 * time.Second
	}
	if d.Sample == 0 {
		d.Sample = time.Minute
	}
	if d.Keep == 0 {
		d.Keep = 30 * 24 * time.Hour
	}
	return &ViewerHistory{d: d}
}

// Start loads the peak ever and starts counting.
func (v *ViewerHistory) Start(ctx context.Context) error {
	if s, err := v.d.Store.State(ctx, stateOverallPeak); err == nil {
		v.overallPeak, _ = strconv.Atoi(s)
	}
	ctx, v.cancel = context.WithCancel(ctx)
	v.wg.Add(1)
	go func() {
		defer v.wg.Done()
		tick := time.NewTicker(v.d.Tick)
		defer tick.Stop()
		lastSample := time.Now()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-tick.C:
				v.count(ctx, now)
				if now.Sub(lastSample) >= v.d.Sample {
					lastSample = now
					v.sample(ctx, now)
				}
			}
		}
	}()
	return nil
}

// Close stops counting.
func (v *ViewerHistory) Close() error {
	if v.cancel != nil {
		v.cancel()
		v.wg.Wait()
	}
	return nil
}

func (v *ViewerHistory) count(ctx context.Context, now time.Time) {
	n := v.d.Viewers.Stats(now).Viewers
	v.sinceSample = max(v.sinceSample, n)
	v.mu.Lock()
	v.sessionPeak = max(v.sessionPeak, n)
	newPeak := n > v.overallPeak
	if newPeak {
		v.overallPeak = n
	}
	v.mu.Unlock()
	if newPeak {
		if err := v.d.Store.SetState(ctx, stateOverallPeak, strconv.Itoa(n)); err != nil {
			v.d.Logger.Warn("cannot store the viewer peak", "err", err)
		}
	}
}

func (v *ViewerHistory) sample(ctx context.Context, now time.Time) {
	s := data.ViewerSample{At: now.UTC(), Count: v.sinceSample}
	v.sinceSample = 0
	if err := v.d.Store.AddViewerSample(ctx, s, v.d.Keep); err != nil {
		v.d.Logger.Warn("cannot store the viewer count", "err", err)
	}
}

// Peaks returns the peak of the current (or last) broadcast and the peak
// ever.
func (v *ViewerHistory) Peaks() (session, overall int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.sessionPeak, v.overallPeak
}

// OverTime returns the stored samples since a time.
func (v *ViewerHistory) OverTime(ctx context.Context, since time.Time) ([]data.ViewerSample, error) {
	return v.d.Store.ViewerSamples(ctx, since)
}

// BroadcastStarted starts a new session peak.
func (v *ViewerHistory) BroadcastStarted(Broadcast) {
	v.mu.Lock()
	v.sessionPeak = 0
	v.mu.Unlock()
}

// BroadcastEnded keeps the session peak to show after the broadcast.
func (v *ViewerHistory) BroadcastEnded(Broadcast) {}

var _ Listener = (*ViewerHistory)(nil)
