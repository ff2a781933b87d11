// Package jobs is the persisted queue of outbound work: webhook
// deliveries, Discord posts and fediverse deliveries.
//
// A job is in sqlite before Enqueue returns, and is done at least once: it
// is deleted only after its handler succeeded, retried with exponential
// backoff and jitter while it fails, and given up after MaxAttempts (or at
// once on a Permanent error). A job a worker had when the process stopped,
// even by kill -9, runs again at the next start. Jobs to one destination
// run at most PerDestination at a time, so one slow receiver cannot take
// every worker.
package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/starling-live/starling/core/data"
)

// Job is a job as its handler gets it.
type Job struct {
	ID          int64
	Kind        string
	Destination string
	Payload     []byte
	// Attempt counts from 1; Last is set on the attempt after which a
	// failure gives the job up.
	Attempt int
	Last    bool
}

// Handler does a job. It returns nil when the job is done, an error to
// have it retried, or a Permanent error to give it up. It must return
// when ctx is done.
type Handler func(ctx context.Context, j Job) error

type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// Permanent marks an error no retry will mend, such as a receiver's 404.
func Permanent(err error) error { return permanent{err} }

// Retry is how a kind of job is retried; zero fields take the queue's
// Config.
type Retry struct {
	// MaxAttempts is how many times a job runs before it fails.
	MaxAttempts int
	// MaxBackoff is the longest wait between two attempts.
	MaxBackoff time.Duration
}

// Config tunes the queue. Zero fields take the defaults in parentheses.
type Config struct {
	// Workers is how many jobs run at once (4), PerDestination how many of
	// them may go to one destination (2).
	Workers, PerDestination int
	// MaxAttempts is how many times a job runs before it fails (10).
	MaxAttempts int
	// Backoff is about how long the first retry waits (5 s); each retry
	// waits twice as long, up to MaxBackoff (1 h), each wait between half
	// of that and all of it.
	Backoff, MaxBackoff time.Duration
	// Timeout bounds one attempt (30 s).
	Timeout time.Duration
	// Poll is how often the queue looks for due jobs when nothing else
	// wakes it (10 s).
	Poll time.Duration
}

func (c Config) withDefaults() Config {
	num := func(n *int, v int) {
		if *n == 0 {
			*n = v
		}
	}
	dur := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	num(&c.Workers, 4)
	num(&c.PerDestination, 2)
	num(&c.MaxAttempts, 10)
	dur(&c.Backoff, 5*time.Second)
	dur(&c.MaxBackoff, time.Hour)
	dur(&c.Timeout, 30*time.Second)
	dur(&c.Poll, 10*time.Second)
	return c
}

// Deps are what a Queue needs.
type Deps struct {
	Logger *slog.Logger
	Store  *data.Store
	Config Config
}

// Stats say how the queue is doing.
type Stats struct {
	Pending int `json:"pending"`
	Running int `json:"running"`
	Failed  int `json:"failed"`
	// Done and Retries count since the server started.
	Done    uint64 `json:"done"`
	Retries uint64 `json:"retries"`
	// LastError is the latest failed attempt's error, at LastErrorAt.
	LastError   string    `json:"lastError,omitempty"`
	LastErrorAt time.Time `json:"lastErrorAt,omitzero"`
}

// Queue runs the jobs.
type Queue struct {
	log   *slog.Logger
	store *data.Store
	cfg   Config
	// handlers are registered before Start and never change.
	handlers map[string]handler

	wake    chan struct{} // a token when a job was queued
	results chan result
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	done, retries atomic.Uint64
	// errMu guards lastErr and lastErrAt.
	errMu     sync.Mutex
	lastErr   string
	lastErrAt time.Time

	// The loop goroutine alone uses these: jobs running, in all and by
	// destination.
	running int
	perDest map[string]int
}

type handler struct {
	do    Handler
	retry Retry
}

type result struct {
	job Job
	err error
	// stopping is set when the queue's context was done: the attempt was
	// cut short by the shutdown, not failed.
	stopping bool
}

// New returns a Queue. Register handlers with Handle, then Start it.
func New(d Deps) *Queue {
	return &Queue{
		log: d.Logger, store: d.Store, cfg: d.Config.withDefaults(),
		handlers: map[string]handler{},
		wake:     make(chan struct{}, 1),
		results:  make(chan result),
		perDest:  map[string]int{},
	}
}

// Handle makes h the handler of jobs of kind, retried as the Config
// says. Call it before Start.
func (q *Queue) Handle(kind string, h Handler) { q.HandleWith(kind, h, Retry{}) }

// HandleWith makes h the handler of jobs of kind, retried as r says where
// it differs from the Config. Call it before Start.
func (q *Queue) HandleWith(kind string, h Handler, r Retry) {
	if r.MaxAttempts == 0 {
		r.MaxAttempts = q.cfg.MaxAttempts
	}
	if r.MaxBackoff == 0 {
		r.MaxBackoff = q.cfg.MaxBackoff
	}
	q.handlers[kind] = handler{h, r}
}

// Enqueue stores a job; it runs as soon as a worker is free. It may be
// called before Start, and the job then waits for it.
func (q *Queue) Enqueue(ctx context.Context, kind, destination string, payload []byte) (int64, error) {
	id, err := q.store.AddJob(ctx, kind, destination, payload, time.Now())
	if err != nil {
		return 0, err
	}
	q.poke()
	return id, nil
}

// EnqueueAll stores jobs in one transaction, all of them or none; a job
// with a DueAt runs from then on.
func (q *Queue) EnqueueAll(ctx context.Context, jobs []data.NewJob) error {
	if err := q.store.AddJobs(ctx, jobs, time.Now()); err != nil {
		return err
	}
	q.poke()
	return nil
}

// Wake tells the queue that jobs were stored beside it, in a transaction
// of their own (data.Store.AddPost).
func (q *Queue) Wake() { q.poke() }

// poke wakes the loop to look for due jobs.
func (q *Queue) poke() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Start takes back the jobs that were running when the process last
// stopped, and starts running jobs.
func (q *Queue) Start(ctx context.Context) error {
	n, err := q.store.ReleaseRunningJobs(ctx, time.Now())
	if err != nil {
		return err
	}
	if n > 0 {
		q.log.Info("resuming jobs that were running when the server stopped", "jobs", n)
	}
	ctx, q.cancel = context.WithCancel(ctx)
	q.wg.Add(1)
	go func() {
		defer q.wg.Done()
		q.loop(ctx)
	}()
	return nil
}

// Close stops starting jobs, cuts the running ones short (they run again
// at the next start) and waits for them.
func (q *Queue) Close() error {
	if q.cancel == nil {
		return nil
	}
	q.cancel()
	q.wg.Wait()
	return nil
}

// Stats returns the counts; the stored ones come from the database.
func (q *Queue) Stats(ctx context.Context) (Stats, error) {
	counts, err := q.store.JobCounts(ctx)
	if err != nil {
		return Stats{}, err
	}
	st := Stats{Pending: counts["pending"], Running: counts["running"], Failed: counts["failed"],
		Done: q.done.Load(), Retries: q.retries.Load()}
	q.errMu.Lock()
	st.LastError, st.LastErrorAt = q.lastErr, q.lastErrAt
	q.errMu.Unlock()
	return st, nil
}

// Failed returns the jobs that were given up, newest first.
func (q *Queue) Failed(ctx context.Context, limit int) ([]data.Job, error) {
	return q.store.Jobs(ctx, "failed", limit)
}

func (q *Queue) loop(ctx context.Context) {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		wait := q.dispatch(ctx)
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			for q.running > 0 {
				q.record(<-q.results)
			}
			return
		case <-q.wake:
		case r := <-q.results:
			q.record(r)
		case <-timer.C:
		}
	}
}

// dispatch starts the due jobs there is room for, and says how long to
// wait before looking again.
func (q *Queue) dispatch(ctx context.Context) time.Duration {
	if q.running >= q.cfg.Workers {
		return q.cfg.Poll
	}
	now := time.Now()
	// More than there are workers: some may go to a busy destination.
	due, err := q.store.DueJobs(ctx, now, 4*q.cfg.Workers)
	if err != nil {
		if ctx.Err() == nil {
			q.log.Error("cannot read the job queue; trying again", "err", err, "in", q.cfg.Poll)
		}
		return q.cfg.Poll
	}
	for _, dj := range due {
		if q.running >= q.cfg.Workers {
			break
		}
		if q.perDest[dj.Destination] >= q.cfg.PerDestination {
			continue
		}
		h, ok := q.handlers[dj.Kind]
		if !ok {
			q.store.FailJob(ctx, dj.ID, dj.Attempts, fmt.Sprintf("no handler for jobs of kind %q", dj.Kind), now)
			continue
		}
		if ok, err := q.store.ClaimJob(ctx, dj.ID, now); err != nil || !ok {
			continue
		}
		q.running++
		q.perDest[dj.Destination]++
		j := Job{ID: dj.ID, Kind: dj.Kind, Destination: dj.Destination, Payload: dj.Payload, Attempt: dj.Attempts + 1}
		j.Last = j.Attempt >= h.retry.MaxAttempts
		q.wg.Add(1)
		go func() {
			defer q.wg.Done()
			q.results <- q.attempt(ctx, h.do, j)
		}()
	}
	if len(due) == 4*q.cfg.Workers {
		// There may be more due: look again as soon as a worker is free.
		return q.cfg.Poll
	}
	next, ok, err := q.store.NextJobAt(ctx)
	if err != nil || !ok {
		return q.cfg.Poll
	}
	return min(max(time.Until(next), 0), q.cfg.Poll)
}

func (q *Queue) attempt(ctx context.Context, h Handler, j Job) result {
	actx, cancel := context.WithTimeout(ctx, q.cfg.Timeout)
	defer cancel()
	err := h(actx, j)
	return result{job: j, err: err, stopping: ctx.Err() != nil}
}

// record stores how an attempt ended. It runs on the loop goroutine.
func (q *Queue) record(r result) {
	q.running--
	if q.perDest[r.job.Destination]--; q.perDest[r.job.Destination] <= 0 {
		delete(q.perDest, r.job.Destination)
	}
	// The shutdown may have cancelled the queue's context: these writes
	// must happen still.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	now := time.Now()
	j := r.job
	var err error
	switch {
	case r.err == nil:
		q.done.Add(1)
		err = q.store.FinishJob(ctx, j.ID)
	case r.stopping:
		// Cut short by the shutdown: it runs again, not counted.
		err = q.store.RetryJob(ctx, j.ID, j.Attempt-1, now, "interrupted by a shutdown", now)
	default:
		msg := r.err.Error()
		q.errMu.Lock()
		q.lastErr, q.lastErrAt = fmt.Sprintf("%s to %s: %s", j.Kind, j.Destination, msg), now
		q.errMu.Unlock()
		retry := q.handlers[j.Kind].retry
		var p permanent
		if errors.As(r.err, &p) || j.Attempt >= retry.MaxAttempts {
			q.log.Warn("giving a job up", "kind", j.Kind, "destination", j.Destination, "attempts", j.Attempt, "err", msg)
			err = q.store.FailJob(ctx, j.ID, j.Attempt, msg, now)
			break
		}
		q.retries.Add(1)
		wait := q.backoff(j.Attempt, retry.MaxBackoff)
		q.log.Info("job failed; retrying", "kind", j.Kind, "destination", j.Destination, "attempt", j.Attempt, "in", wait.Round(time.Millisecond), "err", msg)
		err = q.store.RetryJob(ctx, j.ID, j.Attempt, now.Add(wait), msg, now)
	}
	if err != nil {
		// The job stays running in the store and runs again at the next
		// start: at least once still holds.
		q.log.Error("cannot record how a job ended", "kind", j.Kind, "id", j.ID, "err", err)
	}
}

// backoff is the wait after the attempt-th failure: Backoff doubled for
// each failure before, at most longest, with "equal jitter" (between half
// and all of it) so that receivers that failed together are not retried
// together.
func (q *Queue) backoff(attempt int, longest time.Duration) time.Duration {
	d := q.cfg.Backoff
	for i := 1; i < attempt && d < longest; i++ {
		d *= 2
	}
	d = min(d, longest)
	return d/2 + rand.N(d/2+1)
}
