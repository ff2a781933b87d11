package s3

import (
	"context"
	"sync"
	"time"

	"github.com/aws/smithy-go/middleware"
)

// The SDK retries inside a request's deadline. When the deadline passes
// during the wait before a retry, it returns only "canceled", and the
// answer that made it retry (503 SlowDown, a refused signature) is lost;
// yet that answer is what the admin needs to read. So a middleware inside
// the retry loop keeps each attempt's error in the request's context.

type attemptsKey struct{}

// attempts holds the last attempt's error of one request.
type attempts struct {
	mu   sync.Mutex
	last error // guarded by mu
}

func (a *attempts) lastErr() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.last
}

// request derives a request's context: its deadline, and a place for its
// attempts' errors.
func request(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	ctx = context.WithValue(ctx, attemptsKey{}, &attempts{})
	return context.WithTimeout(ctx, timeout)
}

// lastAttemptErr is the error of the request's last attempt, if any.
func lastAttemptErr(ctx context.Context) error {
	if a, ok := ctx.Value(attemptsKey{}).(*attempts); ok {
		return a.lastErr()
	}
	return nil
}

// recordAttempts adds the middleware, right inside the SDK's "Retry".
func recordAttempts(stack *middleware.Stack) error {
	return stack.Finalize.Insert(middleware.FinalizeMiddlewareFunc("StarlingRecordAttempt",
		func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
			out, md, err := next.HandleFinalize(ctx, in)
			if a, ok := ctx.Value(attemptsKey{}).(*attempts); ok && err != nil {
				a.mu.Lock()
				a.last = err
				a.mu.Unlock()
			}
			return out, md, err
		}), "Retry", middleware.After)
}
