package hls

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
)

// sink puts one broadcast's segments in its remote store.
//
// While the store works, each segment is uploaded as soon as it is complete
// and joins its playlist, under its remote URL, once the upload has
// succeeded. When an upload fails, the segment goes to local disk instead
// and joins the playlist under this server's URL: viewers keep watching.
// From then on the store counts as down, and new segments take the same
// path without waiting for it; a backlog uploader retries the oldest
// deferred segment with backoff, and the first success brings the store
// back. Deferred segments stay on local disk until they have been
// uploaded, even after they have left the playlists, up to a cap; so an
// outage loses nothing, and the disk does not fill.
type sink struct {
	log      *slog.Logger
	remote   Remote
	local    Storage
	timeout  time.Duration
	maxBytes int64
	backoff  time.Duration // the longest
	wait     time.Duration // if set, the deadline of every segment (tests)
	// ready is closed once what an earlier broadcast left in the store
	// has been cleared; uploads wait for it.
	ready chan struct{}
	wake  chan struct{}
	// ctx ends the uploads: cancel is called by finish, and done is closed
	// when run has returned.
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	// mu guards the fields below.
	mu sync.Mutex
	// backlog holds the segments waiting on local disk, oldest first.
	backlog      []*deferred
	backlogBytes int64
	// uploaded names the objects in the store, to delete them at the end.
	uploaded map[string]bool
	// up is the context of direct uploads, cancelled when the store is
	// found down so that they give up at once; replaced when it is back.
	up       context.Context
	cancelUp context.CancelFunc
	// fastEnough is the deadline of the newest segment: a backlog upload
	// that takes longer does not count as the store being back.
	fastEnough time.Duration
	// deletes are objects to remove from the store, in batches;
	// localDeletes are local copies run removes.
	deletes      []string
	localDeletes []string
	// stats.Down is whether the store counts as down.
	stats  StorageStatus
	capHit bool
}

type deferred struct {
	name    string
	data    []byte
	expired bool // left retention: no playlist names it
}

// deleteBatch is how many expired objects are removed in one request.
const deleteBatch = 16

// newSink starts the uploader of a broadcast's remote store, after prev
// (the previous broadcast's, or nil) has finished. p.mu is held.
func (p *Packager) newSink(r Remote, prev *sink) *sink {
	s := &sink{
		log:      p.log.With("storage", "remote"),
		remote:   r,
		local:    p.storage,
		timeout:  p.limits.uploadTimeout,
		maxBytes: p.limits.maxBacklog,
		backoff:  p.limits.maxBackoff,
		wait:     p.limits.segmentWait,
		ready:    make(chan struct{}),
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
		uploaded: map[string]bool{},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.up, s.cancelUp = context.WithCancel(s.ctx)
	s.fastEnough = s.deadline(0)
	s.stats.Remote = true
	p.wg.Go(func() {
		if prev != nil {
			prev.finish(true)
		}
		s.run()
	})
	return s
}

// StorageStatus is how the storage of the broadcast is doing, for the
// admin.
type StorageStatus struct {
	// Remote is set when segments go to a remote store (a bucket).
	Remote bool `json:"remote"`
	// Down is set while the remote store fails: viewers are served from
	// this server's disk until it is back.
	Down bool `json:"down"`
	// DownSince is when it started failing.
	DownSince time.Time `json:"downSince,omitzero"`
	// LastError is the last upload failure, in the store's words.
	LastError string `json:"lastError,omitempty"`
	// Backlog counts the segments on local disk waiting to be uploaded,
	// BacklogBytes their size.
	Backlog      int   `json:"backlog"`
	BacklogBytes int64 `json:"backlogBytes"`
	// Uploaded counts the segments stored remotely, Deferred those that
	// went to local disk first, Dropped those given up at the backlog's
	// cap (they had been served from local disk).
	Uploaded int `json:"uploaded"`
	Deferred int `json:"deferred"`
	Dropped  int `json:"dropped"`
}

// StorageStatus reports on the current broadcast's storage.
func (p *Packager) StorageStatus() StorageStatus {
	p.mu.Lock()
	s := p.sink
	p.mu.Unlock()
	if s == nil {
		return StorageStatus{}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Backlog, st.BacklogBytes = len(s.backlog), s.backlogBytes
	return st
}

// deadline is how long the upload of a segment of the given length may
// hold up its publication: twice its length (at least 2 s, at most the
// upload timeout). A bucket slower than that would put the live edge ever
// further behind, so it counts as down, and the segment goes to local
// disk while the viewers' buffers still hold.
func (s *sink) deadline(segment time.Duration) time.Duration {
	if s.wait > 0 {
		return s.wait
	}
	return min(max(2*segment, 2*time.Second), s.timeout)
}

// upload tries to put a segment in the store within its deadline, unless
// the store is down; false sends the segment to local disk.
func (s *sink) upload(name string, data []byte, segment time.Duration) bool {
	select {
	case <-s.ready:
	case <-s.ctx.Done():
		return false
	}
	s.mu.Lock()
	up, down := s.up, s.stats.Down
	s.mu.Unlock()
	if down {
		return false
	}
	ctx, cancel := context.WithTimeout(up, s.deadline(segment))
	defer cancel()
	if err := s.put(ctx, name, data); err != nil {
		if up.Err() == nil {
			s.fail(err)
		}
		return false
	}
	return true
}

// put uploads one object.
func (s *sink) put(ctx context.Context, name string, data []byte) error {
	if err := s.remote.Put(ctx, name, data); err != nil {
		return err
	}
	s.mu.Lock()
	s.uploaded[name] = true
	s.stats.Uploaded++
	s.mu.Unlock()
	return nil
}

// fail records that the store failed.
func (s *sink) fail(err error) {
	s.mu.Lock()
	s.stats.LastError = err.Error()
	if !s.stats.Down {
		s.stats.Down, s.stats.DownSince = true, time.Now()
		s.log.Warn("the S3 bucket is failing: viewers are served from this server's disk until it is back; the segments are uploaded then", "err", err)
		// The other uploads in flight would each wait out their own
		// deadline, and the segments behind them with them.
		s.cancelUp()
	}
	s.mu.Unlock()
}

// defer_ adds a segment stored on local disk to the backlog.
func (s *sink) defer_(name string, data []byte, segment time.Duration) {
	s.mu.Lock()
	s.fastEnough = s.deadline(segment)
	s.backlog = append(s.backlog, &deferred{name: name, data: data})
	s.backlogBytes += int64(len(data))
	s.stats.Deferred++
	s.dropOverCap()
	s.mu.Unlock()
	signal(s.wake)
}

// dropOverCap gives up the oldest expired segments while the backlog is
// over its cap; segments still in a playlist are kept. s.mu is held.
func (s *sink) dropOverCap() {
	for i := 0; s.backlogBytes > s.maxBytes && i < len(s.backlog); {
		d := s.backlog[i]
		if !d.expired {
			i++
			continue
		}
		s.backlog = append(s.backlog[:i], s.backlog[i+1:]...)
		s.backlogBytes -= int64(len(d.data))
		s.stats.Dropped++
		s.localDeletes = append(s.localDeletes, d.name)
		if !s.capHit {
			s.capHit = true
			s.log.Error("the S3 bucket has been down too long: old segments are no longer kept for it (they were served from this server)", "cap_bytes", s.maxBytes)
		}
	}
}

// expire handles segments that have left retention: removed from local
// disk and from the store, unless still waiting to be uploaded.
func (s *sink) expire(names ...string) {
	s.mu.Lock()
	for _, n := range names {
		waiting := false
		for _, d := range s.backlog {
			if d.name == n {
				d.expired, waiting = true, true
			}
		}
		if waiting {
			continue
		}
		s.localDeletes = append(s.localDeletes, n)
		if s.uploaded[n] {
			s.deletes = append(s.deletes, n)
		}
	}
	s.dropOverCap()
	s.mu.Unlock()
	signal(s.wake)
}

// run clears the store, then uploads the backlog and deletes expired
// objects until finish.
func (s *sink) run() {
	defer close(s.done)
	ctx := s.ctx
	clearCtx, cancelClear := context.WithTimeout(ctx, 30*time.Second)
	if err := s.remote.Clear(clearCtx); err != nil && ctx.Err() == nil {
		s.fail(err)
	}
	cancelClear()
	close(s.ready)

	backoff := time.Duration(0)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if backoff > 0 {
			timer.Reset(backoff + rand.N(backoff/2))
		}
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-timer.C:
		}
		if !s.work(ctx) {
			backoff = min(max(2*backoff, time.Second), s.backoff)
		} else {
			backoff = 0
			timer.Stop()
		}
	}
}

// work removes the local copies that have done their work, uploads the
// backlog, oldest first, and deletes expired objects in batches; false if
// the store failed.
func (s *sink) work(ctx context.Context) bool {
	s.removeLocal(ctx)
	for ctx.Err() == nil {
		s.mu.Lock()
		if len(s.backlog) == 0 {
			s.mu.Unlock()
			break
		}
		d := s.backlog[0]
		fast := s.fastEnough
		s.mu.Unlock()
		began := time.Now()
		pctx, cancel := context.WithTimeout(ctx, s.timeout)
		err := s.put(pctx, d.name, d.data)
		cancel()
		if err != nil {
			s.fail(err)
			return false
		}
		took := time.Since(began)
		s.mu.Lock()
		if s.stats.Down && took <= fast {
			s.up, s.cancelUp = context.WithCancel(s.ctx)
			s.log.Info("the S3 bucket is back; new segments go there again", "down_for", time.Since(s.stats.DownSince).Round(time.Second))
			s.stats.Down, s.stats.DownSince, s.capHit = false, time.Time{}, false
		} else if s.stats.Down {
			s.stats.LastError = fmt.Sprintf("the bucket answers, but an upload took %s, longer than a segment may wait (%s)", took.Round(time.Millisecond), fast)
		}
		if len(s.backlog) > 0 && s.backlog[0] == d {
			s.backlog = s.backlog[1:]
			s.backlogBytes -= int64(len(d.data))
		}
		expired := d.expired
		if expired {
			// Its playlist has moved on: the local copy has done its work.
			s.deletes = append(s.deletes, d.name)
			s.localDeletes = append(s.localDeletes, d.name)
		}
		s.mu.Unlock()
	}
	s.removeLocal(ctx)
	s.mu.Lock()
	var batch []string
	if len(s.deletes) >= deleteBatch {
		batch = s.deletes
		s.deletes = nil
	}
	s.mu.Unlock()
	return s.remove(ctx, batch)
}

// removeLocal deletes the local copies no playlist and no upload needs.
func (s *sink) removeLocal(ctx context.Context) {
	s.mu.Lock()
	local := s.localDeletes
	s.localDeletes = nil
	s.mu.Unlock()
	if err := s.local.Delete(ctx, local...); err != nil {
		s.log.Warn("could not remove old segments", "segments", local, "err", err)
	}
}

// remove deletes objects from the store; on failure they are kept for the
// next batch.
func (s *sink) remove(ctx context.Context, names []string) bool {
	if len(names) == 0 {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.remote.Delete(ctx, names...); err != nil {
		s.mu.Lock()
		s.deletes = append(names, s.deletes...)
		s.mu.Unlock()
		if !errors.Is(err, context.Canceled) {
			s.log.Warn("could not remove old segments from the S3 bucket; trying again later", "err", err)
		}
		return false
	}
	s.mu.Lock()
	for _, n := range names {
		delete(s.uploaded, n)
	}
	s.mu.Unlock()
	return true
}

// finish stops the uploads; with clean, it then removes every object the
// broadcast left in the store (a new broadcast has begun).
func (s *sink) finish(clean bool) {
	s.cancel()
	<-s.done
	if !clean {
		return
	}
	s.mu.Lock()
	names := make([]string, 0, len(s.uploaded))
	for n := range s.uploaded {
		names = append(names, n)
	}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s.remove(ctx, names)
}
