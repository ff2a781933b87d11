// Command fediverse measures how long a post takes to reach 1,000
// followers on 50 remote servers: the admin's Send, the deliveries queued
// in sqlite, signed and POSTed by the job queue, until every inbox has
// the Create.
//
// It runs the real parts in this process, as the activitypub package's
// tests do: a sqlite file in a temporary directory, the settings and
// secrets loaded from it, core/jobs configured as the server's (16
// workers, 2 at a time per destination) and the activitypub Federation,
// served on 127.0.0.1 so that its actor document (and key) can be read.
// The remote servers are -hosts HTTP servers on 127.0.0.1 whose inboxes
// answer 202 (after -latency), check the HTTP signature of the first
// delivery each gets with aptest's verifier (of every one with
// -verify-all), and count what arrives. The followers are stored
// directly, -followers/-hosts on each host, in two scenarios:
//
//   - shared: each host's followers share its inbox, as Mastodon's do,
//     so the post is one delivery per host;
//   - personal: no shared inbox, one delivery per follower.
//
// A run is timed from Send to the last inbox answering, and to the post's
// delivery counts (what the admin sees) saying all were delivered. It
// fails if it takes longer than -budget or a delivery fails its checks.
//
//	go run ./build/load/fediverse -runs 5
//	go run ./build/load/fediverse -runs 1 -latency 50ms
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/starling-live/starling/activitypub"
	"github.com/starling-live/starling/build/benchkit"
	"github.com/starling-live/starling/core"
	"github.com/starling-live/starling/core/data"
	"github.com/starling-live/starling/core/jobs"
)

// postText is what the admin posts; the receivers check it arrived.
const postText = "load test post"

type config struct {
	followers, hosts, runs int
	scenarios              []string
	latency                time.Duration
	workers, perDest       int
	budget, timeout        time.Duration
	verifyAll              bool
	profile                string
}

// result is one run.
type result struct {
	Scenario   string  `json:"scenario"`
	Followers  int     `json:"followers"`
	Deliveries int     `json:"deliveries"`
	SendS      float64 `json:"sendS"`        // Send returned: the post stored, its deliveries queued
	FirstS     float64 `json:"firstS"`       // the first inbox answered
	ReceivedS  float64 `json:"receivedS"`    // every inbox answered
	CountedS   float64 `json:"countedS"`     // the post's counts said all delivered
	PerSecond  float64 `json:"perSecond"`    // deliveries / receivedS
	PeakFlight int     `json:"peakInFlight"` // deliveries at the receivers at once, all hosts
	PeakHost   int     `json:"peakPerHost"`  // and to one host
	Verified   int     `json:"verified"`
	Dupes      int     `json:"duplicates"`
	Recipients int     `json:"recipients"`
	Delivered  int     `json:"delivered"`
	Failed     int     `json:"failed"`
	HeapPeakMB float64 `json:"heapPeakMB"` // live Go heap objects, sampled
	RSSPeakMB  float64 `json:"rssPeakMB"`  // this whole process, receivers included
	CPUShare   float64 `json:"cpuShare"`   // of one core, this process, to countedS
	// OthersShare is what the rest of the machine took meanwhile, of one
	// core: the machine is shared.
	OthersShare float64 `json:"othersShare"`
	// Problems are why the run failed; none when it passed.
	Problems []string `json:"problems,omitempty"`
}

func main() {
	var c config
	flag.IntVar(&c.followers, "followers", 1000, "followers in all, spread evenly over the hosts")
	flag.IntVar(&c.hosts, "hosts", 50, "remote servers, each an HTTP server on 127.0.0.1")
	flag.IntVar(&c.runs, "runs", 5, "runs of each scenario, each on a fresh database; the median is reported")
	scenarios := flag.String("scenarios", "shared,personal", "scenarios to run: shared (one shared inbox per host), personal (one inbox per follower)")
	flag.DurationVar(&c.latency, "latency", 0, "how long each inbox takes to answer")
	flag.IntVar(&c.workers, "workers", 16, "queue workers (the server runs 16)")
	flag.IntVar(&c.perDest, "per-destination", 0, "deliveries at once to one host (0: the server's default, 2)")
	flag.DurationVar(&c.budget, "budget", time.Minute, "the longest a run may take for every inbox to have the post")
	flag.DurationVar(&c.timeout, "timeout", 3*time.Minute, "how long to wait for a run before giving it up")
	flag.BoolVar(&c.verifyAll, "verify-all", false, "verify the signature of every delivery, not only the first to each host")
	flag.StringVar(&c.profile, "cpuprofile", "", "write a CPU profile of each run, from Send to the last delivery counted, to this path with -SCENARIO-N appended")
	flag.Parse()
	c.scenarios = strings.Split(*scenarios, ",")
	for _, s := range c.scenarios {
		if s != "shared" && s != "personal" {
			fmt.Fprintf(os.Stderr, "fediverse load: unknown scenario %q: use shared, personal or both\n", s)
			os.Exit(2)
		}
	}
	if c.followers < 1 || c.hosts < 1 || c.runs < 1 || c.followers < c.hosts {
		fmt.Fprintln(os.Stderr, "fediverse load: -followers, -hosts and -runs must be positive, with at least one follower per host")
		os.Exit(2)
	}
	if _, err := benchkit.RaiseFileLimit(uint64(4*c.hosts) + 256); err != nil {
		fmt.Fprintln(os.Stderr, "fediverse load:", err)
		os.Exit(1)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	fmt.Printf("%d followers on %d hosts, latency %s, GOMAXPROCS %d\n", c.followers, c.hosts, c.latency, runtime.GOMAXPROCS(0))

	failed := false
	summary := map[string]any{"followers": c.followers, "hosts": c.hosts, "latency": c.latency.String(),
		"workers": c.workers, "perDestination": c.perDest}
	for _, sc := range c.scenarios {
		var runs []result
		var received, counted, rates, cpu, heap []float64
		for i := range c.runs {
			r, err := run(c, sc, i+1, log)
			if err != nil {
				fmt.Fprintf(os.Stderr, "fediverse load: %s run %d: %v\n", sc, i+1, err)
				os.Exit(1)
			}
			took := fmt.Sprintf("in %.2f s", r.ReceivedS)
			if r.ReceivedS == 0 {
				took = "NOT ALL RECEIVED"
			}
			fmt.Printf("%s run %d: %d deliveries to %d followers %s (queued %.3f s, first at %.3f s, counted %.2f s): %.0f/s; "+
				"at most %d in flight, %d to one host; %d signatures verified, %d duplicates; heap %.0f MB, RSS %.0f MB, %.0f%% of a core (others %.0f%%)\n",
				sc, i+1, r.Deliveries, r.Followers, took, r.SendS, r.FirstS, r.CountedS, r.PerSecond,
				r.PeakFlight, r.PeakHost, r.Verified, r.Dupes, r.HeapPeakMB, r.RSSPeakMB, 100*r.CPUShare, 100*r.OthersShare)
			for _, p := range r.Problems {
				fmt.Printf("  FAILED: %s\n", p)
				failed = true
			}
			runs = append(runs, r)
			received = append(received, r.ReceivedS)
			counted = append(counted, r.CountedS)
			rates = append(rates, r.PerSecond)
			cpu = append(cpu, r.CPUShare)
			heap = append(heap, r.HeapPeakMB)
		}
		fmt.Printf("%s: median %.2f s to every inbox, %.2f s counted, %.0f deliveries/s, %.0f%% of a core, heap peak %.0f MB\n",
			sc, benchkit.Median(received), benchkit.Median(counted), benchkit.Median(rates), 100*benchkit.Median(cpu), benchkit.Median(heap))
		summary[sc] = map[string]any{
			"runs": runs, "medianReceivedS": benchkit.Median(received), "medianCountedS": benchkit.Median(counted),
			"medianPerSecond": benchkit.Median(rates), "medianCPUShare": benchkit.Median(cpu), "medianHeapPeakMB": benchkit.Median(heap),
		}
	}
	out, _ := json.Marshal(summary)
	fmt.Println(string(out))
	if failed {
		fmt.Fprintln(os.Stderr, "fediverse load: some runs failed (see FAILED above)")
		os.Exit(1)
	}
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// memory samples the live heap and the RSS, keeping the peaks.
type memory struct {
	sample     []metrics.Sample
	heap, rssB int64
}

func newMemory() *memory {
	return &memory{sample: []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}}
}

func (m *memory) read() {
	metrics.Read(m.sample)
	if m.sample[0].Value.Kind() == metrics.KindUint64 {
		m.heap = max(m.heap, int64(m.sample[0].Value.Uint64()))
	}
	m.rssB = max(m.rssB, benchkit.RSS(os.Getpid()))
}

// run is one run of a scenario on a fresh database, a fresh server and
// fresh remote hosts.
func run(c config, scenario string, n int, log *slog.Logger) (result, error) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "starling-fediverse-load-")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)
	store, err := data.Open(ctx, filepath.Join(dir, "starling.db"))
	if err != nil {
		return result{}, err
	}
	defer store.Close()
	settings, err := core.LoadSettings(ctx, store)
	if err != nil {
		return result{}, err
	}
	secrets, _, err := core.LoadSecrets(ctx, store, "", "")
	if err != nil {
		return result{}, err
	}

	// Our server, as main.go wires the Federation (less the router).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return result{}, err
	}
	base := "http://" + ln.Addr().String()
	st, err := settings.Update(ctx, func(s *core.Settings) error {
		s.ServerURL = base
		s.Federation.Enabled = true
		s.Name = "Load Stream"
		return nil
	})
	if err != nil {
		ln.Close()
		return result{}, err
	}
	queue := jobs.New(jobs.Deps{Logger: log, Store: store, Config: jobs.Config{Workers: c.workers, PerDestination: c.perDest}})
	fed := activitypub.New(activitypub.Deps{
		Logger: log, Store: store, Settings: settings, Keys: secrets, Queue: queue, Version: "load",
		Config: activitypub.Config{AllowedNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
	})
	settings.AddListener(fed)
	srv := &http.Server{Handler: fed, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(ln)
	}()
	defer func() {
		srv.Close()
		<-served
	}()

	// The key comes first, as a remote server would fetch it on the first
	// delivery; it also has our key made before the clock starts, as on a
	// server that has been running.
	key, err := fetchKey(ctx, base+"/federation/user/"+st.Federation.Username)
	if err != nil {
		return result{}, err
	}
	hosts, err := newFleet(c.hosts, key, c.latency, c.verifyAll)
	if err != nil {
		return result{}, err
	}
	defer hosts.close()
	now := time.Now()
	for i := range c.followers {
		h := hosts.hosts[i%c.hosts]
		actor := fmt.Sprintf("%s/users/u%d", h.url, i)
		fl := data.Follower{
			Actor: actor, Inbox: actor + "/inbox", Username: fmt.Sprintf("u%d@%s", i, strings.TrimPrefix(h.url, "http://")),
			Name: fmt.Sprint("Follower ", i), FollowID: actor + "/follows/1", State: "approved", CreatedAt: now,
		}
		if scenario == "shared" {
			fl.SharedInbox = h.url + "/inbox"
		}
		if _, err := store.PutFollower(ctx, fl); err != nil {
			return result{}, err
		}
		if fl.SharedInbox != "" {
			hosts.expect(fl.SharedInbox)
		} else {
			hosts.expect(fl.Inbox)
		}
	}
	if err := queue.Start(ctx); err != nil {
		return result{}, err
	}
	defer queue.Close()

	if c.profile != "" {
		f, err := os.Create(fmt.Sprintf("%s-%s-%d", c.profile, scenario, n))
		if err != nil {
			return result{}, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return result{}, err
		}
		// Stopped once the counts are in; this is for an early return.
		defer pprof.StopCPUProfile()
	}
	runtime.GC()
	mem := newMemory()
	mem.read()
	cpu0 := cpuSeconds()
	busy0, _ := benchkit.MachineCPU()
	start := hosts.arm()
	id, err := fed.Send(ctx, postText)
	if err != nil {
		return result{}, err
	}
	sendS := time.Since(start).Seconds()

	deadline := time.NewTimer(c.timeout)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	r := result{Scenario: scenario, Followers: c.followers, Deliveries: hosts.expected(), SendS: sendS}
	var timedOut bool
wait:
	for {
		select {
		case <-hosts.complete:
			break wait
		case <-tick.C:
			mem.read()
		case <-deadline.C:
			timedOut = true
			break wait
		}
	}
	// The counts are written after each inbox answered: wait for them.
	var post activitypub.Post
	for !timedOut {
		posts, err := fed.Posts(ctx, 1, 0)
		if err != nil {
			return result{}, err
		}
		if len(posts) == 1 {
			post = posts[0]
			if post.Pending == 0 {
				r.CountedS = time.Since(start).Seconds()
				break
			}
		}
		select {
		case <-tick.C:
			mem.read()
		case <-deadline.C:
			timedOut = true
		}
	}
	if timedOut {
		// For the report: how far the counts got.
		if posts, err := fed.Posts(ctx, 1, 0); err == nil && len(posts) == 1 {
			post = posts[0]
		}
	}
	elapsed, ours := time.Since(start).Seconds(), cpuSeconds()-cpu0
	busy1, _ := benchkit.MachineCPU()
	r.CPUShare, r.OthersShare = ours/elapsed, max(busy1-busy0-ours, 0)/elapsed
	pprof.StopCPUProfile()
	mem.read()

	snap := hosts.snapshot()
	r.FirstS, r.ReceivedS = snap.firstAt.Seconds(), snap.completeAt.Seconds()
	if r.ReceivedS > 0 {
		r.PerSecond = float64(r.Deliveries) / r.ReceivedS
	}
	r.PeakFlight, r.PeakHost, r.Verified, r.Dupes = snap.peakFlight, snap.peakHostFlight, snap.verified, snap.dupes
	r.Recipients, r.Delivered, r.Failed = post.Recipients, post.Delivered, post.Failed
	r.HeapPeakMB, r.RSSPeakMB = benchkit.MB(mem.heap), benchkit.MB(mem.rssB)

	problem := func(format string, args ...any) { r.Problems = append(r.Problems, fmt.Sprintf(format, args...)) }
	if timedOut {
		problem("after %s, %d of %d inboxes had the post, and its counts said %d delivered, %d failed of %d",
			c.timeout, snap.received, r.Deliveries, post.Delivered, post.Failed, post.Recipients)
	}
	if snap.completeAt > c.budget {
		problem("every inbox had the post after %.1f s, more than the %s budget", r.ReceivedS, c.budget)
	}
	if snap.badSig > 0 {
		problem("%d of %d signatures checked failed", snap.badSig, snap.badSig+snap.verified)
	}
	if snap.badBody > 0 || snap.unexpected > 0 {
		problem("%d deliveries were not the post, %d went to inboxes no follower has", snap.badBody, snap.unexpected)
	}
	if post.ID != id && !timedOut {
		problem("the newest post is %q, not the one sent (%q)", post.ID, id)
	}
	if !timedOut && (post.Recipients != r.Deliveries || post.Delivered != post.Recipients || post.Failed != 0) {
		problem("the post counts %d recipients, %d delivered, %d failed; want %d delivered of %d", post.Recipients, post.Delivered, post.Failed, r.Deliveries, r.Deliveries)
	}
	for _, e := range snap.errs {
		problem("%v", e)
	}
	return r, nil
}
