package limits_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/chatgateway/gateway/internal/limits"
	"github.com/chatgateway/gateway/internal/metrics"
	"github.com/chatgateway/gateway/protocol"
)

// retryAfter returns the RetryAfterMS of a rate_limited error, or -1 for
// nil; any other error fails t.
func retryAfter(t *testing.T, err error) int64 {
	t.Helper()
	if err == nil {
		return -1
	}
	var pe *protocol.Error
	if !errors.As(err, &pe) || pe.Code != protocol.CodeRateLimited {
		t.Fatalf("got %v, want a rate_limited error", err)
	}
	return pe.RetryAfterMS
}

func TestLimiterBurstThenRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := metrics.New()
		l := limits.NewLimiter(limits.Rate{PerSecond: 2, Burst: 3}, limits.LimiterOptions{Refused: m.RateLimited.WithLabelValues("send"), Message: "slow down"})
		for i := range 3 {
			if err := l.Allow("a"); err != nil {
				t.Fatalf("request %d of the burst: %v", i, err)
			}
		}
		err := l.Allow("a")
		if got := retryAfter(t, err); got != 500 {
			t.Errorf("retry after %d ms, want 500 (one token at 2/s)", got)
		}
		if err.(*protocol.Error).Message != "slow down" {
			t.Errorf("message %q", err.(*protocol.Error).Message)
		}
		if err := l.Allow("b"); err != nil {
			t.Errorf("another key is limited too: %v", err)
		}
		// A refusal takes no token: after the advertised wait one
		// request passes, and the next is refused again.
		time.Sleep(500 * time.Millisecond)
		if err := l.Allow("a"); err != nil {
			t.Errorf("after retry_after: %v", err)
		}
		if got := retryAfter(t, l.Allow("a")); got != 500 {
			t.Errorf("retry after %d ms, want 500", got)
		}
		if got, err := m.Gather(); err != nil || got["gateway_rate_limited_total"] != 2 {
			t.Errorf("refusals counted %v (%v), want 2", got["gateway_rate_limited_total"], err)
		}
	})
}

func TestLimiterForgetsIdleKeys(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Burst 4 at 2/s: a bucket is full again after 2 s.
		l := limits.NewLimiter(limits.Rate{PerSecond: 2, Burst: 4}, limits.LimiterOptions{})
		for i := range 100 {
			if err := l.Allow(fmt.Sprint("k", i)); err != nil {
				t.Fatal(err)
			}
		}
		if got := l.Keys(); got != 100 {
			t.Fatalf("holds %d keys, want 100", got)
		}
		time.Sleep(time.Second)
		_ = l.Allow("k0") // too soon: nothing is dropped
		if got := l.Keys(); got != 100 {
			t.Errorf("after 1 s holds %d keys, want 100", got)
		}
		time.Sleep(1500 * time.Millisecond)
		_ = l.Allow("new")
		// k0 was used 1.5 s ago and "new" just now.
		if got := l.Keys(); got != 2 {
			t.Errorf("after the refill period holds %d keys, want 2", got)
		}
	})
}

func TestLimiterMaxKeys(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		l := limits.NewLimiter(limits.Rate{PerSecond: 1, Burst: 1}, limits.LimiterOptions{MaxKeys: 2})
		for _, k := range []string{"a", "b"} {
			if err := l.Allow(k); err != nil {
				t.Fatal(err)
			}
		}
		if got := retryAfter(t, l.Allow("c")); got != 1000 {
			t.Errorf("a third key: retry after %d, want 1000", got)
		}
		time.Sleep(time.Second)
		if err := l.Allow("c"); err != nil {
			t.Errorf("once the others are idle: %v", err)
		}
	})
}

func TestNilLimiterAllows(t *testing.T) {
	l := limits.NewLimiter(limits.Rate{PerSecond: 0, Burst: 10}, limits.LimiterOptions{})
	if l != nil {
		t.Fatal("rate 0 made a limiter, want nil (no limit)")
	}
	for range 1000 {
		if err := l.Allow("a"); err != nil {
			t.Fatal(err)
		}
	}
	if l.Keys() != 0 {
		t.Error("a nil limiter holds keys")
	}
}

func TestLimiterConcurrent(t *testing.T) {
	t.Parallel()
	l := limits.NewLimiter(limits.Rate{PerSecond: 1e-3, Burst: 10}, limits.LimiterOptions{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for range 8 {
		wg.Go(func() {
			for range 10 {
				if l.Allow("shared") == nil {
					mu.Lock()
					allowed++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if allowed != 10 {
		t.Errorf("%d requests allowed, want the burst of 10", allowed)
	}
}

func TestAddrKey(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, addr, want string }{
		{"IPv4", "192.0.2.7:5555", "192.0.2.7"},
		{"IPv4-mapped IPv6", "[::ffff:192.0.2.7]:5555", "192.0.2.7"},
		{"IPv6 by /64", "[2001:db8:1:2:aaaa:bbbb:cccc:dddd]:443", "2001:db8:1:2::/64"},
		{"same /64", "[2001:db8:1:2::1]:1", "2001:db8:1:2::/64"},
		{"no port", "192.0.2.8", "192.0.2.8"},
		{"not an address", "pipe", "pipe"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := limits.AddrKey(tt.addr); got != tt.want {
				t.Errorf("AddrKey(%q) = %q, want %q", tt.addr, got, tt.want)
			}
		})
	}
}

func TestSlots(t *testing.T) {
	t.Parallel()
	type step struct {
		acquire bool // else release
		key     string
		busy    string // the refusal's message, when refused
	}
	tests := []struct {
		name        string
		max, perKey int
		steps       []step
	}{
		{"per key", 0, 2, []step{
			{true, "a", ""}, {true, "a", ""}, {true, "a", "for this user"}, {true, "b", ""},
			{false, "a", ""}, {true, "a", ""},
		}},
		{"total", 2, 0, []step{
			{true, "a", ""}, {true, "b", ""}, {true, "c", "to the gateway"},
			{false, "b", ""}, {true, "c", ""},
		}},
		{"no bounds", 0, 0, []step{{true, "a", ""}, {true, "a", ""}, {true, "a", ""}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := limits.NewSlots(tt.max, tt.perKey)
			for i, st := range tt.steps {
				if !st.acquire {
					s.Release(st.key)
					continue
				}
				err := s.Acquire(st.key)
				var pe *protocol.Error
				switch {
				case st.busy == "" && err != nil:
					t.Fatalf("step %d: %v", i, err)
				case st.busy != "" && (!errors.As(err, &pe) || pe.Code != protocol.CodeBusy || !strings.Contains(pe.Message, st.busy)):
					t.Fatalf("step %d: %v, want busy %q", i, err, st.busy)
				}
			}
		})
	}
}

func TestSizes(t *testing.T) {
	t.Parallel()
	small := limits.Sizes{Title: 4, System: 8, Action: 10}
	tests := []struct {
		name  string
		sizes limits.Sizes
		err   func(limits.Sizes) error
		code  string // "" for no error
		field string
	}{
		{"title at the bound", small, func(s limits.Sizes) error { return s.CheckCreate(&protocol.Create{Title: "abcd"}) }, "", ""},
		{"title over", small, func(s limits.Sizes) error { return s.CheckCreate(&protocol.Create{Title: "abcde"}) }, protocol.CodeTooLarge, "title"},
		{"system over", small, func(s limits.Sizes) error { return s.CheckCreate(&protocol.Create{System: "123456789"}) }, protocol.CodeTooLarge, "system"},
		{"model id over", small, func(s limits.Sizes) error {
			return s.CheckCreate(&protocol.Create{Model: strings.Repeat("m", limits.MaxModelIDBytes+1)})
		}, protocol.CodeBadRequest, "model"},
		{"default title bound", limits.Sizes{}, func(s limits.Sizes) error {
			return s.CheckCreate(&protocol.Create{Title: strings.Repeat("t", limits.DefaultMaxTitleBytes+1)})
		}, protocol.CodeTooLarge, "title"},
		{"default system bound", limits.Sizes{}, func(s limits.Sizes) error {
			return s.CheckCreate(&protocol.Create{System: strings.Repeat("s", limits.DefaultMaxSystemBytes)})
		}, "", ""},
		{"action at the bound", small, func(s limits.Sizes) error { return s.CheckAction("n", "t", []byte(`{"a":1}`), []byte("1")) }, "", ""},
		{"action over, counting every part", small, func(s limits.Sizes) error { return s.CheckAction("n", "t", []byte(`{"a":1}`), []byte("12")) }, protocol.CodeTooLarge, "action"},
		{"default action bound", limits.Sizes{}, func(s limits.Sizes) error {
			return s.CheckAction("n", "", []byte(`"`+strings.Repeat("x", limits.DefaultMaxActionBytes)+`"`), nil)
		}, protocol.CodeTooLarge, "action"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.err(tt.sizes)
			var pe *protocol.Error
			switch {
			case tt.code == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.code != "" && (!errors.As(err, &pe) || pe.Code != tt.code || !strings.HasPrefix(pe.Message, tt.field+":")):
				t.Errorf("got %v, want %s about %s", err, tt.code, tt.field)
			}
		})
	}
}

// TestLimiterCheckAndSpend checks the pair that bounds failures: Check
// takes nothing and holds no key for a client that never spends, even
// when the limiter is full; every Spend counts, into debt, and Check
// refuses until it is paid back.
func TestLimiterCheckAndSpend(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// Burst 2 at 1/s: a bucket is full again 2 s after its last use.
		l := limits.NewLimiter(limits.Rate{PerSecond: 1, Burst: 2}, limits.LimiterOptions{MaxKeys: 2})
		for range 10 {
			if err := l.Check("good"); err != nil {
				t.Fatalf("a key that never spent: %v", err)
			}
		}
		if got := l.Keys(); got != 0 {
			t.Fatalf("Check made %d keys, want none", got)
		}
		l.Spend("bad")
		if err := l.Check("bad"); err != nil {
			t.Fatalf("after one of a burst of 2: %v", err)
		}
		// Four spent at once, as concurrent failures that all passed
		// Check: two tokens of debt, paid back 3 s later.
		for range 3 {
			l.Spend("bad")
		}
		if got := retryAfter(t, l.Check("bad")); got != 3000 {
			t.Errorf("retry after %d ms, want 3000", got)
		}
		time.Sleep(2999 * time.Millisecond)
		if got := retryAfter(t, l.Check("bad")); got != 1 {
			t.Errorf("just before: retry after %d ms, want 1", got)
		}
		// The idle sweep does not forgive a debt.
		if got := l.Keys(); got != 1 {
			t.Errorf("holds %d keys, want 1", got)
		}
		time.Sleep(time.Millisecond)
		if err := l.Check("bad"); err != nil {
			t.Errorf("once paid back: %v", err)
		}
		// Full: a key not held still passes Check (Allow would refuse
		// it), and its spending is not counted.
		for range 3 {
			l.Spend("other")
		}
		for range 3 {
			l.Spend("new")
		}
		if err := l.Check("new"); err != nil || l.Keys() != 2 {
			t.Errorf("a third key while two are held: %v, %d keys held", err, l.Keys())
		}
		time.Sleep(3 * time.Second)
		if err := l.Check("other"); err != nil || l.Keys() != 0 {
			t.Errorf("once the others are full again: %v, %d keys", err, l.Keys())
		}
	})
}
