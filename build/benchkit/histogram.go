package benchkit

import (
	"math/bits"
	"time"
)

// Histogram counts durations in buckets at most 1/32 of their value wide
// (1 µs wide below 32 µs), up to about 18 minutes, so that the percentiles
// of millions of samples cost a few kilobytes. It is not safe for
// concurrent use: give each goroutine its own and Merge them afterwards,
// which keeps a shared lock or cache line off the hot path.
type Histogram struct {
	counts [histBuckets]uint64
	n      int64
	max    time.Duration
}

const (
	histSubBits = 5 // 32 sub-buckets per power of two
	histSub     = 1 << histSubBits
	histUnit    = 10                   // ignore the low 10 bits: 1.024 µs resolution
	histBuckets = histSub + 25*histSub // up to 2^40 ns
)

func histIndex(d time.Duration) int {
	v := uint64(max(d, 0)) >> histUnit
	if v < histSub {
		return int(v)
	}
	shift := bits.Len64(v) - histSubBits - 1 // v>>shift is in [histSub, 2*histSub)
	return min(histSub+shift*histSub+int(v>>shift)-histSub, histBuckets-1)
}

// histUpper is the largest duration that falls in bucket i.
func histUpper(i int) time.Duration {
	if i < histSub {
		return time.Duration(uint64(i+1)<<histUnit - 1)
	}
	shift := (i - histSub) / histSub
	m := uint64(histSub + (i-histSub)%histSub)
	return time.Duration((m+1)<<shift<<histUnit - 1)
}

// Record counts one duration.
func (h *Histogram) Record(d time.Duration) {
	h.counts[histIndex(d)]++
	h.n++
	h.max = max(h.max, d)
}

// Merge adds o's counts to h.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// Count is the number of durations recorded.
func (h *Histogram) Count() int64 { return h.n }

// Max is the largest duration recorded, exactly.
func (h *Histogram) Max() time.Duration { return h.max }

// Quantile is the duration under which a share q (0 to 1) of the recorded
// ones fall: the upper end of the bucket holding that rank, never above
// Max. It is 0 if nothing was recorded.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := max(1, int64(q*float64(h.n)+0.9999999))
	var seen int64
	for i, c := range h.counts {
		seen += int64(c)
		if seen >= rank {
			return min(histUpper(i), h.max)
		}
	}
	return h.max
}
