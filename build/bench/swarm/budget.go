package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/starling-live/starling/build/benchkit"
)

// The latency budget: where the seconds between a frame leaving the
// camera and a page showing it go. The watcher follows the media playlist
// as a player would (every 50 ms) and, for each new segment, reads the
// capture time of its first frame from the barcode (ffmpeg decodes the
// strip), so that each segment gives:
//
//	segment            its duration: its first frame waits for the cut
//	server             listed - capture - duration: the publisher's
//	                   encoder, RTMP, the server's ffmpeg, the PUT to the
//	                   packager, storage and the playlist (and up to 50 ms
//	                   of polling)
//
// and the pages' glass-to-glass latency minus capture-to-listed (for the
// average frame, the middle of its segment) is what the player side takes:
// the fetch (HTTP or a peer), the wait for it and the player's buffer.
// (The segments' PROGRAM-DATE-TIME is ffmpeg's clock at its start plus
// the media time since, which runs ahead of capture: it is not used.)
type segmentTiming struct {
	capture, listed time.Time
	duration        float64 // seconds
}

type budgetWatcher struct {
	srv    *benchkit.Server
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	segs []segmentTiming
	errs int
}

func watchBudget(srv *benchkit.Server) *budgetWatcher {
	ctx, cancel := context.WithCancel(context.Background())
	w := &budgetWatcher{srv: srv, cancel: cancel, done: make(chan struct{})}
	go w.run(ctx)
	return w
}

func (w *budgetWatcher) run(ctx context.Context) {
	defer close(w.done)
	seen := map[string]bool{}
	first := true
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		raw, ok := w.srv.Get("/hls/0/stream.m3u8", false)
		if !ok {
			continue
		}
		now := time.Now()
		var dur float64
		for _, line := range strings.Split(string(raw), "\n") {
			line = strings.TrimSpace(line)
			switch {
			case strings.HasPrefix(line, "#EXTINF:"):
				d, _, _ := strings.Cut(strings.TrimPrefix(line, "#EXTINF:"), ",")
				dur, _ = strconv.ParseFloat(d, 64)
			case line != "" && !strings.HasPrefix(line, "#"):
				if seen[line] {
					continue
				}
				seen[line] = true
				// The segments listed when the watch began were listed
				// before it saw them.
				if first {
					continue
				}
				capture, err := firstCapture(w.srv, line, now)
				w.mu.Lock()
				if err != nil {
					w.errs++
				} else {
					w.segs = append(w.segs, segmentTiming{capture: capture, listed: now, duration: dur})
				}
				w.mu.Unlock()
			}
		}
		first = false
	}
}

// firstCapture fetches a segment and decodes the barcode of its first
// frame: the capture time, in ms mod 2^24, nearest to near.
func firstCapture(srv *benchkit.Server, uri string, near time.Time) (time.Time, error) {
	seg, ok := srv.Get("/hls/0/"+uri, false)
	if !ok {
		return time.Time{}, fmt.Errorf("fetch %s", uri)
	}
	cmd := exec.Command("ffmpeg", "-v", "error", "-i", "pipe:0", "-frames:v", "1",
		"-vf", fmt.Sprintf("crop=%d:%d:0:0,format=gray", blocks*blockSize, blockSize), "-f", "rawvideo", "pipe:1")
	cmd.Stdin = bytes.NewReader(seg)
	px, err := cmd.Output()
	if err != nil || len(px) < blocks*blockSize*blockSize {
		return time.Time{}, fmt.Errorf("decode the first frame of %s: %v", uri, err)
	}
	var ms int64
	for i := range blocks {
		x, y := i*blockSize+blockSize/2, blockSize/2
		if px[y*blocks*blockSize+x] > 127 {
			ms += 1 << i
		}
	}
	const period = 1 << 24
	base := near.UnixMilli() - near.UnixMilli()%period
	t := base + ms
	// The capture is before near, within half a period.
	for t > near.UnixMilli() {
		t -= period
	}
	if near.UnixMilli()-t > period/2 {
		t += period
	}
	return time.UnixMilli(t), nil
}

// budget is the medians of the stages over the segments seen since the
// last reset.
type budget struct {
	segments                      int
	segment, server, captureToMid float64 // seconds
}

func (w *budgetWatcher) reset() {
	w.mu.Lock()
	w.segs, w.errs = nil, 0
	w.mu.Unlock()
}

func (w *budgetWatcher) stop() budget {
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	med := func(f func(segmentTiming) float64) float64 {
		var v []float64
		for _, s := range w.segs {
			v = append(v, f(s))
		}
		if len(v) == 0 {
			return 0
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	return budget{
		segments:     len(w.segs),
		segment:      med(func(s segmentTiming) float64 { return s.duration }),
		server:       med(func(s segmentTiming) float64 { return s.listed.Sub(s.capture).Seconds() - s.duration }),
		captureToMid: med(func(s segmentTiming) float64 { return s.listed.Sub(s.capture).Seconds() - s.duration/2 }),
	}
}
