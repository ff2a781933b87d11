package timeline

import (
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestPointsCountWhatHappenedBetweenReadings: totals become what happened
// since the reading before, the offload ratio is of that interval, old
// points are let go, and Since filters by time.
func TestPointsCountWhatHappenedBetweenReadings(t *testing.T) {
	var mu sync.Mutex
	readings := []Reading{
		{Online: true, Viewers: 2, HTTPBytes: 1000, P2PBytes: 0, ChatMessages: 5},
		{Online: true, Viewers: 3, HTTPBytes: 1500, P2PBytes: 1500, ChatMessages: 7},
		{Online: true, Viewers: 3, HTTPBytes: 100, P2PBytes: 300, ChatMessages: 1}, // a restart of the counters
		{Online: false},
	}
	i := 0
	tl := New(Deps{Keep: 3, Read: func() Reading {
		mu.Lock()
		defer mu.Unlock()
		r := readings[i]
		i++
		return r
	}})
	t0 := time.Now()
	for k := range readings {
		tl.add(t0.Add(time.Duration(k) * time.Second))
	}
	ps := tl.Since(time.Time{})
	if len(ps) != 3 {
		t.Fatalf("%d points kept, want 3", len(ps))
	}
	if ps[0].HTTPBytes != 500 || ps[0].P2PBytes != 1500 || ps[0].OffloadRatio != 0.75 || ps[0].ChatMessages != 2 || ps[0].Viewers != 3 {
		t.Errorf("second point %+v", ps[0])
	}
	if ps[1].HTTPBytes != 100 || ps[1].P2PBytes != 300 || ps[1].ChatMessages != 0 {
		t.Errorf("after a counter reset %+v", ps[1])
	}
	if ps[2].Online || ps[2].OffloadRatio != 0 {
		t.Errorf("offline point %+v", ps[2])
	}
	if got := tl.Since(t0.Add(2500 * time.Millisecond)); len(got) != 1 {
		t.Errorf("since 2.5 s: %d points", len(got))
	}
}

// TestStartReadsUntilClosed: a reading at Start, more on the ticker, none
// after Close.
func TestStartReadsUntilClosed(t *testing.T) {
	var mu sync.Mutex
	n := 0
	tl := New(Deps{Every: time.Millisecond, Read: func() Reading {
		mu.Lock()
		defer mu.Unlock()
		n++
		return Reading{Viewers: n}
	}})
	tl.Start(t.Context())
	deadline := time.Now().Add(10 * time.Second)
	for len(tl.Since(time.Time{})) < 3 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	tl.Close()
	got := len(tl.Since(time.Time{}))
	if got < 3 {
		t.Fatalf("%d points after start", got)
	}
	mu.Lock()
	after := n
	mu.Unlock()
	if after != got {
		t.Errorf("%d readings for %d points", after, got)
	}
}
