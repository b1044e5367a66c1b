package limits

import (
	"net"
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
	l.dropIdleLocked(now)
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= l.opts.MaxKeys {
			return l.refuse(l.refill)
		}
		b = &bucket{lim: rate.NewLimiter(l.limit, l.burst)}
		l.buckets[key] = b
	}
	b.seen = now
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return l.refuse(d)
	}
	return nil
}

func (l *Limiter) refuse(wait time.Duration) error {
	if l.opts.Refused != nil {
		l.opts.Refused.Inc()
	}
	ms := (wait + time.Millisecond - 1) / time.Millisecond
	return &protocol.Error{Code: protocol.CodeRateLimited, Message: l.opts.Message, RetryAfterMS: int64(ms)}
}

// dropIdleLocked forgets, at most once per refill period, the buckets
// untouched for a whole refill period: they are full, as a new one is.
func (l *Limiter) dropIdleLocked(now time.Time) {
	if now.Before(l.sweep) {
		return
	}
	for key, b := range l.buckets {
		if now.Sub(b.seen) >= l.refill {
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

// AddrKey is the rate-limit key of a client at remoteAddr (host:port, as
// in http.Request.RemoteAddr): its IPv4 address, or the /64 network of its
// IPv6 address, since one host commonly holds a whole /64.
func AddrKey(remoteAddr string) string {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip := net.ParseIP(host)
	switch {
	case ip == nil:
		return host
	case ip.To4() != nil:
		return ip.To4().String()
	}
	return ip.Mask(net.CIDRMask(64, 128)).String() + "/64"
}
