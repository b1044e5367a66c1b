package limits

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/chatgateway/gateway/protocol"
)

// DefaultMaxKeys is the default bound on the keys one Limiter tracks.
const DefaultMaxKeys = 100_000

// Rate is a token bucket: PerSecond tokens are added each second, up to
// Burst.
type Rate struct {
	PerSecond float64
	Burst     int
}

// LimiterOptions tunes NewLimiter. Zero values mean the documented
// defaults.
type LimiterOptions struct {
	// Message is the text of the rate_limited error (default "rate limit
	// exceeded, slow down").
	Message string
	// Refused, when set, is incremented for every refusal.
	Refused prometheus.Counter
	// MaxKeys bounds the keys held at once (default DefaultMaxKeys). When
	// every slot holds a key still in use, a new key is refused as if its
	// bucket were empty: under a flood of distinct keys the limiter fails
	// closed rather than growing.
	MaxKeys int
}

// Limiter is a token-bucket rate limit per key, safe for concurrent use.
// A nil *Limiter allows everything.
type Limiter struct {
	limit   rate.Limit
	burst   int
	opts    LimiterOptions
	refill  time.Duration // an untouched bucket is full again after refill
	mu      sync.Mutex
	buckets map[string]*bucket
	sweep   time.Time // the next time idle buckets are dropped
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// NewLimiter returns a limiter allowing r per key, or nil (no limit) when
// r.PerSecond is not positive. A Burst below 1 is 1.
func NewLimiter(r Rate, opts LimiterOptions) *Limiter {
	if r.PerSecond <= 0 {
		return nil
	}
	r.Burst = max(r.Burst, 1)
	if opts.Message == "" {
		opts.Message = "rate limit exceeded, slow down"
	}
	if opts.MaxKeys <= 0 {
		opts.MaxKeys = DefaultMaxKeys
	}
	refill := time.Duration(float64(r.Burst) / r.PerSecond * float64(time.Second))
	return &Limiter{limit: rate.Limit(r.PerSecond), burst: r.Burst, opts: opts,
		refill: max(refill, time.Second), buckets: make(map[string]*bucket)}
}

// Allow takes one token from key's bucket. It returns nil, or a
// rate_limited *protocol.Error whose RetryAfterMS says when a token will
// be there.
func (l *Limiter) Allow(key string) error {
	if l == nil {
		return nil
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucketLocked(key, now, true)
	if b == nil {
		return l.refuse(l.refill)
	}
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return l.refuse(d)
	}
	return nil
}

// Check returns nil when key's bucket holds a token, else the
// rate_limited error Allow would return; it takes no token. A key not
// held passes and is not made: a key that never spends costs no memory,
// and, unlike Allow, Check does not fail closed when the limiter holds
// MaxKeys keys, so that a flood of keys that spend cannot refuse the
// keys that never did.
func (l *Limiter) Check(key string) error {
	if l == nil {
		return nil
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucketLocked(key, now, false)
	if b == nil {
		return nil
	}
	if tokens := b.lim.TokensAt(now); tokens < 1 {
		return l.refuse(time.Duration((1 - tokens) / float64(l.limit) * float64(time.Second)))
	}
	return nil
}

// Spend takes a token from key's bucket, into debt when it has none, so
// that every use that Check let through counts, however many came at
// once: Check refuses until the debt is paid back. A new key is not
// counted while the limiter holds MaxKeys keys.
func (l *Limiter) Spend(key string) {
	if l == nil {
		return
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if b := l.bucketLocked(key, now, true); b != nil {
		b.lim.ReserveN(now, 1)
	}
}

// bucketLocked returns key's bucket. With use set, the bucket is made
// if need be (unless the limiter holds MaxKeys keys: then nil) and marked
// used at now; without, it is only looked up.
func (l *Limiter) bucketLocked(key string, now time.Time, use bool) *bucket {
	l.dropIdleLocked(now)
	b := l.buckets[key]
	if !use {
		return b
	}
	if b == nil {
		if len(l.buckets) >= l.opts.MaxKeys {
			return nil
		}
		b = &bucket{lim: rate.NewLimiter(l.limit, l.burst)}
		l.buckets[key] = b
	}
	b.seen = now
	return b
}

func (l *Limiter) refuse(wait time.Duration) error {
	if l.opts.Refused != nil {
		l.opts.Refused.Inc()
	}
	ms := (wait + time.Millisecond - 1) / time.Millisecond
	return &protocol.Error{Code: protocol.CodeRateLimited, Message: l.opts.Message, RetryAfterMS: int64(ms)}
}

// dropIdleLocked forgets, at most once per refill period, the buckets
// untouched for a whole refill period and full again, as a new one is
// (one that Spend put in debt may take longer).
func (l *Limiter) dropIdleLocked(now time.Time) {
	if now.Before(l.sweep) {
		return
	}
	for key, b := range l.buckets {
		if now.Sub(b.seen) >= l.refill && b.lim.TokensAt(now) >= float64(l.burst) {
			delete(l.buckets, key)
		}
	}
	l.sweep = now.Add(l.refill)
}

// Keys returns how many keys l holds now.
func (l *Limiter) Keys() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}
