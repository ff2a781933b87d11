// Command swarm measures P2P delivery with real viewers: for each swarm
// size it starts Starling, publishes a stream with the wall clock burnt
// into every frame, opens that many viewer pages, each in its own headless
// Chromium process, and reports
//
//   - offload: segment bytes viewers got from each other / all segment
//     bytes they got, over the measurement window;
//   - glass-to-glass latency: the time from a frame leaving the synthetic
//     camera to the page presenting it, read from the barcode in the frame
//     (method in shared/notes/latency.md), and where it goes (budget.go);
//   - stalls: times a page stopped to wait for data.
//
// Viewers join once the playlist is full, as viewers of a stream already
// running do. By default every viewer is a window of one shared headless
// Chromium: eight separate browsers need more CPU than two cores have, and
// then the figures measure the machine, not the swarm (-separate runs one
// Chromium process per viewer).
//
//	go run ./build/bench/swarm -viewers 2,4,8 -window 60s
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"

	"github.com/starling-live/starling/build/benchkit"
	"github.com/starling-live/starling/core/testrig/chromium"
)

func main() {
	sizes := flag.String("viewers", "2,4,8", "swarm sizes to measure")
	window := flag.Duration("window", 60*time.Second, "measurement window per swarm size")
	warmup := flag.Duration("warmup", 20*time.Second, "time after the last viewer joins before measuring")
	segment := flag.Int("segment", 0, "segment seconds (0: the server's default settings)")
	playlist := flag.Int("playlist", 0, "segments per playlist (0: the default settings)")
	hdw := flag.Float64("hdw", 0, "highDemandTimeWindow in seconds (0: the default settings)")
	sync := flag.Int("livesync", 0, "liveSyncDurationCount (0: the default settings)")
	separate := flag.Bool("separate", false, "one Chromium process per viewer, instead of one window each in a shared Chromium (two cores cannot decode eight viewers' video in eight browsers in real time)")
	flag.Parse()
	var ns []int
	for _, f := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "bad swarm size %q\n", f)
			os.Exit(2)
		}
		ns = append(ns, n)
	}
	if err := run(ns, *window, *warmup, tuning{*segment, *playlist, *hdw, *sync}, !*separate); err != nil {
		fmt.Fprintln(os.Stderr, "swarm bench:", err)
		os.Exit(1)
	}
}

type tuning struct {
	segment, playlist int
	hdw               float64
	liveSync          int
}

type result struct {
	viewers          int
	offload          float64
	latencyP50, p90  float64 // seconds
	budget           budget
	stalls           int
	http, p2p        int64
	perViewerOffload []float64
}

func run(ns []int, window, warmup time.Duration, tu tuning, tabs bool) error {
	tmp, bin, err := benchkit.Build("starling-swarm-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	var results []result
	for _, n := range ns {
		r, err := once(bin, tmp, n, window, warmup, tu, tabs)
		if err != nil {
			return fmt.Errorf("%d viewers: %w", n, err)
		}
		fmt.Printf("%d viewers: offload %.0f%% (per viewer %s), latency p50 %.1f s p90 %.1f s, %d stalls\n",
			n, r.offload*100, percents(r.perViewerOffload), r.latencyP50, r.p90, r.stalls)
		results = append(results, r)
	}
	fmt.Printf("\n| viewers | offload (P2P / all segment bytes) | ceiling (n-1)/n | glass-to-glass p50 | p90 | stalls |\n|---|---|---|---|---|---|\n")
	for _, r := range results {
		fmt.Printf("| %d | %.0f%% | %.0f%% | %.1f s | %.1f s | %d |\n", r.viewers, r.offload*100,
			100*float64(r.viewers-1)/float64(r.viewers), r.latencyP50, r.p90, r.stalls)
	}
	fmt.Printf("\nLatency budget (medians over the window's segments; the player's share is glass-to-glass p50 minus capture to listed):\n\n")
	fmt.Printf("| viewers | segments | segment length | server: encoder to playlist, after the cut | capture to listed, mid-segment | first HTTP fetch done | peer transfer after it | a viewer has it | player's buffer | glass-to-glass p50 |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range results {
		b := r.budget
		fmt.Printf("| %d | %d | %.2f s | %.2f s | %.2f s | %.2f s | %.2f s | %.2f s | %.2f s | %.1f s |\n", r.viewers, b.segments,
			b.segment, b.server, b.captureToMid, b.firstFetch, b.peer, b.delivered, r.latencyP50-b.captureToMid-b.delivered, r.latencyP50)
	}
	return nil
}

func percents(v []float64) string {
	var s []string
	for _, f := range v {
		s = append(s, fmt.Sprintf("%.0f%%", f*100))
	}
	return strings.Join(s, " ")
}

// The publisher paints the capture time (ms, mod 2^24) as 24 blocks of
// 12x12 pixels across the top of each frame, then encodes it as OBS would
// (shared/notes/latency.md). The picture is small, 320x180 at 15 fps, so
// that eight browsers decode it on two cores without stalling for CPU.
const (
	blocks    = 24
	blockSize = 12
	width     = 320
	height    = 180
	fps       = 15
)

func publisher(rtmp string, segmentSeconds int) *exec.Cmd {
	fc := fmt.Sprintf("[0:v]settb=1/1000,setpts=RTCTIME/1000,split[a][b];"+
		"[b]crop=%d:%d:0:0,format=gray,geq=lum='255*mod(floor(mod(floor(T*1000+0.5),16777216)/pow(2,floor(X/%d))),2)'[s];"+
		"[a][s]overlay=0:0,setpts=N/(%d*TB),format=yuv420p[v]", blocks*blockSize, blockSize, blockSize, fps)
	return exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
		"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%dx%d:rate=%d", width, height, fps),
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-filter_complex", fc, "-map", "[v]", "-map", "1:a",
		"-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-g", strconv.Itoa(segmentSeconds*fps), "-b:v", "800k",
		"-c:a", "aac", "-b:a", "96k", "-f", "flv", rtmp+"/"+benchkit.StreamKey)
}

// latencyProbe runs in each page: for every presented frame it decodes
// the barcode and records display time minus capture time.
const latencyProbe = `(() => {
	const v = document.querySelector('video');
	const c = document.createElement('canvas');
	c.width = %[1]d * %[2]d; c.height = %[2]d;
	const g = c.getContext('2d', {willReadFrequently: true});
	window.benchLatency = [];
	window.benchStalls = 0;
	let started = false, frames = 0;
	v.addEventListener('playing', () => { started = true; });
	v.addEventListener('waiting', () => { if (started) window.benchStalls++; });
	const onFrame = (now, meta) => {
		if (v.videoWidth === %[3]d && ++frames %% 3 === 0) {
			g.drawImage(v, 0, 0, c.width, c.height, 0, 0, c.width, c.height);
			const px = g.getImageData(0, 0, c.width, c.height).data;
			let ms = 0;
			for (let i = 0; i < %[1]d; i++) {
				const x = i * %[2]d + %[2]d / 2, y = %[2]d / 2;
				if (px[(y * c.width + x) * 4] > 127) ms += 2 ** i;
			}
			const shown = Math.round(performance.timeOrigin + meta.expectedDisplayTime) %% 16777216;
			const lat = (shown - ms + 16777216) %% 16777216;
			if (lat < 60000) window.benchLatency.push(lat);
		}
		v.requestVideoFrameCallback(onFrame);
	};
	v.requestVideoFrameCallback(onFrame);
	return true;
})()`

type viewer struct {
	ctx    context.Context
	cancel func()
}

// openViewer opens the page in the browser behind parent: in the browser's
// first tab, or with window set in a new window of it (a background tab
// would be throttled).
func openViewer(parent context.Context, url string, window bool) (*viewer, error) {
	var opts []chromedp.ContextOption
	if window {
		var id target.ID
		err := chromedp.Run(parent, chromedp.ActionFunc(func(ctx context.Context) error {
			var err error
			id, err = target.CreateTarget("about:blank").WithNewWindow(true).
				Do(cdp.WithExecutor(ctx, chromedp.FromContext(ctx).Browser))
			return err
		}))
		if err != nil {
			return nil, err
		}
		opts = append(opts, chromedp.WithTargetID(id))
	}
	ctx, cancel := chromedp.NewContext(parent, opts...)
	v := &viewer{ctx: ctx, cancel: cancel}
	// The first Run starts the browser, which lives as long as its context:
	// give it the viewer's, not a timeout's.
	if err := chromedp.Run(ctx); err != nil {
		v.cancel()
		return nil, err
	}
	tctx, tcancel := context.WithTimeout(ctx, 60*time.Second)
	defer tcancel()
	if err := chromedp.Run(tctx, chromedp.Navigate(url)); err != nil {
		v.cancel()
		return nil, err
	}
	if err := v.eval(fmt.Sprintf(latencyProbe, blocks, blockSize, width), nil); err != nil {
		v.cancel()
		return nil, err
	}
	return v, nil
}

func (v *viewer) eval(expr string, out any) error {
	ctx, cancel := context.WithTimeout(v.ctx, 30*time.Second)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate(expr, out))
}

type snapshot struct {
	HTTPBytes int64 `json:"httpBytes"`
	P2PBytes  int64 `json:"p2pBytes"`
	Peers     int   `json:"peers"`
}

func (v *viewer) snapshot() (snapshot, error) {
	var s snapshot
	err := v.eval(`window.starling.p2p`, &s)
	return s, err
}

func waitPlaying(v *viewer, i int) error {
	for start := time.Now(); !v.playing(); time.Sleep(200 * time.Millisecond) {
		if time.Since(start) > time.Minute {
			return fmt.Errorf("viewer %d did not start playing", i+1)
		}
	}
	return nil
}

func (v *viewer) playing() bool {
	var t float64
	v.eval(`document.querySelector('video').currentTime`, &t)
	return t > 1
}

func once(bin, dir string, n int, window, warmup time.Duration, tu tuning, tabs bool) (result, error) {
	r := result{viewers: n}
	srv, err := benchkit.Start(bin, dir)
	if err != nil {
		return r, err
	}
	defer srv.Stop()
	// Passthrough keeps the server's ffmpeg off the CPU the browsers need;
	// segments are then cut at the publisher's key frames, which come once
	// per segment.
	if err := srv.Admin("/api/admin/config/video/streamoutputvariants",
		`{"value":[{"name":"source","videoPassthrough":true,"audioPassthrough":true}]}`); err != nil {
		return r, err
	}
	// The server's defaults, unless told otherwise.
	var defaults struct {
		Video struct{ SegmentSeconds, PlaylistSegments int } `json:"videoSettings"`
	}
	raw, _ := srv.Get("/api/admin/serverconfig", true)
	if err := json.Unmarshal(raw, &defaults); err != nil || defaults.Video.SegmentSeconds == 0 {
		return r, fmt.Errorf("the server's video settings: %v %s", err, raw)
	}
	seg, pl := cmp.Or(tu.segment, defaults.Video.SegmentSeconds), cmp.Or(tu.playlist, defaults.Video.PlaylistSegments)
	if err := srv.Admin("/api/admin/config/video/segments", fmt.Sprintf(`{"value":{"segmentSeconds":%d,"playlistSegments":%d}}`, seg, pl)); err != nil {
		return r, err
	}
	if tu.hdw > 0 || tu.liveSync > 0 {
		var cfg struct {
			P2P map[string]any `json:"p2p"`
		}
		raw, _ := srv.Get("/api/admin/serverconfig", true)
		json.Unmarshal(raw, &cfg)
		if tu.hdw > 0 {
			cfg.P2P["highDemandTimeWindow"] = tu.hdw
		}
		if tu.liveSync > 0 {
			cfg.P2P["liveSyncDurationCount"] = tu.liveSync
		}
		body, _ := json.Marshal(map[string]any{"value": cfg.P2P})
		if err := srv.Admin("/api/admin/config/p2p", string(body)); err != nil {
			return r, err
		}
	}
	pub := publisher(srv.RTMP, seg)
	pub.Stderr = os.Stderr
	if err := pub.Start(); err != nil {
		return r, err
	}
	defer func() { pub.Process.Signal(syscall.SIGINT); pub.Wait() }()

	// Wait for a full playlist.
	var cfg struct {
		P2P struct{ LiveSyncDurationCount int } `json:"p2p"`
	}
	raw, _ = srv.Get("/api/config", false)
	json.Unmarshal(raw, &cfg)
	need := cfg.P2P.LiveSyncDurationCount + 2
	deadline := time.Now().Add(2 * time.Minute)
	for {
		b, _ := srv.Get("/hls/0/stream.m3u8", false)
		if strings.Count(string(b), "#EXTINF") >= need {
			break
		}
		if time.Now().After(deadline) {
			return r, fmt.Errorf("the playlist did not reach %d segments", need)
		}
		time.Sleep(200 * time.Millisecond)
	}

	var viewers []*viewer
	var browsers []func()
	defer func() {
		for _, v := range viewers {
			v.cancel()
		}
		for _, stop := range browsers {
			stop()
		}
	}()
	var shared context.Context
	for i := range n {
		parent := shared
		if parent == nil {
			ctx, stop, err := chromium.Allocator(dir)
			if err != nil {
				return r, err
			}
			browsers = append(browsers, stop)
			parent = ctx
			if tabs {
				// The first tab's context owns the browser; later tabs
				// are opened from it.
				first, err := openViewer(parent, srv.Web+"/", false)
				if err != nil {
					return r, fmt.Errorf("viewer %d: %w", i+1, err)
				}
				viewers = append(viewers, first)
				shared = first.ctx
				if err := waitPlaying(first, i); err != nil {
					return r, err
				}
				continue
			}
		}
		v, err := openViewer(parent, srv.Web+"/", shared != nil)
		if err != nil {
			return r, fmt.Errorf("viewer %d: %w", i+1, err)
		}
		viewers = append(viewers, v)
		if err := waitPlaying(v, i); err != nil {
			return r, err
		}
	}
	for i, v := range viewers {
		if err := v.eval(loadProbe, nil); err != nil {
			return r, fmt.Errorf("viewer %d: %w", i+1, err)
		}
	}
	watch := watchBudget(srv)
	time.Sleep(warmup)
	watch.reset()
	before := make([]snapshot, n)
	for i, v := range viewers {
		before[i], _ = v.snapshot()
		v.eval(`window.benchLatency = []; window.benchStalls = 0; true`, nil)
	}
	time.Sleep(window)
	var loads []segmentLoad
	for _, v := range viewers {
		var l []segmentLoad
		v.eval(`window.benchLoads`, &l)
		loads = append(loads, l...)
	}
	r.budget = watch.stop(loads)
	var lat []float64
	for i, v := range viewers {
		after, err := v.snapshot()
		if err != nil {
			return r, err
		}
		http, p2p := after.HTTPBytes-before[i].HTTPBytes, after.P2PBytes-before[i].P2PBytes
		r.http += http
		r.p2p += p2p
		if http+p2p > 0 {
			r.perViewerOffload = append(r.perViewerOffload, float64(p2p)/float64(http+p2p))
		}
		var samples []float64
		v.eval(`window.benchLatency`, &samples)
		lat = append(lat, samples...)
		var stalls int
		v.eval(`window.benchStalls`, &stalls)
		r.stalls += stalls
	}
	if r.http+r.p2p > 0 {
		r.offload = float64(r.p2p) / float64(r.http+r.p2p)
	}
	slices.Sort(lat)
	if len(lat) > 0 {
		r.latencyP50 = lat[len(lat)/2] / 1000
		r.p90 = lat[int(math.Min(float64(len(lat)-1), float64(len(lat))*0.9))] / 1000
	}
	return r, nil
}
