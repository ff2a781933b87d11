// Package thumbnail keeps a still of the live stream, refreshed every few
// seconds from the newest published segment: the player's poster, and later the
// picture of link previews and go-live posts.
package thumbnail

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os/exec"
	"strings"
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
	// FFmpeg is the ffmpeg executable.
	FFmpeg string
	Store  store
	// Interval is the least time between refreshes (5 s).
	Interval time.Duration
}

// Generator refreshes the thumbnail while segments keep coming. It is an
// hls.Listener: each new segment of the first rendition is a candidate.
type Generator struct {
	log    *slog.Logger
	deps   Deps
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// latest is the newest segment not made into a thumbnail yet; fresh
	// tells the loop there is one.
	latest atomic.Pointer[hls.Segment]
	fresh  chan struct{}
}

var _ hls.Listener = (*Generator)(nil)

// New returns a Generator.
func New(d Deps) *Generator {
	if d.Interval == 0 {
		d.Interval = 5 * time.Second
	}
	return &Generator{log: d.Logger, deps: d, fresh: make(chan struct{}, 1)}
}

// SegmentPublished takes a new segment of the first rendition.
func (g *Generator) SegmentPublished(s hls.Segment) {
	if s.Rendition != 0 {
		return
	}
	g.latest.Store(&s)
	select {
	case g.fresh <- struct{}{}:
	default:
	}
}

// RenditionsChanged is of no interest to thumbnails.
func (g *Generator) RenditionsChanged(hls.Renditions) {}

// Start begins refreshing.
func (g *Generator) Start(ctx context.Context) {
	ctx, g.cancel = context.WithCancel(ctx)
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		g.loop(ctx)
	}()
}

// Close stops refreshing and waits for a refresh in progress.
func (g *Generator) Close() error {
	if g.cancel != nil {
		g.cancel()
		g.wg.Wait()
	}
	return nil
}

func (g *Generator) loop(ctx context.Context) {
	// A new segment makes a thumbnail, at most one per Interval.
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		select {
		case <-ctx.Done():
			return
		case <-g.fresh:
		}
		seg := g.latest.Swap(nil)
		if seg == nil {
			t.Reset(0)
			continue
		}
		if err := g.refresh(ctx, seg.Data); err != nil && ctx.Err() == nil {
			g.log.Warn("could not make a thumbnail", "segment", seg.Name, "err", err)
		}
		t.Reset(g.deps.Interval)
	}
}

// refresh decodes the first frame of an MPEG-TS segment to JPEG.
func (g *Generator) refresh(ctx context.Context, segment []byte) error {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, g.deps.FFmpeg, Args()...)
	cmd.Stdin = bytes.NewReader(segment)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
	}
	if out.Len() == 0 {
		return fmt.Errorf("ffmpeg wrote no picture: %s", strings.TrimSpace(stderr.String()))
	}
	return g.deps.Store.Put(ctx, Name, out.Bytes())
}

// Args are ffmpeg's arguments: an MPEG-TS segment on standard input, its
// first frame as a JPEG at most 720 lines high on standard output.
func Args() []string {
	return []string{
		"-hide_banner", "-loglevel", "error",
		"-f", "mpegts", "-i", "pipe:0",
		"-frames:v", "1", "-vf", "scale=-2:'trunc(min(720,ih)/2)*2'",
		"-q:v", "4", "-f", "image2", "-c:v", "mjpeg", "pipe:1",
	}
}
