package client

import (
	"math"
	"testing"
	"time"
)

// TestBackoff checks that each wait doubles up to the cap and is
// jittered between half and all of it, also after so many attempts that
// the doubling would overflow a time.Duration.
func TestBackoff(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		lo, hi time.Duration
	}{
		{"defaults", 100 * time.Millisecond, 10 * time.Second},
		{"5s to a minute", 5 * time.Second, time.Minute},
		{"a minute to an hour", time.Minute, time.Hour},
		{"1ns to the largest", 1, math.MaxInt64},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			seen := map[time.Duration]bool{}
			for n := range 70 {
				want := tc.hi
				if n < 63 && tc.lo<<n < tc.hi && tc.lo<<n>>n == tc.lo {
					want = tc.lo << n
				}
				for range 20 {
					d := backoff(tc.lo, tc.hi, n)
					if d < want/2 || d > want {
						t.Fatalf("attempt %d: waited %v, want %v to %v", n, d, want/2, want)
					}
					seen[d] = true
				}
			}
			if len(seen) < 100 {
				t.Fatalf("only %d distinct waits: no jitter", len(seen))
			}
		})
	}
}
