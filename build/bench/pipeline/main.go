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
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
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
	tmp, err := os.MkdirTemp("", "starling-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bin := filepath.Join(tmp, "starling")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("build: %w", err)
	}
	var results []result
	for i := 1; i <= runs; i++ {
		r, err := once(bin, filepath.Join(tmp, fmt.Sprintf("data%d", i)), window, size)
		if err != nil {
			return fmt.Errorf("run %d: %w", i, err)
		}
		fmt.Printf("run %d: first segment %.2f s after launch, %.2f s after online; server CPU %.2f%% of a core, RSS median %.1f MB, peak %.1f MB\n",
			i, r.fromLaunch.Seconds(), r.fromOnline.Seconds(), r.cpu*100, mb(r.rssMedian), mb(r.rssPeak))
		results = append(results, r)
	}
	fmt.Printf("\nmedians of %d runs (%s publisher, %s window):\n", runs, size, window)
	fmt.Printf("| publish → first playable segment (from launch) | (from online) | server CPU, share of one core | server RSS median | server RSS peak |\n")
	fmt.Printf("|---|---|---|---|---|\n")
	fmt.Printf("| %.2f s | %.2f s | %.2f%% | %.1f MB | %.1f MB |\n",
		median(results, func(r result) float64 { return r.fromLaunch.Seconds() }),
		median(results, func(r result) float64 { return r.fromOnline.Seconds() }),
		median(results, func(r result) float64 { return r.cpu * 100 }),
		median(results, func(r result) float64 { return mb(r.rssMedian) }),
		median(results, func(r result) float64 { return mb(r.rssPeak) }))
	return nil
}

var addrLine = regexp.MustCompile(`(Watch|Publish to):\s+(\S+)`)

func once(bin, data string, window time.Duration, size string) (result, error) {
	var r result
	srv := exec.Command(bin, "--http", "127.0.0.1:0", "--rtmp", "127.0.0.1:0", "--data", data,
		"--stream-key", "bench-stream-key", "--admin-password", "bench-admin-password", "--log-level", "warn")
	stdout, _ := srv.StdoutPipe()
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		return r, err
	}
	defer func() {
		srv.Process.Signal(syscall.SIGTERM)
		srv.Wait()
	}()
	// The welcome text names the addresses the server listens on.
	var web, rtmp string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() && (web == "" || rtmp == "") {
		if m := addrLine.FindStringSubmatch(sc.Text()); m != nil {
			if m[1] == "Watch" {
				web = strings.TrimSuffix(m[2], "/")
			} else {
				rtmp = m[2]
			}
		}
	}
	go io.Copy(io.Discard, stdout)
	if web == "" || rtmp == "" {
		return r, fmt.Errorf("the server printed no addresses")
	}

	pub := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-re",
		"-f", "lavfi", "-i", "testsrc2=size="+size+":rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-c:v", "libx264", "-preset", "veryfast", "-tune", "zerolatency", "-g", "60", "-b:v", "3000k", "-pix_fmt", "yuv420p",
		"-c:a", "aac", "-b:a", "128k", "-f", "flv", rtmp+"/bench-stream-key")
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
			if b, ok := get(web + "/api/status"); ok && bytes.Contains(b, []byte(`"online":true`)) {
				online = time.Now()
			}
		}
		if playable(web) {
			r.fromLaunch = time.Since(launched)
			r.fromOnline = time.Since(online)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Let start-up settle, then sample the server process alone.
	time.Sleep(3 * time.Second)
	pid := srv.Process.Pid
	cpu0, t0 := cpuSeconds(pid), time.Now()
	var rss []int64
	for time.Since(t0) < window {
		time.Sleep(time.Second)
		rss = append(rss, rssBytes(pid))
	}
	r.cpu = (cpuSeconds(pid) - cpu0) / time.Since(t0).Seconds()
	slices.Sort(rss)
	r.rssMedian, r.rssPeak = rss[len(rss)/2], rss[len(rss)-1]
	return r, nil
}

// playable reports whether a player could start: the master playlist, the
// first media playlist with a segment, and that segment are all served.
func playable(web string) bool {
	master, ok := get(web + "/hls/stream.m3u8")
	if !ok {
		return false
	}
	variant := firstURI(master)
	if variant == "" {
		return false
	}
	media, ok := get(web + "/hls/" + variant)
	if !ok {
		return false
	}
	seg := firstURI(media)
	if seg == "" {
		return false
	}
	_, ok = get(web + "/hls/" + variant[:strings.LastIndex(variant, "/")+1] + seg)
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

func get(url string) ([]byte, bool) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, false
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return b, err == nil && resp.StatusCode == http.StatusOK
}

// cpuSeconds is the user+system CPU time of the process itself (children
// such as ffmpeg are separate processes and not counted).
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // USER_HZ is 100 on Linux
}

func rssBytes(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb * 1024
		}
	}
	return 0
}

func mb(b int64) float64 { return float64(b) / (1 << 20) }

func median(rs []result, f func(result) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}
