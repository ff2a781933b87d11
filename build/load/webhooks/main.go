// Command webhooks measures how many webhook deliveries a second go
// through the persisted job queue: signed, POSTed to a receiver on
// loopback, and recorded in sqlite.
//
// It runs the real parts in this process: a sqlite file in a temporary
// directory, core/jobs with the server's defaults, core/webhooks and an
// HTTP receiver on 127.0.0.1 that answers 200 at once. It creates
// -webhooks webhooks subscribed to CHAT, hands -events CHAT events to the
// service as the chat hub would, and times from the first event to the
// last delivery received. Each event is one delivery per webhook.
//
//	go run ./build/load/webhooks -events 2000 -webhooks 1 -runs 3
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/starling-live/starling/build/benchkit"
	"github.com/starling-live/starling/chat"
	"github.com/starling-live/starling/core/data"
	"github.com/starling-live/starling/core/jobs"
	"github.com/starling-live/starling/core/webhooks"
)

type config struct {
	events, hooks, runs int
	workers, perDest    int
	timeout             time.Duration
}

// result is one run.
type result struct {
	Deliveries int     `json:"deliveries"`
	QueuedS    float64 `json:"queuedS"`
	DeliveredS float64 `json:"deliveredS"`
	PerSecond  float64 `json:"deliveriesPerSecond"`
	CPUShare   float64 `json:"cpuShare"` // of one core, this process
}

func main() {
	var c config
	flag.IntVar(&c.events, "events", 2000, "CHAT events to send")
	flag.IntVar(&c.hooks, "webhooks", 1, "webhooks subscribed to CHAT; each event is one delivery to each")
	flag.IntVar(&c.runs, "runs", 3, "runs, each on a fresh database; the median is reported")
	flag.IntVar(&c.workers, "workers", 0, "queue workers (0: the server's default, 4)")
	flag.IntVar(&c.perDest, "per-destination", 0, "deliveries at once to one webhook (0: the server's default, 2)")
	flag.DurationVar(&c.timeout, "timeout", 2*time.Minute, "how long a run may take")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the runs to this file")
	flag.Parse()
	if c.events < 1 || c.hooks < 1 || c.runs < 1 {
		fmt.Fprintln(os.Stderr, "webhooks load: -events, -webhooks and -runs must be positive")
		os.Exit(2)
	}
	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "webhooks load:", err)
			os.Exit(1)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	var rates, queued, cpu []float64
	var runs []result
	for i := range c.runs {
		r, err := run(c)
		if err != nil {
			fmt.Fprintln(os.Stderr, "webhooks load:", err)
			pprof.StopCPUProfile()
			os.Exit(1)
		}
		fmt.Printf("run %d: %d deliveries in %.2f s (all queued after %.2f s): %.0f/s, %.0f%% of a core\n",
			i+1, r.Deliveries, r.DeliveredS, r.QueuedS, r.PerSecond, 100*r.CPUShare)
		runs = append(runs, r)
		rates = append(rates, r.PerSecond)
		queued = append(queued, float64(r.Deliveries)/r.QueuedS)
		cpu = append(cpu, r.CPUShare)
	}
	out, _ := json.Marshal(map[string]any{
		"events": c.events, "webhooks": c.hooks, "runs": runs,
		"medianDeliveriesPerSecond": benchkit.Median(rates),
		"medianQueuedPerSecond":     benchkit.Median(queued),
		"medianCPUShare":            benchkit.Median(cpu),
	})
	fmt.Println(string(out))
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

func run(c config) (result, error) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "starling-webhooks-load-")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)
	store, err := data.Open(ctx, filepath.Join(dir, "starling.db"))
	if err != nil {
		return result{}, err
	}
	defer store.Close()

	want := int64(c.events * c.hooks)
	var got atomic.Int64
	done := make(chan struct{})
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if got.Add(1) == want {
			close(done)
		}
	}))
	defer rc.Close()

	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	q := jobs.New(jobs.Deps{Logger: log, Store: store, Config: jobs.Config{Workers: c.workers, PerDestination: c.perDest}})
	svc := webhooks.New(webhooks.Deps{Logger: log, Store: store, Queue: q, Config: webhooks.Config{
		AllowedNetworks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		// Room for every event: this measures the queue, not drops.
		Buffer: c.events,
	}})
	for range c.hooks {
		if _, err := svc.Create(ctx, rc.URL+"/hook", []string{webhooks.EventChat}); err != nil {
			return result{}, err
		}
	}
	if err := svc.Start(ctx); err != nil {
		return result{}, err
	}
	defer svc.Close()
	if err := q.Start(ctx); err != nil {
		return result{}, err
	}
	defer q.Close()

	user := &chat.User{ID: "load", DisplayName: "Load", CreatedAt: time.Now().UTC(), PreviousNames: []string{}}
	visible := true
	cpu0, start := cpuSeconds(), time.Now()
	for i := range c.events {
		svc.ChatEvent(&chat.Event{Type: chat.TypeChat, ID: fmt.Sprint("load-", i), Timestamp: time.Now().UTC(),
			User: user, Body: "<p>load message</p>", Visible: &visible})
	}
	var queuedAt time.Duration
	deadline := time.After(c.timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for queuedAt == 0 {
		select {
		case <-tick.C:
			if svc.Stats().Queued == uint64(want) {
				queuedAt = time.Since(start)
			}
		case <-deadline:
			return result{}, fmt.Errorf("only %d of %d deliveries queued within %s", svc.Stats().Queued, want, c.timeout)
		}
	}
	select {
	case <-done:
	case <-deadline:
		return result{}, fmt.Errorf("only %d of %d deliveries arrived within %s", got.Load(), want, c.timeout)
	}
	elapsed := time.Since(start)
	if st := svc.Stats(); st.Dropped != 0 {
		return result{}, fmt.Errorf("%d events dropped", st.Dropped)
	}
	return result{
		Deliveries: int(want),
		QueuedS:    queuedAt.Seconds(),
		DeliveredS: elapsed.Seconds(),
		PerSecond:  float64(want) / elapsed.Seconds(),
		CPUShare:   (cpuSeconds() - cpu0) / elapsed.Seconds(),
	}, nil
}
