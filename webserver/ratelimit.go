package webserver

import (
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// ipLimiter limits requests per client address with a token bucket each.
type ipLimiter struct {
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

func newIPLimiter(r rate.Limit, burst int) *ipLimiter {
	return &ipLimiter{rate: r, burst: burst, buckets: map[string]*bucket{}}
}

func (l *ipLimiter) allow(ip string, now time.Time) bool {
	return l.limiter(ip, now).AllowN(now, 1)
}

// take spends a token of ip's if one is there now; if not, it says how
// long until one is. give returns the token, for an attempt that turned
// out to be no abuse.
func (l *ipLimiter) take(ip string, now time.Time) (give func(), wait time.Duration) {
	r := l.limiter(ip, now).ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return nil, d
	}
	// At the reservation's own time: x/time/rate restores nothing for a
	// reservation whose time has passed.
	return func() { r.CancelAt(now) }, 0
}

func (l *ipLimiter) limiter(ip string, now time.Time) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.buckets) > 10_000 {
		// Buckets idle long enough to be full again carry no state.
		for k, b := range l.buckets {
			if now.Sub(b.seen) > time.Duration(float64(l.burst)/float64(l.rate)*float64(time.Second)) {
				delete(l.buckets, k)
			}
		}
	}
	b := l.buckets[ip]
	if b == nil {
		b = &bucket{lim: rate.NewLimiter(l.rate, l.burst)}
		l.buckets[ip] = b
	}
	b.seen = now
	return b.lim
}

// wrap answers 429 to a client over its budget.
func (l *ipLimiter) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !l.allow(ClientIP(r), time.Now()) {
			w.Header().Set("Retry-After", "5")
			writeError(w, http.StatusTooManyRequests, "too many requests from your address: slow down")
			return
		}
		next.ServeHTTP(w, r)
	})
}
