package main

// This file is shared with the driver of the old design (before_main.go):
// it must build against the tree at the commit before the seam too.

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// lost stands for a sample that never came within the timeout; it sorts
// after every real one.
const lost = time.Duration(math.MaxInt64)

// summary sums up latencies, counting those that never came as slower
// than any that did (so that a stall shows in the percentiles instead of
// dropping out of them).
type summary struct {
	N    int           `json:"n"` // samples, lost ones included
	Lost int           `json:"lost"`
	P50  time.Duration `json:"p50"`
	P99  time.Duration `json:"p99"`
	Max  time.Duration `json:"max"`
}

func summarize(ds []time.Duration) summary {
	if len(ds) == 0 {
		return summary{}
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	s := summary{N: len(ds), Max: ds[len(ds)-1]}
	for _, d := range ds {
		if d == lost {
			s.Lost++
		}
	}
	s.P50, s.P99 = pct(ds, 50), pct(ds, 99)
	return s
}

// pct is the p-th percentile of sorted ds, nearest rank.
func pct(ds []time.Duration, p int) time.Duration {
	i := (len(ds)*p + 99) / 100
	return ds[max(0, min(len(ds)-1, i-1))]
}

// fmtDur prints a latency with three significant figures.
func fmtDur(d time.Duration, timeout time.Duration) string {
	switch {
	case d == lost:
		return "> " + timeout.String()
	case d < time.Millisecond:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
}
