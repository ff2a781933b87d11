package benchkit

import (
	"testing"
	"time"
)

func TestHistogramBuckets(t *testing.T) {
	for _, d := range []time.Duration{-5, 0, 1, 1023, 1024, 31 * time.Microsecond, 33 * time.Microsecond,
		time.Millisecond, 499 * time.Millisecond, time.Second, 3*time.Second + 7, time.Minute, 10 * time.Minute} {
		i := histIndex(d)
		if up := histUpper(i); up < d {
			t.Errorf("%v: bucket %d ends at %v, below it", d, i, up)
		}
		if i > 0 {
			if lo := histUpper(i - 1); lo >= d && d > 0 {
				t.Errorf("%v: bucket %d starts after %v, the end of the previous one", d, i, lo)
			}
		}
		if d >= 32*time.Microsecond {
			if w := histUpper(i) - histUpper(i-1); float64(w) > float64(d)/histSub {
				t.Errorf("%v: bucket %d is %v wide, more than 1/%d of the value", d, i, w, histSub)
			}
		}
	}
	if i := histIndex(time.Hour); i != histBuckets-1 {
		t.Errorf("an hour falls in bucket %d, want the last (%d)", i, histBuckets-1)
	}
}

func TestHistogramQuantiles(t *testing.T) {
	var a, b Histogram
	for i := 1; i <= 1000; i++ {
		h := &a
		if i%2 == 0 {
			h = &b
		}
		h.Record(time.Duration(i) * time.Millisecond)
	}
	a.Merge(&b)
	if a.Count() != 1000 || a.Max() != time.Second {
		t.Fatalf("count %d max %v, want 1000 and 1s", a.Count(), a.Max())
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 500 * time.Millisecond}, {0.9, 900 * time.Millisecond}, {0.99, 990 * time.Millisecond}, {1, time.Second}, {0, time.Millisecond}} {
		got := a.Quantile(tc.q)
		if got < tc.want || float64(got-tc.want) > float64(tc.want)/histSub {
			t.Errorf("quantile %v = %v, want %v within 1/%d", tc.q, got, tc.want, histSub)
		}
	}
	var empty Histogram
	if empty.Quantile(0.5) != 0 {
		t.Errorf("an empty histogram's median is %v, want 0", empty.Quantile(0.5))
	}
}
