// Package thumbnail keeps a still of the live stream: the player's
// poster, and later the picture of link previews and go-live posts.
//
// The stills come from the transcoding ffmpeg itself, as an extra output
// of the run that makes the segments (video/transcode's ThumbnailSeconds):
// the first at once, then one every few seconds. The packager hands them
// over; a Generator stores the newest. Before, a Generator forked an
// ffmpeg of its own for each still, which cost more CPU than all the rest
// of the server while streaming (docs/benchmarks.md).
package thumbnail

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/starling-live/starling/video/hls"
)

// Name is the thumbnail's storage name, served at /thumbnail.jpg.
const Name = "thumbnail.jpg"

type store interface {
	Put(ctx context.Context, name string, data []byte) error
}

// Deps are what a Generator needs.
type Deps struct {
	Logger *slog.Logger
	Store  store
}

// Generator stores the newest still of the stream. It is an
// hls.StillListener.
type Generator struct {
	log    *slog.Logger
	deps   Deps
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// latest is the newest still not stored yet; fresh tells the loop
	// there is one. Stills that come faster than the store takes them
	// replace each other.
	latest atomic.Pointer[[]byte]
	fresh  chan struct{}
}

var _ hls.StillListener = (*Generator)(nil)

// New returns a Generator.
func New(d Deps) *Generator {
	return &Generator{log: d.Logger, deps: d, fresh: make(chan struct{}, 1)}
}

// StillPublished takes a new still; the store gets it on the Generator's
// goroutine, not the packager's.
func (g *Generator) StillPublished(jpeg []byte) {
	g.latest.Store(&jpeg)
	select {
	case g.fresh <- struct{}{}:
	default:
	}
}

// SegmentPublished is of no interest to thumbnails any more: ffmpeg sends
// the stills.
func (g *Generator) SegmentPublished(hls.Segment) {}

// RenditionsChanged is of no interest to thumbnails.
func (g *Generator) RenditionsChanged(hls.Renditions) {}

// Start begins storing.
func (g *Generator) Start(ctx context.Context) {
	ctx, g.cancel = context.WithCancel(ctx)
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		g.loop(ctx)
	}()
}

// Close stops storing and waits for a store in progress.
func (g *Generator) Close() error {
	if g.cancel != nil {
		g.cancel()
		g.wg.Wait()
	}
	return nil
}

func (g *Generator) loop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-g.fresh:
		}
		jpeg := g.latest.Swap(nil)
		if jpeg == nil {
			continue
		}
		put, cancel := context.WithTimeout(ctx, 15*time.Second)
		if err := g.deps.Store.Put(put, Name, *jpeg); err != nil && ctx.Err() == nil {
			g.log.Warn("could not store the thumbnail", "err", err)
		}
		cancel()
	}
}
