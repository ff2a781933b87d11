package core

import (
	"errors"
	"fmt"
	"math"
	"testing"
	"time"
)

func TestPlaybackAggregatesDeltas(t *testing.T) {
	p := NewPlayback()
	t0 := time.Unix(1_800_000_000, 0)
	rec := func(at time.Duration, r PlaybackReport) {
		t.Helper()
		if err := p.Record(r, "192.0.2.1", t0.Add(at)); err != nil {
			t.Fatal(err)
		}
	}
	rec(0, PlaybackReport{ViewerID: "viewer-a1", HTTPBytes: 1000, P2PEnabled: true})
	rec(time.Second, PlaybackReport{ViewerID: "viewer-b1", HTTPBytes: 500, P2PBytes: 500, P2PEnabled: true})
	rec(5*time.Second, PlaybackReport{ViewerID: "viewer-a1", HTTPBytes: 1000, P2PBytes: 3000, P2PUploadedBytes: 700, P2PEnabled: true})
	// b reloaded its page: its counters start again.
	rec(6*time.Second, PlaybackReport{ViewerID: "viewer-b1", HTTPBytes: 100})

	st := p.Stats(t0.Add(7 * time.Second))
	if st.Viewers != 2 || st.P2PViewers != 1 {
		t.Errorf("viewers %d, p2p viewers %d", st.Viewers, st.P2PViewers)
	}
	if st.HTTPBytes != 1600 || st.P2PBytes != 3500 || st.P2PUploadedBytes != 700 {
		t.Errorf("totals %+v", st)
	}
	if want := 3500.0 / 5100; math.Abs(st.OffloadRatio-want) > 1e-9 {
		t.Errorf("offload %.4f, want %.4f", st.OffloadRatio, want)
	}

	// The ratio covers the last minute only; viewers that went quiet are
	// forgotten, totals stay.
	rec(50*time.Second, PlaybackReport{ViewerID: "viewer-a1", HTTPBytes: 2000, P2PBytes: 3000})
	st = p.Stats(t0.Add(70 * time.Second))
	if st.OffloadRatio != 0 || st.Viewers != 1 || st.HTTPBytes != 2600 {
		t.Errorf("a minute later: %+v", st)
	}
	if st = p.Stats(t0.Add(200 * time.Second)); st.Viewers != 0 || st.OffloadRatio != 0 {
		t.Errorf("much later: %+v", st)
	}
}

func TestPlaybackRefusesBadReports(t *testing.T) {
	p := NewPlayback()
	now := time.Now()
	for _, r := range []PlaybackReport{
		{ViewerID: "short"},
		{ViewerID: "has spaces in it"},
		{ViewerID: "viewer-ok1", HTTPBytes: -1},
		{ViewerID: "viewer-ok1", P2PBytes: 2 << 30},
	} {
		if err := p.Record(r, "192.0.2.1", now); !errors.Is(err, ErrBadReport) {
			t.Errorf("%+v: %v, want ErrBadReport", r, err)
		}
	}
	if st := p.Stats(now); st.P2PBytes != 0 {
		t.Errorf("a refused report counted: %+v", st)
	}
}

// TestPlaybackCapsViewersPerAddress: one address cannot invent an
// audience. It counts for MaxViewersPerAddress viewers at a time; others
// still count, a viewer that went quiet makes room, and a viewer that
// moves to another address takes its counters along.
func TestPlaybackCapsViewersPerAddress(t *testing.T) {
	p := NewPlayback()
	now := time.Unix(1_800_000_000, 0)
	id := func(i int) string { return fmt.Sprintf("fake-viewer-%03d", i) }
	for i := range 122 {
		err := p.Record(PlaybackReport{ViewerID: id(i), HTTPBytes: 1000}, "198.51.100.7", now)
		if i < MaxViewersPerAddress && err != nil {
			t.Fatalf("viewer %d refused: %v", i, err)
		}
		if i >= MaxViewersPerAddress && !errors.Is(err, ErrTooManyViewers) {
			t.Fatalf("viewer %d from the same address: %v, want ErrTooManyViewers", i, err)
		}
	}
	if err := p.Record(PlaybackReport{ViewerID: "someone-else", HTTPBytes: 1000}, "203.0.113.9", now); err != nil {
		t.Fatalf("a viewer elsewhere was refused: %v", err)
	}
	if st := p.Stats(now); st.Viewers != MaxViewersPerAddress+1 || st.HTTPBytes != int64(MaxViewersPerAddress+1)*1000 {
		t.Fatalf("stats %+v, want %d viewers", st, MaxViewersPerAddress+1)
	}

	// A counted viewer keeps reporting; a quiet one makes room.
	later := now.Add(ViewerTimeout + time.Second)
	if err := p.Record(PlaybackReport{ViewerID: id(0), HTTPBytes: 1500}, "198.51.100.7", later); err != nil {
		t.Fatal(err)
	}
	if err := p.Record(PlaybackReport{ViewerID: id(500), HTTPBytes: 10}, "198.51.100.7", later); err != nil {
		t.Fatalf("a new viewer after the others went quiet: %v", err)
	}
	// A viewer that moved keeps its counters: only what is new counts.
	if err := p.Record(PlaybackReport{ViewerID: id(0), HTTPBytes: 1600}, "192.0.2.44", later); err != nil {
		t.Fatal(err)
	}
	if st := p.Stats(later); st.Viewers != 2 || st.HTTPBytes != int64(MaxViewersPerAddress+1)*1000+500+10+100 {
		t.Errorf("after churn: %+v", st)
	}
}
