package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/starling-live/starling/storage/local"
	"github.com/starling-live/starling/video/hls"
)

// recorder is the packager's listener: it notes when each segment was
// published, and in flood mode frees the segment's place in flight.
type recorder struct {
	mu sync.Mutex
	// at is when each segment joined its playlist, remote whether under
	// the bucket's URL; guarded by mu.
	at     map[segKey]time.Time
	remote map[segKey]bool
	// inflight, if set, holds a token for each segment sent and not yet
	// published, by rendition; guarded by mu, the channels themselves not.
	inflight []chan struct{}
}

func newRecorder() *recorder {
	return &recorder{at: map[segKey]time.Time{}, remote: map[segKey]bool{}}
}

func (r *recorder) SegmentPublished(s hls.Segment) {
	now := time.Now()
	k, ok := parseSegment(s.Data)
	if !ok {
		return
	}
	r.mu.Lock()
	r.at[k] = now
	r.remote[k] = strings.HasPrefix(s.URI, "http")
	slots := r.inflight
	r.mu.Unlock()
	if slots != nil {
		select {
		case <-slots[k.v]:
		default:
		}
	}
}

func (r *recorder) RenditionsChanged(hls.Renditions) {}

func (r *recorder) published(k segKey) (time.Time, bool, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.at[k]
	return t, r.remote[k], ok
}

// latencies are complete -> published of the segments ffmpeg completed
// in [from, to); one never published counts as lost.
func (r *recorder) latencies(ff *fakeFFmpeg, from, to time.Time) (ds []time.Duration, remote int) {
	ff.mu.Lock()
	done := make(map[segKey]time.Time, len(ff.done))
	for k, t := range ff.done {
		done[k] = t
	}
	ff.mu.Unlock()
	for k, t := range done {
		if t.Before(from) || !t.Before(to) {
			continue
		}
		at, rem, ok := r.published(k)
		if !ok {
			ds = append(ds, lost)
			continue
		}
		ds = append(ds, at.Sub(t))
		if rem {
			remote++
		}
	}
	return ds, remote
}

// waitWindow waits until every segment ffmpeg completed in [from, to) is
// published, at most d.
func (r *recorder) waitWindow(ff *fakeFFmpeg, from, to time.Time, d time.Duration) {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		ds, _ := r.latencies(ff, from, to)
		if !slices.Contains(ds, lost) {
			return
		}
	}
}

// longestStall is the longest time rendition v went without a segment
// published, over the segments ffmpeg completed in [from, to), counting
// from from.
func (r *recorder) longestStall(ff *fakeFFmpeg, v int, from, to time.Time) time.Duration {
	ff.mu.Lock()
	var keys []segKey
	for k, t := range ff.done {
		if k.v == v && t.Before(to) {
			keys = append(keys, k)
		}
	}
	ff.mu.Unlock()
	var at []time.Time
	for _, k := range keys {
		if t, _, ok := r.published(k); ok && t.After(from) {
			at = append(at, t)
		}
	}
	slices.SortFunc(at, time.Time.Compare)
	var longest time.Duration
	prev := from
	for _, t := range at {
		longest = max(longest, t.Sub(prev))
		prev = t
	}
	return longest
}

// packager is a real hls.Packager on a temporary directory, started.
type packager struct {
	*hls.Packager
	rec  *recorder
	dir  string
	root *os.Root
}

// startPackager starts a packager on a new temporary directory; st, if
// set, wraps the local disk.
func startPackager(st func(*local.Storage) hls.Storage, listeners ...hls.Listener) (*packager, error) {
	dir, err := os.MkdirTemp("", "starling-bench-hls-")
	if err != nil {
		return nil, err
	}
	disk, err := local.New(dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	var s hls.Storage = disk
	if st != nil {
		s = st(disk)
	}
	p := &packager{Packager: hls.New(hls.Deps{Logger: slog.New(slog.DiscardHandler), Storage: s, Files: root.FS()}),
		rec: newRecorder(), dir: dir, root: root}
	p.AddListener(p.rec)
	for _, l := range listeners {
		p.AddListener(l)
	}
	if err := p.Start(context.Background()); err != nil {
		root.Close()
		os.RemoveAll(dir)
		return nil, err
	}
	return p, nil
}

func (p *packager) close() {
	p.Close()
	p.root.Close()
	os.RemoveAll(p.dir)
}

// latencyConfig shapes the publication measurements.
type latencyConfig struct {
	segments int           // per rendition, paced
	interval time.Duration // between segments, paced
	flood    int           // per rendition, as fast as possible
	inflight int           // segments per rendition sent and not yet published, flood
	warmup   int           // first segments of each rendition left out
}

type latencyResult struct {
	store, mode string
	lat         summary
	remote      int     // published under the bucket's URL
	mbps        float64 // MB/s of segments published
	segps       float64
	status      hls.StorageStatus
}

// measurePublish sends segments to a packager whose broadcast stores them
// in remote (nil: the local disk) and times each from complete to
// published. Paced, a segment of each rendition goes every c.interval;
// flood, they go back to back, with at most c.inflight per rendition
// unpublished, which is as fast as the store takes them.
func measurePublish(store string, remote hls.Remote, kbps []int, segDur time.Duration, c latencyConfig, flood bool) (latencyResult, error) {
	res := latencyResult{store: store, mode: "paced"}
	p, err := startPackager(nil)
	if err != nil {
		return res, err
	}
	defer p.close()
	ctx := context.Background()
	b := p.Begin(ctx, hls.Options{PlaylistSegments: 4, Remote: remote})
	defer b.End(ctx)
	ff := newFakeFFmpeg(b.NextRunURL(), kbps, segDur)
	defer ff.close()
	if err := ff.master(ctx); err != nil {
		return res, err
	}
	// The first segments wait for the bucket to be cleared; the clock
	// starts after them.
	if err := ff.paced(ctx, c.interval, 0, c.warmup); err != nil {
		return res, err
	}
	if err := waitPublished(p.rec, len(kbps), c.warmup); err != nil {
		return res, fmt.Errorf("%s, warm-up: %w", store, err)
	}
	from := time.Now()
	count := c.segments
	if !flood {
		err = ff.paced(ctx, c.interval, c.warmup, count)
	} else {
		res.mode, count = "flood", c.flood
		err = floodSegments(ctx, ff, p.rec, c.warmup, count, c.inflight)
	}
	if err != nil {
		return res, fmt.Errorf("%s, %s: %w", store, res.mode, err)
	}
	if err := waitPublished(p.rec, len(kbps), c.warmup+count); err != nil {
		return res, fmt.Errorf("%s, %s: %w", store, res.mode, err)
	}
	ds, rem := p.rec.latencies(ff, from, time.Now())
	res.lat, res.remote = summarize(ds), rem
	var last time.Time
	var bytes int64
	for v := range kbps {
		for n := c.warmup; n < c.warmup+count; n++ {
			if at, _, ok := p.rec.published(segKey{v, n}); ok {
				last = later(last, at)
				bytes += int64(ff.sizes[v])
			}
		}
	}
	took := last.Sub(from).Seconds()
	res.mbps, res.segps = float64(bytes)/1e6/took, float64(res.lat.N-res.lat.Lost)/took
	res.status = p.StorageStatus()
	return res, nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// floodSegments sends count segments of each rendition from first on, back
// to back, each once fewer than inflight of its rendition are unpublished.
func floodSegments(ctx context.Context, ff *fakeFFmpeg, r *recorder, first, count, inflight int) error {
	r.mu.Lock()
	r.inflight = make([]chan struct{}, len(ff.sizes))
	for v := range r.inflight {
		r.inflight[v] = make(chan struct{}, inflight)
	}
	slots := r.inflight
	r.mu.Unlock()
	for n := first; n < first+count; n++ {
		for v := range ff.sizes {
			select {
			case slots[v] <- struct{}{}:
			case <-time.After(60 * time.Second):
				return fmt.Errorf("rendition %d: no segment was published for 60 s", v)
			}
			if err := ff.segment(ctx, v, n); err != nil {
				return err
			}
		}
	}
	return nil
}

// waitPublished waits until segment n-1 of every rendition is published.
func waitPublished(r *recorder, renditions, n int) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		all := true
		for v := range renditions {
			if _, _, ok := r.published(segKey{v, n - 1}); !ok {
				all = false
			}
		}
		if all {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("segment %d was not published within 60 s", n-1)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
