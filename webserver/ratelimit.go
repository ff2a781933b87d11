package webserver

import (
	"net/http"
	"time"

	"golang.org/x/time/rate"

	"github.com/starling-live/starling/core/ratelimit"
)

// ipLimiter limits requests per client address.
type ipLimiter struct{ *ratelimit.Keyed }

func newIPLimiter(r rate.Limit, burst int) ipLimiter { return ipLimiter{ratelimit.New(r, burst)} }

// wrap answers 429 to a client over its budget.
func (l ipLimiter) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !l.Allow(ClientIP(r), time.Now()) {
			w.Header().Set("Retry-After", "5")
			writeError(w, http.StatusTooManyRequests, "too many requests from your address: slow down")
			return
		}
		next.ServeHTTP(w, r)
	})
}
