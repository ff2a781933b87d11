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
// The pages note when each segment reached them and how (loadProbe), which
// splits the rest:
//
//	first fetch        the first viewer's HTTP fetch done - listed (the
//	                   first holder's, when one holds it first)
//	peer transfer      a viewer's P2P delivery done - that first fetch
//	delivered          a viewer has it - listed, whichever way it came
//	buffer             glass-to-glass - capture-to-listed (for the average
//	                   frame, the middle of its segment) - delivered: where
//	                   the player keeps it before showing it
//
// (The segments' PROGRAM-DATE-TIME is ffmpeg's clock at its start plus
// the media time since, which runs ahead of capture: it is not used.)
type segmentTiming struct {
	uri             string
	capture, listed time.Time
	duration        float64 // seconds
}

// loadProbe runs in each page once it plays: it notes when each segment
// arrives, from where.
const loadProbe = `(() => {
	window.benchLoads = [];
	window.starling.hls.p2pEngine.addEventListener('onSegmentLoaded', (d) => {
		window.benchLoads.push({uri: new URL(d.segmentUrl).pathname.split('/').pop(), source: d.downloadSource,
			at: performance.timeOrigin + performance.now()});
	});
	return true;
})()`

// segmentLoad is one page's receipt of a segment.
type segmentLoad struct {
	URI    string  `json:"uri"`
	Source string  `json:"source"` // "http" or "p2p"
	At     float64 `json:"at"`     // epoch ms
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
					w.segs = append(w.segs, segmentTiming{uri: line, capture: capture, listed: now, duration: dur})
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
	firstFetch, peer, delivered   float64 // seconds; 0 without page loads
}

func (w *budgetWatcher) reset() {
	w.mu.Lock()
	w.segs, w.errs = nil, 0
	w.mu.Unlock()
}

// stop ends the watch and takes the medians, with the pages' receipts.
func (w *budgetWatcher) stop(loads []segmentLoad) budget {
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	median := func(v []float64) float64 {
		if len(v) == 0 {
			return 0
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	med := func(f func(segmentTiming) float64) float64 {
		var v []float64
		for _, s := range w.segs {
			v = append(v, f(s))
		}
		return median(v)
	}
	byURI := map[string][]segmentLoad{}
	for _, l := range loads {
		byURI[l.URI] = append(byURI[l.URI], l)
	}
	var first, peer, delivered []float64
	for _, s := range w.segs {
		listed := float64(s.listed.UnixMilli())
		fetched := 0.0
		for _, l := range byURI[s.uri] {
			if l.Source == "http" && (fetched == 0 || l.At < fetched) {
				fetched = l.At
			}
		}
		if fetched > 0 {
			first = append(first, (fetched-listed)/1000)
		}
		for _, l := range byURI[s.uri] {
			delivered = append(delivered, (l.At-listed)/1000)
			if l.Source == "p2p" && fetched > 0 {
				peer = append(peer, (l.At-fetched)/1000)
			}
		}
	}
	return budget{
		segments:     len(w.segs),
		segment:      med(func(s segmentTiming) float64 { return s.duration }),
		server:       med(func(s segmentTiming) float64 { return s.listed.Sub(s.capture).Seconds() - s.duration }),
		captureToMid: med(func(s segmentTiming) float64 { return s.listed.Sub(s.capture).Seconds() - s.duration/2 }),
		firstFetch:   median(first),
		peer:         median(peer),
		delivered:    median(delivered),
	}
}
