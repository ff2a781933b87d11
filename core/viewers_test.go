package core

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/starling-live/starling/core/testrig"
)

type countFunc func() int

func (f countFunc) Stats(time.Time) PlaybackStats { return PlaybackStats{Viewers: f()} }

func TestViewerHistoryPeaksAndSamples(t *testing.T) {
	store, _ := openStore(t)
	var viewers atomic.Int64
	start := func() *ViewerHistory {
		v := NewViewerHistory(ViewerHistoryDeps{
			Logger:  slog.New(slog.DiscardHandler),
			Store:   store,
			Viewers: countFunc(func() int { return int(viewers.Load()) }),
			Tick:    5 * time.Millisecond,
			Sample:  20 * time.Millisecond,
		})
		if err := v.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { v.Close() })
		return v
	}
	v := start()
	viewers.Store(7)
	testrig.Eventually(t, 5*time.Second, "peaks of 7", func() (bool, string) {
		s, o := v.Peaks()
		return s == 7 && o == 7, fmt.Sprintf("session %d, overall %d", s, o)
	})
	viewers.Store(3)
	testrig.Eventually(t, 5*time.Second, "a sample of 3 after one of 7", func() (bool, string) {
		samples, err := v.OverTime(context.Background(), time.Now().Add(-time.Hour))
		if err != nil {
			return false, err.Error()
		}
		saw7 := false
		for _, s := range samples {
			saw7 = saw7 || s.Count == 7
			if saw7 && s.Count == 3 {
				return true, ""
			}
		}
		return false, fmt.Sprint(samples)
	})

	// A new broadcast starts a new session peak; the peak ever stays,
	// across a restart too.
	v.BroadcastStarted(Broadcast{})
	testrig.Eventually(t, 5*time.Second, "session peak 3", func() (bool, string) {
		s, o := v.Peaks()
		return s == 3 && o == 7, fmt.Sprintf("session %d, overall %d", s, o)
	})
	v.Close()
	viewers.Store(1)
	v2 := start()
	testrig.Eventually(t, 5*time.Second, "overall peak 7 after a restart", func() (bool, string) {
		s, o := v2.Peaks()
		return s == 1 && o == 7, fmt.Sprintf("session %d, overall %d", s, o)
	})
}
