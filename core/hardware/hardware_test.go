package hardware

import (
	"context"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/starling-live/starling/core/testrig"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestSamplesAreShares(t *testing.T) {
	m := New(t.TempDir())
	m.sample(time.Now())
	// The CPU needs a span: sample until the kernel's counters moved.
	testrig.Eventually(t, 10*time.Second, "a CPU sample", func() (bool, string) {
		m.sample(time.Now())
		return len(m.Stats().CPU) > 0, "none"
	})
	st := m.Stats()
	if len(st.Memory) < 2 || len(st.Disk) < 2 {
		t.Fatalf("stats %+v", st)
	}
	for _, s := range append(append(st.CPU, st.Memory...), st.Disk...) {
		if s.Value < 0 || s.Value > 100 {
			t.Errorf("a share of %.1f%%", s.Value)
		}
	}
	// Old samples leave the window.
	m.sample(time.Now().Add(Window + time.Minute))
	if n := len(m.Stats().Memory); n != 1 {
		t.Errorf("%d memory samples after a window, want 1", n)
	}
}

func TestStartAndClose(t *testing.T) {
	m := New(t.TempDir())
	m.Start(context.Background())
	if len(m.Stats().Memory) != 1 {
		t.Error("no sample at start")
	}
	m.Close()
}
