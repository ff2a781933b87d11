// Command pipeline measures the live pipeline on this machine, as medians
// of several runs:
//
//   - the first picture: seconds from the publisher's launch to the first
//     frame presented by a viewer page that was open, waiting for the
//     stream, in headless Chromium;
//   - seconds from publish to the first playable segment (the master
//     playlist, a media playlist and its first segment all served), from
//     the publisher's launch and from the moment /api/status says online;
//   - CPU (share of one core) and resident memory of the Starling process
//     alone, ffmpeg excluded, while a stream runs with no viewers.
//
// It builds Starling, starts it on loopback with a fresh data directory and
// default settings, and publishes a synthetic 1280x720 30 fps stream with
// ffmpeg as OBS does (benchkit.Publish: x264 veryfast without
// zerolatency tuning, 1 s key frames).
//
//	go run ./build/bench/pipeline -runs 5 -window 30s
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/starling-live/starling/build/benchkit"
	"github.com/starling-live/starling/core/testrig/chromium"
)

func main() {
	runs := flag.Int("runs", 5, "number of runs")
	window := flag.Duration("window", 30*time.Second, "how long to sample CPU and memory while streaming")
	size := flag.String("size", "1280x720", "size of the published picture")
	flag.Parse()
	if err := run(*runs, *window, *size); err != nil {
		fmt.Fprintln(os.Stderr, "pipeline bench:", err)
		os.Exit(1)
	}
}

type result struct {
	picture                time.Duration // launch to the page's first frame
	pageMaster, pageSeg    time.Duration // launch to the page's master playlist, first segment
	fromLaunch, fromOnline time.Duration
	cpu                    float64 // share of one core
	rssMedian, rssPeak     int64   // bytes
}

func run(runs int, window time.Duration, size string) error {
	tmp, bin, err := benchkit.Build("starling-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	var results []result
	for i := 1; i <= runs; i++ {
		r, err := once(bin, tmp, window, size)
		if err != nil {
			return fmt.Errorf("run %d: %w", i, err)
		}
		fmt.Printf("run %d: first picture %.2f s after launch (the page had the master playlist at %.2f s, its first segment at %.2f s); first segment %.2f s after launch, %.2f s after online; server CPU %.2f%% of a core, RSS median %.1f MB, peak %.1f MB\n",
			i, r.picture.Seconds(), r.pageMaster.Seconds(), r.pageSeg.Seconds(), r.fromLaunch.Seconds(), r.fromOnline.Seconds(), r.cpu*100, benchkit.MB(r.rssMedian), benchkit.MB(r.rssPeak))
		results = append(results, r)
	}
	med := func(f func(result) float64) float64 {
		v := make([]float64, len(results))
		for i, r := range results {
			v[i] = f(r)
		}
		return benchkit.Median(v)
	}
	fmt.Printf("\nmedians of %d runs (%s publisher, %s window):\n", runs, size, window)
	fmt.Printf("| publish → first picture in a waiting page | publish → first playable segment (from launch) | (from online) | server CPU, share of one core | server RSS median | server RSS peak |\n")
	fmt.Printf("|---|---|---|---|---|---|\n")
	fmt.Printf("| %.2f s | %.2f s | %.2f s | %.2f%% | %.1f MB | %.1f MB |\n",
		med(func(r result) float64 { return r.picture.Seconds() }),
		med(func(r result) float64 { return r.fromLaunch.Seconds() }),
		med(func(r result) float64 { return r.fromOnline.Seconds() }),
		med(func(r result) float64 { return r.cpu * 100 }),
		med(func(r result) float64 { return benchkit.MB(r.rssMedian) }),
		med(func(r result) float64 { return benchkit.MB(r.rssPeak) }))
	return nil
}

func once(bin, dir string, window time.Duration, size string) (result, error) {
	var r result
	srv, err := benchkit.Start(bin, dir)
	if err != nil {
		return r, err
	}
	defer srv.Stop()

	page, closePage, err := waitingPage(dir, srv.Web+"/")
	if err != nil {
		return r, err
	}
	defer closePage()

	launched := time.Now()
	pub, err := benchkit.Publish(srv.RTMP+"/"+benchkit.StreamKey, size)
	if err != nil {
		return r, err
	}
	defer func() {
		pub.Process.Signal(syscall.SIGINT)
		pub.Wait()
	}()

	var online time.Time
	deadline := launched.Add(30 * time.Second)
	for r.picture == 0 || r.fromLaunch == 0 {
		if time.Now().After(deadline) {
			return r, fmt.Errorf("no picture within 30 s (first segment after %s)", r.fromLaunch)
		}
		if online.IsZero() {
			if b, ok := srv.Get("/api/status", false); ok && bytes.Contains(b, []byte(`"online":true`)) {
				online = time.Now()
			}
		}
		if r.fromLaunch == 0 && playable(srv) {
			r.fromLaunch = time.Since(launched)
			r.fromOnline = time.Since(online)
		}
		if r.picture == 0 {
			var shown float64 // epoch ms
			if err := chromedp.Run(page, chromedp.Evaluate(`window.benchFirstFrame`, &shown)); err != nil {
				return r, err
			}
			if shown > 0 {
				r.picture = time.UnixMilli(int64(shown)).Sub(launched)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	var got struct{ Master, Segment float64 } // epoch ms
	if err := chromedp.Run(page, chromedp.Evaluate(`(() => {
		const end = (re) => {
			const e = performance.getEntriesByType('resource').find((e) => re.test(new URL(e.name).pathname));
			return e ? performance.timeOrigin + e.responseEnd : 0;
		};
		return {master: end(/^\/hls\/stream\.m3u8$/), segment: end(/^\/hls\/.*\.ts$/)};
	})()`, &got)); err != nil {
		return r, err
	}
	r.pageMaster = time.UnixMilli(int64(got.Master)).Sub(launched)
	r.pageSeg = time.UnixMilli(int64(got.Segment)).Sub(launched)
	closePage() // the figures below are the server's with no viewers

	// Let start-up settle, then sample the server process alone.
	time.Sleep(3 * time.Second)
	pid := srv.PID()
	cpu0, t0 := benchkit.CPUSeconds(pid), time.Now()
	var rss []int64
	for time.Since(t0) < window {
		time.Sleep(time.Second)
		rss = append(rss, benchkit.RSS(pid))
	}
	r.cpu = (benchkit.CPUSeconds(pid) - cpu0) / time.Since(t0).Seconds()
	slices.Sort(rss)
	r.rssMedian, r.rssPeak = rss[len(rss)/2], rss[len(rss)-1]
	return r, nil
}

// playable reports whether a player could start: the master playlist, the
// first media playlist with a segment, and that segment are all served.
func playable(srv *benchkit.Server) bool {
	master, ok := srv.Get("/hls/stream.m3u8", false)
	if !ok {
		return false
	}
	variant := firstURI(master)
	if variant == "" {
		return false
	}
	media, ok := srv.Get("/hls/"+variant, false)
	if !ok {
		return false
	}
	seg := firstURI(media)
	if seg == "" {
		return false
	}
	_, ok = srv.Get("/hls/"+variant[:strings.LastIndex(variant, "/")+1]+seg, false)
	return ok
}

func firstURI(playlist []byte) string {
	for _, line := range strings.Split(string(playlist), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			return line
		}
	}
	return ""
}

// waitingPage opens the viewer page in a headless Chromium, the stream
// still offline, and notes when it presents its first frame: the epoch
// milliseconds at which the compositor showed it, in window.benchFirstFrame.
func waitingPage(dir, url string) (context.Context, func(), error) {
	actx, stopBrowser, err := chromium.Allocator(dir)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := chromedp.NewContext(actx)
	stop := func() { cancel(); stopBrowser() }
	// The first Run starts the browser, which lives as long as the
	// context of that Run: the page's, not a timeout's.
	if err := chromedp.Run(ctx); err != nil {
		stop()
		return nil, nil, err
	}
	tctx, tcancel := context.WithTimeout(ctx, 60*time.Second)
	defer tcancel()
	err = chromedp.Run(tctx, chromedp.Navigate(url), chromedp.Evaluate(`(() => {
		window.benchFirstFrame = 0;
		const v = document.querySelector('video');
		v.requestVideoFrameCallback((now, meta) => {
			window.benchFirstFrame = performance.timeOrigin + meta.expectedDisplayTime;
		});
		return true;
	})()`, nil))
	if err != nil {
		stop()
		return nil, nil, err
	}
	return ctx, stop, nil
}
