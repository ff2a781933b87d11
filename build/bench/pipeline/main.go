// Command pipeline measures the live pipeline on this machine, as medians
// of several runs:
//
//   - seconds from publish to the first playable segment (the master
//     playlist, a media playlist and its first segment all served), from
//     the publisher's launch and from the moment /api/status says online;
//   - CPU (share of one core) and resident memory of the Starling process
//     alone, ffmpeg excluded, while a stream runs with no viewers.
//
// It builds Starling, starts it on loopback with a fresh data directory and
// default settings, and publishes a synthetic 1280x720 30 fps stream with
// ffmpeg (x264 veryfast, 2 s key frames: what OBS sends with the README's
// settings).
//
//	go run ./build/bench/pipeline -runs 5 -window 30s
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/starling-live/starling/build/benchkit"
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
		fmt.Printf("run %d: first segment %.2f s after launch, %.2f s after online; server CPU %.2f%% of a core, RSS median %.1f MB, peak %.1f MB\n",
			i, r.fromLaunch.Seconds(), r.fromOnline.Seconds(), r.cpu*100, benchkit.MB(r.rssMedian), benchkit.MB(r.rssPeak))
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
	fmt.Printf("| publish → first playable segment (from launch) | (from online) | server CPU, share of one core | server RSS median | server RSS peak |\n")
	fmt.Printf("|---|---|---|---|---|\n")
	fmt.Printf("| %.2f s | %.2f s | %.2f%% | %.1f MB | %.1f MB |\n",
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

	pub := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
		"-f", "lavfi", "-i", "testsrc2=size="+size+":rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-g", "60", "-b:v", "3000k", "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-b:a", "128k", "-f", "flv", srv.RTMP+"/"+benchkit.StreamKey)
	pub.Stderr = os.Stderr
	launched := time.Now()
	if err := pub.Start(); err != nil {
		return r, err
	}
	defer func() {
		pub.Process.Signal(syscall.SIGINT)
		pub.Wait()
	}()

	var online time.Time
	deadline := launched.Add(30 * time.Second)
	for {
		if time.Now().After(deadline) {
			return r, fmt.Errorf("no playable segment within 30 s")
		}
		if online.IsZero() {
			if b, ok := srv.Get("/api/status", false); ok && bytes.Contains(b, []byte(`"online":true`)) {
				online = time.Now()
			}
		}
		if playable(srv) {
			r.fromLaunch = time.Since(launched)
			r.fromOnline = time.Since(online)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}

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
