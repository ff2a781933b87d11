// Command serving measures what Starling spends to serve its stream,
// against a plain http.FileServer serving the same files, and what it
// spends while streaming with no viewers.
//
// Serving: it starts Starling (built from this checkout, or -bin) with one
// passthrough rendition, so that the server's ffmpeg stays off the two
// cores, publishes a synthetic 1280x720 30 fps stream at 3 Mbit/s, waits
// until the media playlist is full, and stops the publisher. The broadcast
// ends: Starling keeps its media playlists and hash lists in memory (the
// master playlist is withdrawn, as for any ended broadcast) and its
// segments on disk, and has nothing left to do in the background. The tool
// copies those files over HTTP into a temporary directory and serves it
// with http.FileServer in a process of its own (this program again, with
// -fileserver). It then loads both servers in interleaved rounds, with the
// same keep-alive clients on loopback, the same request mix and the same
// concurrency: N requests of segments, then N of playlists (each media
// playlist and its segments.json, in turn), each in two halves in the
// order Starling, FileServer, FileServer, Starling, and the other way round
// in the next round. Each batch's cost is the CPU time
// of the server process (all its threads, from /proc/PID/task/*/schedstat)
// over the batch, less what it spends idle in that time, per 1000
// requests. It reports the medians over rounds and the ratio
// Starling/FileServer of each round.
//
// Streaming: it starts Starling again with the default settings (one 720p
// x264 rendition; -stream-passthrough: one passthrough rendition),
// publishes the same stream, and samples over windows the
// CPU of the server process, of its transcoding ffmpeg, and of its
// short-lived children that have exited (thumbnail ffmpegs, if it forks
// any), each as a share of one core. The publisher is not counted.
//
//	go run ./build/bench/serving -rounds 9 -n 2000 -c 4
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/starling-live/starling/build/benchkit"
)

func main() {
	fileServer := flag.String("fileserver", "", "serve this directory with http.FileServer on a loopback port, print the address and wait for SIGTERM (the tool runs itself so)")
	bin := flag.String("bin", "", "Starling binary to measure (default: build this checkout)")
	rounds := flag.Int("rounds", 9, "interleaved rounds of load (one more is run first as a warm-up)")
	n := flag.Int("n", 2000, "requests of each kind per server per round")
	conns := flag.Int("c", 4, "concurrent keep-alive clients")
	windows := flag.Int("windows", 3, "streaming: windows sampled")
	window := flag.Duration("window", 20*time.Second, "streaming: length of a window")
	skipServing := flag.Bool("skip-serving", false, "measure only the streaming CPU")
	skipStreaming := flag.Bool("skip-streaming", false, "measure only the serving cost")
	streamPassthrough := flag.Bool("stream-passthrough", false, "streaming: one passthrough rendition instead of the default 720p transcode")
	only := flag.String("only", "", "serving: load only segments or only playlists (for a profile of one)")
	proxy := flag.Bool("proxy", false, "serving: keep Starling's default of loopback as a trusted reverse proxy, as behind nginx on the same machine (by default the tool's connections are viewers' own)")
	pin := flag.Bool("pin", true, "serving: run both servers on the second CPU and this tool on the first, so that they do not take turns differently from round to round")
	flag.Parse()
	if *fileServer != "" {
		if err := serveFiles(*fileServer); err != nil {
			fmt.Fprintln(os.Stderr, "fileserver:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*bin, *rounds, *n, *conns, *windows, *window, !*skipServing, !*skipStreaming, *pin, *proxy, *streamPassthrough, *only); err != nil {
		fmt.Fprintln(os.Stderr, "serving bench:", err)
		os.Exit(1)
	}
}

// serveFiles is the plain file server Starling is compared with.
func serveFiles(dir string) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(ln.Addr().String())
	srv := &http.Server{Handler: http.FileServer(http.Dir(dir))}
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
		<-sig
		srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func run(bin string, rounds, n, conns, windows int, window time.Duration, serving, streaming, pin, proxy, passthrough bool, only string) error {
	tmp, err := os.MkdirTemp("", "starling-serving-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if bin == "" {
		dir, built, err := benchkit.Build("starling-serving-bin-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		bin = built
	}
	busy0, total0 := benchkit.MachineCPU()
	if serving {
		if err := measureServing(bin, tmp, rounds, n, conns, pin, proxy, only); err != nil {
			return err
		}
	}
	if streaming {
		if err := measureStreaming(bin, tmp, windows, window, passthrough); err != nil {
			return err
		}
	}
	busy1, total1 := benchkit.MachineCPU()
	fmt.Printf("\nthe machine was %.0f%% busy over the run (both cores, all processes)\n", 100*(busy1-busy0)/(total1-total0))
	return nil
}

// publishAndFill starts a publisher and waits until every media playlist
// lists want segments; it returns the media playlists' paths under /hls/.
func publishAndFill(srv *benchkit.Server, want int) (*exec.Cmd, []string, error) {
	pub, err := benchkit.Publish(srv.RTMP+"/"+benchkit.StreamKey, "1280x720")
	if err != nil {
		return nil, nil, err
	}
	deadline := time.Now().Add(time.Duration(want)*2*time.Second + 40*time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(500 * time.Millisecond)
		master, ok := srv.Get("/hls/stream.m3u8", false)
		if !ok {
			continue
		}
		media := uris(master)
		full := len(media) > 0
		for _, m := range media {
			b, ok := srv.Get("/hls/"+m, false)
			full = full && ok && len(uris(b)) >= want
		}
		if full {
			return pub, media, nil
		}
	}
	stopPublisher(pub)
	return nil, nil, fmt.Errorf("the playlists did not fill up with %d segments", want)
}

func stopPublisher(pub *exec.Cmd) {
	pub.Process.Signal(syscall.SIGINT)
	pub.Wait()
}

func measureServing(bin, tmp string, rounds, n, conns int, pin, proxy bool, only string) error {
	// No trusted proxies: the tool's connections are viewers' own, as
	// on the Internet, each held to its address's share (by default
	// loopback is a trusted reverse proxy, exempt from the limits).
	flags := []string{"--trusted-proxies="}
	if proxy {
		flags = nil
	}
	srv, err := benchkit.Start(bin, tmp, flags...)
	if err != nil {
		return err
	}
	defer srv.Stop()
	if err := srv.Admin("/api/admin/config/video/streamoutputvariants",
		`{"value":[{"name":"source","videoPassthrough":true,"audioPassthrough":true}]}`); err != nil {
		return err
	}
	fmt.Println("serving: publishing 1280x720 30 fps 3 Mbit/s to one passthrough rendition, until the playlist is full")
	pub, media, err := publishAndFill(srv, 10)
	if err != nil {
		return err
	}
	stopPublisher(pub)
	// The broadcast ends once the reconnect grace has passed and ffmpeg
	// has sent its last segment: the playlists end with EXT-X-ENDLIST.
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, ok := srv.Get("/hls/"+media[0], false)
		if ok && bytes.Contains(b, []byte("#EXT-X-ENDLIST")) {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("the broadcast did not end after the publisher left")
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)

	// The files both servers serve, copied from Starling.
	dir := filepath.Join(tmp, "files")
	var segments, playlists []string
	var segBytes, plBytes int64
	for _, m := range media {
		base := path.Dir(m) + "/"
		b, _ := srv.Get("/hls/"+m, false)
		playlists = append(playlists, m, base+"segments.json")
		for _, s := range uris(b) {
			segments = append(segments, base+s)
		}
	}
	for _, name := range append(slices.Clone(playlists), segments...) {
		b, ok := srv.Get("/hls/"+name, false)
		if !ok {
			return fmt.Errorf("could not copy /hls/%s", name)
		}
		if strings.HasSuffix(name, ".ts") {
			segBytes += int64(len(b))
		} else {
			plBytes += int64(len(b))
		}
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("serving: %d segments (%.0f KB on average) and %d playlists and hash lists (%.1f KB on average): %s\n",
		len(segments), float64(segBytes)/float64(len(segments))/1000, len(playlists), float64(plBytes)/float64(len(playlists))/1000, strings.Join(playlists, ", "))

	fsrv, err := startFileServer(dir)
	if err != nil {
		return err
	}
	defer fsrv.stop()

	servers := []*target{
		{name: "Starling", base: srv.Web + "/hls/", pid: srv.PID()},
		{name: "FileServer", base: "http://" + fsrv.addr + "/", pid: fsrv.cmd.Process.Pid},
	}
	if pin {
		if err := errors.Join(setCPU(os.Getpid(), "0"), setCPU(servers[0].pid, "1"), setCPU(servers[1].pid, "1")); err != nil {
			return err
		}
		defer setCPU(os.Getpid(), "0,1")
	}
	for _, s := range servers {
		s.clients = newClients(conns)
		if err := s.check(segments, playlists); err != nil {
			return err
		}
	}
	kinds := []struct {
		name  string
		paths []string
	}{{"segments", segments}, {"playlists", playlists}}
	switch only {
	case "segments":
		kinds = kinds[:1]
	case "playlists":
		kinds = kinds[1:]
	}
	// costs[kind][server] are the CPU-seconds per 1000 requests of each
	// round; ratios[kind] the round's Starling/FileServer.
	costs := make([][][]float64, len(kinds))
	ratios := make([][]float64, len(kinds))
	for k := range kinds {
		costs[k] = make([][]float64, len(servers))
	}
	idle := make([][]float64, len(servers))
	for r := 0; r <= rounds; r++ {
		// What each server spends doing nothing, over a second: it is
		// subtracted from the round's batches.
		rates := make([]float64, len(servers))
		for i, s := range servers {
			rates[i] = s.idleRate(time.Second)
			if r > 0 {
				idle[i] = append(idle[i], rates[i])
			}
		}
		for k, kind := range kinds {
			// Half batches in the order A B B A (B A A B the next
			// round): a drift of the machine within the round weighs
			// on both servers alike.
			order := []int{0, 1, 1, 0}
			if r%2 == 1 {
				order = []int{1, 0, 0, 1}
			}
			var round [2]float64
			for _, i := range order {
				c, err := servers[i].batch(kind.paths, n/2, rates[i])
				if err != nil {
					return fmt.Errorf("%s %s: %w", servers[i].name, kind.name, err)
				}
				round[i] += c / 2
			}
			if r == 0 {
				continue // warm-up
			}
			for i := range servers {
				costs[k][i] = append(costs[k][i], round[i])
			}
			ratios[k] = append(ratios[k], round[0]/round[1])
			fmt.Printf("round %d %-9s: Starling %.3f, FileServer %.3f CPU-s per 1000 requests, ratio %.2f\n",
				r, kind.name, round[0], round[1], round[0]/round[1])
		}
	}
	who := "viewers' own connections"
	if proxy {
		who = "through a trusted proxy on loopback"
	}
	fmt.Printf("\nserving, %s, medians of %d rounds of %d requests of each kind, %d clients:\n", who, rounds, n, conns)
	fmt.Printf("| requests | Starling, CPU-s per 1000 | FileServer, CPU-s per 1000 | Starling/FileServer (range) |\n|---|---|---|---|\n")
	for k, kind := range kinds {
		fmt.Printf("| %s | %.3f | %.3f | %.2f (%.2f–%.2f) |\n", kind.name,
			benchkit.Median(costs[k][0]), benchkit.Median(costs[k][1]),
			benchkit.Median(ratios[k]), slices.Min(ratios[k]), slices.Max(ratios[k]))
	}
	fmt.Printf("idle, subtracted: Starling %.2f%%, FileServer %.2f%% of a core (medians)\n",
		100*benchkit.Median(idle[0]), 100*benchkit.Median(idle[1]))
	return nil
}

// target is a server under load.
type target struct {
	name    string
	base    string // URL the paths are relative to
	pid     int
	clients []*http.Client
}

func newClients(n int) []*http.Client {
	cs := make([]*http.Client, n)
	for i := range cs {
		cs[i] = &http.Client{Transport: &http.Transport{
			MaxIdleConnsPerHost: 1,
			DisableCompression:  true,
			// Loopback only: no proxy from the environment.
			Proxy: nil,
		}}
	}
	return cs
}

// check fetches every path once from every client, which also opens the
// keep-alive connections before anything is measured.
func (t *target) check(paths ...[]string) error {
	for _, c := range t.clients {
		for _, ps := range paths {
			for _, p := range ps {
				if err := get(c, t.base+p); err != nil {
					return fmt.Errorf("%s: %w", t.name, err)
				}
			}
		}
	}
	return nil
}

func get(c *http.Client, url string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: %s", url, resp.Status)
	}
	return err
}

// idleRate is the server's CPU time per second of wall time while it
// serves nothing.
func (t *target) idleRate(d time.Duration) float64 {
	c0, t0 := benchkit.TaskCPU(t.pid), time.Now()
	time.Sleep(d)
	return (benchkit.TaskCPU(t.pid) - c0).Seconds() / time.Since(t0).Seconds()
}

// batch sends n requests, spread over the clients, each client going
// through paths in turn from its own offset, and returns the server's CPU
// seconds per 1000 requests, less its idle rate (CPU-s per second) over
// the batch.
func (t *target) batch(paths []string, n int, idle float64) (float64, error) {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	per := n / len(t.clients)
	c0, t0 := benchkit.TaskCPU(t.pid), time.Now()
	for i, c := range t.clients {
		wg.Go(func() {
			for j := range per {
				if err := get(c, t.base+paths[(i+j)%len(paths)]); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	cpu := (benchkit.TaskCPU(t.pid) - c0).Seconds() - idle*time.Since(t0).Seconds()
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	return cpu / float64(per*len(t.clients)) * 1000, nil
}

// setCPU moves every thread of process pid to the CPUs listed.
func setCPU(pid int, cpus string) error {
	if out, err := exec.Command("taskset", "-a", "-cp", cpus, fmt.Sprint(pid)).CombinedOutput(); err != nil {
		return fmt.Errorf("taskset (run with -pin=false without it): %v: %s", err, out)
	}
	return nil
}

type fileServer struct {
	cmd  *exec.Cmd
	addr string
}

// startFileServer runs this program again with -fileserver dir.
func startFileServer(dir string) (*fileServer, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-fileserver", dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line := make([]byte, 64)
	k, err := out.Read(line)
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("the file server printed no address: %w", err)
	}
	return &fileServer{cmd: cmd, addr: strings.TrimSpace(string(line[:k]))}, nil
}

func (f *fileServer) stop() {
	f.cmd.Process.Signal(syscall.SIGTERM)
	f.cmd.Wait()
}

func measureStreaming(bin, tmp string, windows int, window time.Duration, passthrough bool) error {
	srv, err := benchkit.Start(bin, tmp)
	if err != nil {
		return err
	}
	defer srv.Stop()
	settings := "default settings (one 720p x264 rendition)"
	if passthrough {
		settings = "one passthrough rendition"
		if err := srv.Admin("/api/admin/config/video/streamoutputvariants",
			`{"value":[{"name":"source","videoPassthrough":true,"audioPassthrough":true}]}`); err != nil {
			return err
		}
	}
	fmt.Printf("\nstreaming: %s, publishing 1280x720 30 fps 3 Mbit/s, no viewers\n", settings)
	launched := time.Now()
	// The thumbnail is polled from the publisher's launch: it may come
	// before the first segment.
	thumb := make(chan time.Duration, 1)
	go func() {
		for time.Since(launched) < 60*time.Second {
			if b, ok := srv.Get("/thumbnail.jpg", false); ok && len(b) > 0 {
				thumb <- time.Since(launched)
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		thumb <- 0
	}()
	pub, _, err := publishAndFill(srv, 1)
	if err != nil {
		return err
	}
	defer stopPublisher(pub)
	fmt.Printf("first playable segment %.1f s after the publisher's launch\n", time.Since(launched).Seconds())
	if d := <-thumb; d > 0 {
		fmt.Printf("/thumbnail.jpg first served %.1f s after the publisher's launch\n", d.Seconds())
	} else {
		fmt.Println("/thumbnail.jpg was not served within 60 s of the publisher's launch")
	}
	// Let start-up settle.
	time.Sleep(5 * time.Second)
	pid := srv.PID()
	var server, transcoder, reaped []float64
	for w := 1; w <= windows; w++ {
		kids := transcoders(pid)
		s0, r0, t0 := benchkit.TaskCPU(pid), benchkit.ReapedChildrenCPUSeconds(pid), time.Now()
		k0 := make(map[int]time.Duration, len(kids))
		for _, k := range kids {
			k0[k] = benchkit.TaskCPU(k)
		}
		time.Sleep(window)
		secs := time.Since(t0).Seconds()
		var k1 time.Duration
		for _, k := range kids {
			k1 += benchkit.TaskCPU(k) - k0[k]
		}
		server = append(server, (benchkit.TaskCPU(pid)-s0).Seconds()/secs)
		transcoder = append(transcoder, k1.Seconds()/secs)
		reaped = append(reaped, (benchkit.ReapedChildrenCPUSeconds(pid)-r0)/secs)
		fmt.Printf("window %d: server %.2f%%, transcoding ffmpeg %.1f%%, exited children (thumbnails) %.2f%% of a core\n",
			w, 100*server[w-1], 100*transcoder[w-1], 100*reaped[w-1])
	}
	fmt.Printf("\nstreaming with no viewers, medians of %d windows of %s (share of one core):\n", windows, window)
	fmt.Printf("| server process | transcoding ffmpeg | exited children (thumbnail ffmpegs) | server and children |\n|---|---|---|---|\n")
	fmt.Printf("| %.2f%% | %.1f%% | %.2f%% | %.1f%% |\n", 100*benchkit.Median(server), 100*benchkit.Median(transcoder),
		100*benchkit.Median(reaped), 100*(benchkit.Median(server)+benchkit.Median(transcoder)+benchkit.Median(reaped)))
	return nil
}

// transcoders are the server's long-running ffmpeg children: those that
// read the publisher's FLV.
func transcoders(pid int) []int {
	var out []int
	for child, cmd := range benchkit.Children(pid) {
		if strings.Contains(cmd, "-f flv -i pipe:0") {
			out = append(out, child)
		}
	}
	return out
}

// uris are a playlist's URI lines.
func uris(playlist []byte) []string {
	var out []string
	for _, line := range strings.Split(string(playlist), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, line)
		}
	}
	return out
}
