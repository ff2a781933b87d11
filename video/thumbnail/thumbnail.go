// Package thumbnail keeps a still of the live stream, refreshed every few
// seconds from the newest segment: the player's poster, and later the
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
	"time"

	"github.com/starling-live/starling/video/hls"
)

// Name is the thumbnail's storage name, served at /thumbnail.jpg.
const Name = "thumbnail.jpg"

type source interface {
	Latest() (hls.Segment, bool)
}

type store interface {
	Put(ctx context.Context, name string, data []byte) error
}

// Deps are what a Generator needs.
type Deps struct {
	Logger *slog.Logger
	// FFmpeg is the ffmpeg executable.
	FFmpeg string
	Source source
	Store  store
	// Interval between refreshes (5 s).
	Interval time.Duration
}

// Generator refreshes the thumbnail while segments keep coming.
type Generator struct {
	log    *slog.Logger
	deps   Deps
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a Generator.
func New(d Deps) *Generator {
	if d.Interval == 0 {
		d.Interval = 5 * time.Second
	}
	return &Generator{log: d.Logger, deps: d}
}

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
	t := time.NewTicker(g.deps.Interval)
	defer t.Stop()
	var last string
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		seg, ok := g.deps.Source.Latest()
		if !ok || seg.Name == last {
			continue
		}
		last = seg.Name
		if err := g.refresh(ctx, seg.Data); err != nil && ctx.Err() == nil {
			g.log.Warn("could not make a thumbnail", "segment", seg.Name, "err", err)
		}
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
