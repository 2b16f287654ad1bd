// Package retry holds the one backoff every retry loop of the product
// uses: exponential, capped, with full jitter, and a sleep that ends with
// its context.
package retry

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is the wait before retry number attempt (0-based) of a
// transient failure: exponential from base, capped at ceiling, with full
// jitter so that the workers of several imports do not retry in step.
func Backoff(attempt int, base, ceiling time.Duration) time.Duration {
	d := Exponential(attempt, base, ceiling)
	if d <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(d))) + time.Millisecond
}

// Exponential is base doubled attempt times (0-based), capped at
// ceiling, without jitter: a schedule of retries kept in a status.
func Exponential(attempt int, base, ceiling time.Duration) time.Duration {
	if attempt < 0 {
		attempt = 0
	}
	if attempt >= 30 {
		return ceiling
	}
	return min(ceiling, base<<attempt)
}

// Sleep waits for d or until ctx ends, whichever comes first.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
