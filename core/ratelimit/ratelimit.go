// Package ratelimit holds a token bucket per key (a client address, a
// remote host), forgetting buckets idle long enough to be full again.
package ratelimit

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxIdleKeys is how many buckets are kept before full ones are let go.
const maxIdleKeys = 10_000

// Keyed limits events per key with a token bucket each.
type Keyed struct {
	rate  rate.Limit
	burst int

	// mu guards buckets.
	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// New returns a Keyed limiter allowing r events a second per key, burst
// at once.
func New(r rate.Limit, burst int) *Keyed {
	return &Keyed{rate: r, burst: burst, buckets: map[string]*bucket{}}
}

// Allow spends a token of key's, reporting whether there was one.
func (l *Keyed) Allow(key string, now time.Time) bool {
	return l.limiter(key, now).AllowN(now, 1)
}

// Take spends a token of key's if one is there now; if not, it says how
// long until one is. give returns the token, for an attempt that turned
// out to be no abuse.
func (l *Keyed) Take(key string, now time.Time) (give func(), wait time.Duration) {
	r := l.limiter(key, now).ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return nil, d
	}
	// At the reservation's own time: x/time/rate restores nothing for a
	// reservation whose time has passed.
	return func() { r.CancelAt(now) }, 0
}

func (l *Keyed) limiter(key string, now time.Time) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buckets) > maxIdleKeys {
		// Buckets idle long enough to be full again carry no state.
		for k, b := range l.buckets {
			if now.Sub(b.seen) > time.Duration(float64(l.burst)/float64(l.rate)*float64(time.Second)) {
				delete(l.buckets, k)
			}
		}
	}
	b := l.buckets[key]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(l.rate, l.burst)}
		l.buckets[key] = b
	}
	b.seen = now
	return b.lim
}
