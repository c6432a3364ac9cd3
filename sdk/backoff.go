package sdk

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff returns the wait before the attempt-th consecutive retry (0 for
// the first): a random duration in [0, min(max, base*2^attempt)], the "full
// jitter" of https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/.
func backoff(attempt int, base, max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	ceil := max
	if base > 0 && attempt < 62 {
		if d := base << attempt; d>>attempt == base && d < max {
			ceil = d
		}
	}
	return rand.N(ceil + 1)
}

// sleep waits for d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
