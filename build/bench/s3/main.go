// Command s3 measures Starling's HLS packager with segments going to an
// S3 bucket (a real versitygw on loopback), and the embedded tracker
// while that bucket is slow:
//
//   - publication: the time from a segment being complete (its last byte
//     and the playlist naming it handed to the packager, as ffmpeg sends
//     them) to the packager listing it in its playlist (an hls.Listener's
//     SegmentPublished), median and p99, paced and as fast as possible,
//     with the bucket and with the local disk alone;
//   - the tracker: announce round trips of simulated viewers while ffmpeg
//     publishes in real time and the bucket (or disk) turns slow, in this
//     tree and, for comparison, in the tree before segments were stored
//     outside the packager's lock (the parent of the seam's commit), which it exports with git
//     archive and runs with before_main.go.
//
// Everything runs in this process on loopback (versitygw and the old
// tree's driver are child processes).
//
//	go run ./build/bench/s3          # everything, about 7 minutes
//	go run ./build/bench/s3 -parts publish
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/starling-live/starling/storage/local"
	"github.com/starling-live/starling/video/hls"
	"github.com/starling-live/starling/video/tracker"
)

func cpus() int { return runtime.NumCPU() }

// beforeRev is the last commit whose packager stored segments under the
// lock the tracker's allowlist took: the parent of the seam's commit,
// found by its subject, so that a rebase does not lose it.
var beforeRev = seamParent()

// seamParent names the parent of the seam's commit, "HASH^", or the
// search itself if git does not find it (the tool then says so).
func seamParent() string {
	const seam = ":/^hls: segments are stored outside the packager's lock"
	out, err := exec.Command("git", "rev-parse", "--short", seam).Output()
	if err != nil {
		return seam + " (not found)"
	}
	return strings.TrimSpace(string(out)) + "^"
}

func main() {
	tc := trackerConfig{kbps: []int{3000, 1200}}
	lc := latencyConfig{}
	tc.flags(flag.CommandLine)
	parts := flag.String("parts", "publish,tracker,before", "what to measure: publish, tracker (this tree), before (the tree at "+beforeRev+")")
	flag.IntVar(&lc.segments, "segments", 250, "segments per rendition, paced publication")
	flag.DurationVar(&lc.interval, "interval", 200*time.Millisecond, "time between segments, paced publication (the segment length is real time)")
	flag.IntVar(&lc.flood, "flood", 1000, "segments per rendition sent as fast as the packager takes them")
	flag.IntVar(&lc.inflight, "inflight", 8, "segments per rendition sent and not yet published, flood")
	flag.IntVar(&lc.warmup, "warmup", 5, "first segments of each rendition left out")
	hang := flag.Duration("hang", time.Hour, "how long the hanging bucket holds a request (the packager gives up an upload after 10 s)")
	flag.Parse()
	want := strings.Split(*parts, ",")
	if err := run(want, tc, lc, *hang); err != nil {
		fmt.Fprintln(os.Stderr, "s3 bench:", err)
		os.Exit(1)
	}
}

func run(parts []string, tc trackerConfig, lc latencyConfig, hang time.Duration) error {
	sizes := newFakeFFmpeg("", tc.kbps, tc.segDur).sizes
	fmt.Printf("renditions %v kbit/s, %s segments of %v bytes; %d CPUs\n", tc.kbps, tc.segDur, sizes, cpus())
	var g *gateway
	if slices.Contains(parts, "publish") || slices.Contains(parts, "tracker") {
		var err error
		if g, err = startGateway(); err != nil {
			return err
		}
		defer g.stop()
	}
	if slices.Contains(parts, "publish") {
		m := newMeter(g)
		if err := publishPart(g, tc, lc); err != nil {
			return err
		}
		fmt.Printf("\n%s\n", m)
	}
	var results []trackerResult
	var loads []string
	if slices.Contains(parts, "tracker") {
		m := newMeter(g)
		rs, err := trackerPart(g, tc, hang)
		if err != nil {
			return err
		}
		results = append(results, rs...)
		loads = append(loads, "this tree: "+m.String())
	}
	if slices.Contains(parts, "before") {
		m := newMeter(nil)
		rs, err := runBefore(beforeRev, tc)
		if err != nil {
			return err
		}
		results = append(results, rs...)
		loads = append(loads, beforeRev+" (including its build): "+m.String())
	}
	if len(results) > 0 {
		printTracker(tc, results)
		fmt.Println()
		for _, l := range loads {
			fmt.Println(l)
		}
	}
	return nil
}

func publishPart(g *gateway, tc trackerConfig, lc latencyConfig) error {
	var rs []latencyResult
	for i, store := range []string{"bucket", "local disk"} {
		for _, flood := range []bool{false, true} {
			var remote hls.Remote
			if store == "bucket" {
				s, err := g.storage(g.endpoint, fmt.Sprintf("publish-%d-%v/", i, flood))
				if err != nil {
					return err
				}
				defer s.Close()
				remote = s
			}
			m := newMeter(g)
			r, err := measurePublish(store, remote, tc.kbps, tc.segDur, lc, flood)
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "%s %s: p50 %s p99 %s, %.1f MB/s; %s\n", r.store, r.mode, fmtDur(r.lat.P50, 0), fmtDur(r.lat.P99, 0), r.mbps, m)
			rs = append(rs, r)
		}
	}
	fmt.Printf("\nSegment complete -> listed in its playlist (paced: one segment per rendition every %s; flood: back to back, at most %d per rendition unpublished)\n\n", lc.interval, lc.inflight)
	fmt.Println("| store | mode | segments | p50 | p99 | max | MB/s | segments/s | listed under the bucket's URL |")
	fmt.Println("|---|---|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range rs {
		fmt.Printf("| %s | %s | %d | %s | %s | %s | %.1f | %.1f | %d |\n", r.store, r.mode, r.lat.N,
			fmtDur(r.lat.P50, 0), fmtDur(r.lat.P99, 0), fmtDur(r.lat.Max, 0), r.mbps, r.segps, r.remote)
		if r.status.Deferred > 0 || r.lat.Lost > 0 {
			fmt.Printf("|  | (%d deferred to local disk, %d lost) | | | | | | | |\n", r.status.Deferred, r.lat.Lost)
		}
	}
	return nil
}

// trackerPart runs the tracker scenarios of this tree: the bucket behind a
// proxy that passes, delays every request by tc.delay, or holds it for
// hang; the local disk alone, fast and slow.
func trackerPart(g *gateway, tc trackerConfig, hang time.Duration) ([]trackerResult, error) {
	type scenario struct {
		name   string
		bucket bool
		delay  time.Duration // the proxy's, once slow
		disk   bool          // the local disk turns slow
	}
	scenarios := []scenario{
		{name: "after: bucket, fast", bucket: true},
		{name: fmt.Sprintf("after: bucket, every request +%s", tc.delay), bucket: true, delay: tc.delay},
		{name: fmt.Sprintf("after: bucket, hanging (every request held %s)", hang), bucket: true, delay: hang},
		{name: "after: local disk, fast"},
		{name: fmt.Sprintf("after: local disk, every write +%s", tc.delay), disk: true},
	}
	var out []trackerResult
	for i, sc := range scenarios {
		fmt.Fprintf(os.Stderr, "tracker scenario %q...\n", sc.name)
		r, err := func() (trackerResult, error) {
			var slow *slowStorage
			allow := tracker.NewAllowlist(swarmID)
			p, err := startPackager(func(d *local.Storage) hls.Storage {
				slow = newSlowStorage(d, tc.delay)
				return slow
			}, allow)
			if err != nil {
				return trackerResult{}, err
			}
			defer p.close()
			defer close(slow.quit)
			o := hls.Options{PlaylistSegments: 4}
			var proxy *delayProxy
			if sc.bucket {
				if proxy, err = newDelayProxy(g.endpoint); err != nil {
					return trackerResult{}, err
				}
				defer proxy.close()
				s, err := g.storage(proxy.url, fmt.Sprintf("tracker-%d/", i))
				if err != nil {
					return trackerResult{}, err
				}
				defer s.Close()
				o.Remote = s
			}
			ctx := context.Background()
			b := p.Begin(ctx, o)
			endCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			defer b.End(endCtx)
			r, ff, err := runTracker(sc.name, tc, target{
				runURL:  b.NextRunURL(),
				allowed: allow.Allowed,
				slow: func() {
					if proxy != nil {
						proxy.delay.Store(int64(sc.delay))
					}
					slow.slow.Store(sc.disk)
				},
			})
			if err != nil {
				return r, err
			}
			p.rec.waitWindow(ff, r.from, r.to, tc.timeout)
			ds, _ := p.rec.latencies(ff, r.from, r.to)
			r.Segments = summarize(ds)
			r.Stall = p.rec.longestStall(ff, 0, r.slowAt, r.to)
			if st := p.StorageStatus(); st.Remote {
				r.Storage = fmt.Sprintf("uploaded %d, deferred %d, backlog %d, down %v", st.Uploaded, st.Deferred, st.Backlog, st.Down)
			}
			return r, nil
		}()
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func printTracker(tc trackerConfig, rs []trackerResult) {
	fmt.Printf("\nTracker announce round trips: %d viewers, each announcing every %s (%.0f/s), while ffmpeg publishes %d renditions in real time; measured for %s, %s after the storage turned slow\n\n",
		tc.peers, tc.every, float64(tc.peers)/tc.every.Seconds(), len(tc.kbps), tc.window, tc.settle)
	fmt.Println("| scenario | announces | p50 | p99 | max | unanswered | ffmpeg writes in the window / in real time | write p50 | write p99 | complete -> listed p50 | p99 | longest playlist stall | storage |")
	fmt.Println("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
	for _, r := range rs {
		dash := func(s summary, d time.Duration) string {
			if s.N == 0 {
				return "—"
			}
			return fmtDur(d, tc.timeout)
		}
		stall := "—"
		if r.Stall > 0 {
			stall = fmtDur(r.Stall, tc.timeout)
		}
		fmt.Printf("| %s | %d | %s | %s | %s | %d | %d / %d | %s | %s | %s | %s | %s | %s |\n", r.Scenario, r.Announces.N,
			fmtDur(r.Announces.P50, tc.timeout), fmtDur(r.Announces.P99, tc.timeout), fmtDur(r.Announces.Max, tc.timeout), r.Announces.Lost,
			r.Puts.N, r.Expected, dash(r.Puts, r.Puts.P50), dash(r.Puts, r.Puts.P99),
			dash(r.Segments, r.Segments.P50), dash(r.Segments, r.Segments.P99), stall, r.Storage)
		if r.Failures > 0 {
			fmt.Printf("|  | (%d answered with a failure) | | | | | | | | | | | |\n", r.Failures)
		}
	}
}
