package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/starling-live/starling/core/data"
	"github.com/starling-live/starling/core/testrig"
)

// With STARLING_JOBS_CHILD set to a database path, the test binary is a
// server that takes a job and hangs in it until it is killed.
func TestMain(m *testing.M) {
	if path := os.Getenv("STARLING_JOBS_CHILD"); path != "" {
		os.Exit(runChild(path))
	}
	goleak.VerifyTestMain(m)
}

func runChild(path string) int {
	ctx := context.Background()
	store, err := data.Open(ctx, path)
	if err != nil {
		return 2
	}
	q := New(Deps{Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)), Store: store})
	q.Handle("test", func(ctx context.Context, j Job) error {
		os.WriteFile(path+".running", nil, 0o600)
		select {} // until kill -9
	})
	if err := q.Start(ctx); err != nil {
		return 3
	}
	select {}
}

func openStore(t *testing.T) (*data.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "starling.db")
	s, err := data.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

func newQueue(t *testing.T, store *data.Store, cfg Config) (*Queue, *testrig.LogBuffer) {
	t.Helper()
	logs := &testrig.LogBuffer{}
	q := New(Deps{Logger: logs.Logger(), Store: store, Config: cfg})
	t.Cleanup(func() { q.Close() })
	return q, logs
}

func stats(t *testing.T, q *Queue) Stats {
	t.Helper()
	st, err := q.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestJobIsDoneOnceAfterFailures: a job that fails is retried until it
// succeeds, then never again; the failure is observable meanwhile.
func TestJobIsDoneOnceAfterFailures(t *testing.T) {
	store, _ := openStore(t)
	q, _ := newQueue(t, store, Config{Backoff: 10 * time.Millisecond})
	var calls atomic.Int32
	q.Handle("test", func(_ context.Context, j Job) error {
		if n := calls.Add(1); int(n) != j.Attempt {
			t.Errorf("call %d says attempt %d", n, j.Attempt)
		}
		if j.Attempt < 3 {
			return errors.New("receiver answered 500")
		}
		if string(j.Payload) != "hello" || j.Destination != "https://example.com" {
			t.Errorf("job %+v", j)
		}
		return nil
	})
	if _, err := q.Enqueue(context.Background(), "test", "https://example.com", []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := q.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	testrig.Eventually(t, 10*time.Second, "the job done", func() (bool, string) {
		st := stats(t, q)
		return st.Done == 1 && st.Pending == 0 && st.Running == 0, fmt.Sprintf("%+v", st)
	})
	st := stats(t, q)
	if calls.Load() != 3 || st.Retries != 2 || st.LastError != "test to https://example.com: receiver answered 500" {
		t.Errorf("%d calls, stats %+v", calls.Load(), st)
	}
}

// TestRetriesBackOffThenGiveUp: waits grow (each at least half of the
// doubled backoff), a job fails after MaxAttempts, and a Permanent error
// fails it at once; failed jobs are listed with their last error.
func TestRetriesBackOffThenGiveUp(t *testing.T) {
	store, _ := openStore(t)
	const backoff = 40 * time.Millisecond
	q, logs := newQueue(t, store, Config{Backoff: backoff, MaxAttempts: 4})
	var mu sync.Mutex
	var at []time.Time
	q.Handle("flaky", func(context.Context, Job) error {
		mu.Lock()
		at = append(at, time.Now())
		mu.Unlock()
		return errors.New("connection refused")
	})
	q.Handle("gone", func(context.Context, Job) error { return Permanent(errors.New("receiver answered 410")) })
	ctx := context.Background()
	q.Enqueue(ctx, "flaky", "a", nil)
	q.Enqueue(ctx, "gone", "b", nil)
	q.Start(ctx)
	testrig.Eventually(t, 20*time.Second, "both jobs failed", func() (bool, string) {
		st := stats(t, q)
		return st.Failed == 2 && st.Pending == 0, fmt.Sprintf("%+v", st)
	})
	mu.Lock()
	defer mu.Unlock()
	if len(at) != 4 {
		t.Fatalf("the flaky job ran %d times, want 4", len(at))
	}
	// The waits are at least half of 40, 80 and 160 ms: lower bounds hold
	// however busy the machine is.
	for i := 1; i < len(at); i++ {
		if gap, least := at[i].Sub(at[i-1]), (backoff<<(i-1))/2; gap < least {
			t.Errorf("wait %d was %v, want at least %v", i, gap, least)
		}
	}
	failed, err := q.Failed(ctx, 10)
	if err != nil || len(failed) != 2 {
		t.Fatalf("failed jobs %+v, %v", failed, err)
	}
	for _, f := range failed {
		want := map[string]string{"flaky": "connection refused", "gone": "receiver answered 410"}[f.Kind]
		attempts := map[string]int{"flaky": 4, "gone": 1}[f.Kind]
		if f.LastError != want || f.Attempts != attempts {
			t.Errorf("failed job %+v, want error %q after %d attempts", f, want, attempts)
		}
	}
	if !strings.Contains(logs.String(), "giving a job up") {
		t.Error("giving up is not logged")
	}
}

// TestOneDestinationCannotTakeEveryWorker: jobs to a slow receiver run
// PerDestination at a time, and jobs elsewhere run beside them.
func TestOneDestinationCannotTakeEveryWorker(t *testing.T) {
	store, _ := openStore(t)
	q, _ := newQueue(t, store, Config{Workers: 4, PerDestination: 2})
	release := make(chan struct{})
	var mu sync.Mutex
	now, most := map[string]int{}, map[string]int{}
	var fastDone atomic.Int32
	q.Handle("test", func(ctx context.Context, j Job) error {
		mu.Lock()
		now[j.Destination]++
		most[j.Destination] = max(most[j.Destination], now[j.Destination])
		mu.Unlock()
		defer func() { mu.Lock(); now[j.Destination]--; mu.Unlock() }()
		if j.Destination == "slow" {
			select {
			case <-release:
			case <-ctx.Done():
				return ctx.Err()
			}
			return nil
		}
		fastDone.Add(1)
		return nil
	})
	ctx := context.Background()
	for range 6 {
		q.Enqueue(ctx, "test", "slow", nil)
	}
	for range 3 {
		q.Enqueue(ctx, "test", "fast", nil)
	}
	q.Start(ctx)
	testrig.Eventually(t, 10*time.Second, "the jobs elsewhere done while the slow ones hang", func() (bool, string) {
		return fastDone.Load() == 3, fmt.Sprint(fastDone.Load())
	})
	close(release)
	testrig.Eventually(t, 10*time.Second, "every job done", func() (bool, string) {
		st := stats(t, q)
		return st.Done == 9, fmt.Sprintf("%+v", st)
	})
	mu.Lock()
	defer mu.Unlock()
	if most["slow"] != 2 {
		t.Errorf("at most %d jobs ran at once to one destination, want 2", most["slow"])
	}
}

// TestJobsSurviveARestart: a job queued before the start, and one cut
// short by Close, run after a new start on the same database, once each.
func TestJobsSurviveARestart(t *testing.T) {
	store, _ := openStore(t)
	ctx := context.Background()
	first, _ := newQueue(t, store, Config{})
	started := make(chan struct{})
	first.Handle("test", func(ctx context.Context, j Job) error {
		if string(j.Payload) == "long" {
			close(started)
			<-ctx.Done() // the shutdown cuts it short
			return ctx.Err()
		}
		return errors.New("not now")
	})
	first.Enqueue(ctx, "test", "a", []byte("long"))
	first.Start(ctx)
	<-started
	first.Close()

	second, _ := newQueue(t, store, Config{})
	var got []string
	var mu sync.Mutex
	second.Handle("test", func(_ context.Context, j Job) error {
		mu.Lock()
		got = append(got, fmt.Sprintf("%s attempt %d", j.Payload, j.Attempt))
		mu.Unlock()
		return nil
	})
	second.Enqueue(ctx, "test", "b", []byte("queued"))
	second.Start(ctx)
	testrig.Eventually(t, 10*time.Second, "both jobs done", func() (bool, string) {
		st := stats(t, second)
		return st.Done == 2 && st.Pending+st.Running == 0, fmt.Sprintf("%+v", st)
	})
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || (got[0] != "long attempt 1" && got[1] != "long attempt 1") {
		t.Errorf("after the restart: %v (the interrupted attempt must not count)", got)
	}
}

// TestJobsSurviveKill9: a server killed with SIGKILL while it runs a job
// leaves it running in the database; the next start runs it.
func TestJobsSurviveKill9(t *testing.T) {
	store, path := openStore(t)
	ctx := context.Background()
	if _, err := store.AddJob(ctx, "test", "a", []byte("payload"), time.Now()); err != nil {
		t.Fatal(err)
	}
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), "STARLING_JOBS_CHILD="+path)
	out := &testrig.LogBuffer{}
	child.Stdout, child.Stderr = out, out
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	testrig.Eventually(t, 30*time.Second, "the child to take the job", func() (bool, string) {
		_, err := os.Stat(path + ".running")
		return err == nil, out.String()
	})
	child.Process.Kill()
	child.Wait()
	if counts, _ := store.JobCounts(ctx); counts["running"] != 1 {
		t.Fatalf("after kill -9 the job is %v, want running", counts)
	}

	q, logs := newQueue(t, store, Config{})
	done := make(chan Job, 1)
	q.Handle("test", func(_ context.Context, j Job) error { done <- j; return nil })
	if err := q.Start(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case j := <-done:
		if string(j.Payload) != "payload" {
			t.Errorf("job %+v", j)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the job left by the killed server never ran:\n%s", logs)
	}
	if !strings.Contains(logs.String(), "resuming jobs") {
		t.Error("the resumed job is not logged")
	}
}

// TestKindsRetryByTheirOwnPolicy: a kind handled with its own Retry gives
// up after its own attempts and waits no longer than its own longest
// backoff, beside a kind that keeps the queue's.
func TestKindsRetryByTheirOwnPolicy(t *testing.T) {
	store, _ := openStore(t)
	q, _ := newQueue(t, store, Config{Backoff: 20 * time.Millisecond, MaxBackoff: time.Hour, MaxAttempts: 2})
	var runs, lasts sync.Map
	fail := func(_ context.Context, j Job) error {
		n, _ := runs.LoadOrStore(j.Kind, new(atomic.Int32))
		n.(*atomic.Int32).Add(1)
		if j.Last {
			// The first attempt marked last is kept.
			lasts.LoadOrStore(j.Kind, j.Attempt)
		}
		return errors.New("connection refused")
	}
	q.Handle("default", fail)
	q.HandleWith("patient", fail, Retry{MaxAttempts: 5, MaxBackoff: 30 * time.Millisecond})
	ctx := context.Background()
	q.Enqueue(ctx, "default", "a", nil)
	q.Enqueue(ctx, "patient", "b", nil)
	q.Start(ctx)
	testrig.Eventually(t, 20*time.Second, "both kinds given up", func() (bool, string) {
		st := stats(t, q)
		return st.Failed == 2, fmt.Sprintf("%+v", st)
	})
	for kind, want := range map[string]int32{"default": 2, "patient": 5} {
		n, _ := runs.Load(kind)
		if got := n.(*atomic.Int32).Load(); got != want {
			t.Errorf("%s ran %d times, want %d", kind, got, want)
		}
		// Only the attempt after which it is given up is marked last.
		if l, ok := lasts.Load(kind); !ok || l.(int) != int(want) {
			t.Errorf("%s: the last attempt marked was %v, want attempt %d", kind, l, want)
		}
	}
	// With the queue's hour-long ceiling the backoffs would have reached
	// 160 ms; the patient kind's are at most 30 ms, so its retry is due
	// within that of its last failure.
	if d := q.backoff(6, 30*time.Millisecond); d > 30*time.Millisecond {
		t.Errorf("backoff %v beyond the kind's ceiling", d)
	}
}

// TestEnqueueAllIsDueWhenItSays: jobs queued together are stored together,
// and one due later does not run before its time.
func TestEnqueueAllIsDueWhenItSays(t *testing.T) {
	store, _ := openStore(t)
	q, _ := newQueue(t, store, Config{Poll: 20 * time.Millisecond})
	var mu sync.Mutex
	ran := map[string]time.Time{}
	q.Handle("t", func(_ context.Context, j Job) error {
		mu.Lock()
		ran[string(j.Payload)] = time.Now()
		mu.Unlock()
		return nil
	})
	ctx := context.Background()
	later := time.Now().Add(300 * time.Millisecond)
	if err := q.EnqueueAll(ctx, []data.NewJob{
		{Kind: "t", Destination: "a", Payload: []byte("now")},
		{Kind: "t", Destination: "b", Payload: []byte("later"), DueAt: later},
	}); err != nil {
		t.Fatal(err)
	}
	q.Start(ctx)
	testrig.Eventually(t, 20*time.Second, "both jobs ran", func() (bool, string) {
		mu.Lock()
		defer mu.Unlock()
		return len(ran) == 2, fmt.Sprint(ran)
	})
	mu.Lock()
	defer mu.Unlock()
	if ran["later"].Before(later) {
		t.Errorf("the later job ran at %v, before it was due at %v", ran["later"], later)
	}
}
