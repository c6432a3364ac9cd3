package auth

import (
	"math"
	"sync"
	"time"
)

// Bucket is a token bucket: it holds up to burst tokens and gains rate
// tokens per second. The zero value allows nothing; use NewBucket. It is
// not goroutine-safe.
type Bucket struct {
	rate, burst float64
	tokens      float64
	last        time.Time
}

// NewBucket returns a full bucket.
func NewBucket(rate float64, burst int, now time.Time) Bucket {
	b := float64(max(burst, 1))
	return Bucket{rate: rate, burst: b, tokens: b, last: now}
}

func (b *Bucket) refill(now time.Time) {
	if d := now.Sub(b.last); d > 0 {
		b.tokens = math.Min(b.burst, b.tokens+d.Seconds()*b.rate)
		b.last = now
	}
}

// Take takes one token and reports whether there was one.
func (b *Bucket) Take(now time.Time) bool {
	b.refill(now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// TakeN takes n tokens if the bucket is not in debt, going into debt when
// it holds fewer than n (so a batch larger than the burst passes once and
// later ones wait for the debt to be paid). When the bucket is in debt it
// takes nothing and returns how long until it is not.
func (b *Bucket) TakeN(now time.Time, n int) time.Duration {
	b.refill(now)
	if b.tokens < 1 {
		if b.rate <= 0 {
			return time.Hour
		}
		return time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
	}
	b.tokens -= float64(n)
	return 0
}

// Limiter is a set of buckets, one per key, with the same rate and burst.
// It is goroutine-safe. Keys must come from a bounded set (API keys): a
// bucket is never removed.
type Limiter struct {
	rate  float64
	burst int
	now   func() time.Time // time.Now; tests set it

	mu      sync.Mutex
	buckets map[string]*Bucket
}

// NewLimiter returns a limiter of rate per second per key with burst; rate
// <= 0 returns nil, and a nil *Limiter allows everything.
func NewLimiter(rate float64, burst int) *Limiter {
	if rate <= 0 {
		return nil
	}
	return &Limiter{rate: rate, burst: burst, now: time.Now, buckets: make(map[string]*Bucket)}
}

// Rate returns the tokens per second of each bucket (0 for a nil limiter).
func (l *Limiter) Rate() float64 {
	if l == nil {
		return 0
	}
	return l.rate
}

// Reserve takes n tokens from key's bucket (see Bucket.TakeN) and returns 0,
// or how long the caller must wait before trying again.
func (l *Limiter) Reserve(key string, n int) time.Duration {
	if l == nil {
		return 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		nb := NewBucket(l.rate, l.burst, now)
		b = &nb
		l.buckets[key] = b
	}
	return b.TakeN(now, n)
}
