package main

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// The driver of the old design and the files it shares with this one.
//
//go:embed before_main.go announce.go ffmpeg.go slow.go stats.go
var beforeFiles embed.FS

// runBefore exports the tree at rev into a temporary directory (git
// archive: the checkout and its worktrees are left alone), adds the
// driver as build/bench/s3before, runs it there and reads its results.
func runBefore(rev string, tc trackerConfig) ([]trackerResult, error) {
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		return nil, fmt.Errorf("find the git checkout (the old design is exported from it): %w", err)
	}
	dir, err := os.MkdirTemp("", "starling-bench-before-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	archive := exec.Command("git", "-C", strings.TrimSpace(string(top)), "archive", "--format=tar", rev)
	untar := exec.Command("tar", "-x", "-C", dir)
	untar.Stdin, err = archive.StdoutPipe()
	if err != nil {
		return nil, err
	}
	archive.Stderr, untar.Stderr = os.Stderr, os.Stderr
	if err := untar.Start(); err != nil {
		return nil, err
	}
	if err := archive.Run(); err != nil {
		return nil, fmt.Errorf("git archive %s: %w", rev, err)
	}
	if err := untar.Wait(); err != nil {
		return nil, fmt.Errorf("extract %s: %w", rev, err)
	}
	pkg := filepath.Join(dir, "build", "bench", "s3before")
	if err := os.MkdirAll(pkg, 0o755); err != nil {
		return nil, err
	}
	entries, _ := beforeFiles.ReadDir(".")
	for _, e := range entries {
		b, _ := beforeFiles.ReadFile(e.Name())
		if err := os.WriteFile(filepath.Join(pkg, e.Name()), b, 0o644); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(os.Stderr, "running the tracker scenarios on %s (exported to %s)...\n", rev, dir)
	cmd := exec.Command("go", append([]string{"run", "-tags", "starling_before", "./build/bench/s3before"}, tc.args()...)...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, os.Stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("the driver on %s: %w", rev, err)
	}
	var rs []trackerResult
	if err := json.Unmarshal(out.Bytes(), &rs); err != nil {
		return nil, fmt.Errorf("the driver on %s printed no results: %w", rev, err)
	}
	return rs, nil
}
