//go:build starling_before

// This is the driver of the tracker scenarios for the tree before segments
// were stored outside the packager's lock (the parent of the commit "hls:
// segments are stored outside the packager's lock"). It does not build
// here: before.go copies it, with the files it shares with main.go, into
// an export of that tree, runs it there, and reads the JSON it prints.
// There, Packager.Renditions takes the packager's lock, under which every
// storage Put runs, and the tracker's Allowlist calls it on every
// announce.

package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/starling-live/starling/storage/local"
	"github.com/starling-live/starling/video/hls"
	"github.com/starling-live/starling/video/tracker"
)

func main() {
	tc := trackerConfig{kbps: []int{3000, 1200}}
	tc.flags(flag.CommandLine)
	flag.Parse()
	var out []trackerResult
	for _, disk := range []bool{false, true} {
		name := "before: local disk, fast"
		if disk {
			name = fmt.Sprintf("before: local disk, every write +%s", tc.delay)
		}
		fmt.Fprintf(os.Stderr, "tracker scenario %q...\n", name)
		r, err := scenario(name, tc, disk)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		out = append(out, r)
	}
	json.NewEncoder(os.Stdout).Encode(out)
}

func scenario(name string, tc trackerConfig, disk bool) (trackerResult, error) {
	dir, err := os.MkdirTemp("", "starling-bench-hls-")
	if err != nil {
		return trackerResult{}, err
	}
	defer os.RemoveAll(dir)
	st, err := local.New(dir)
	if err != nil {
		return trackerResult{}, err
	}
	slow := newSlowStorage(st, tc.delay)
	p := hls.New(hls.Deps{Logger: slog.New(slog.DiscardHandler), Storage: slow})
	if err := p.Start(context.Background()); err != nil {
		return trackerResult{}, err
	}
	// The old packager's Close waits at most 5 s for the requests in
	// flight; those stuck on the lock are abandoned with the process.
	defer p.Close()
	defer close(slow.quit)
	b := p.Begin(context.Background(), hls.Options{PlaylistSegments: 4})
	allow := tracker.NewAllowlist(swarmID, p)
	r, _, err := runTracker(name, tc, target{
		runURL:  b.NextRunURL(),
		allowed: allow.Allowed,
		slow:    func() { slow.slow.Store(disk) },
	})
	return r, err
}
