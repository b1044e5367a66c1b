package client

import (
	"testing"
	"time"
)

// TestBackoff checks that each wait doubles up to the cap and is
// jittered between half and all of it.
func TestBackoff(t *testing.T) {
	t.Parallel()
	lo, hi := 100*time.Millisecond, 10*time.Second
	seen := map[time.Duration]bool{}
	for n := range 70 {
		want := hi
		if n < 7 {
			want = lo << n
		}
		for range 20 {
			d := backoff(lo, hi, n)
			if d < want/2 || d > want {
				t.Fatalf("attempt %d: waited %v, want %v to %v", n, d, want/2, want)
			}
			seen[d] = true
		}
	}
	if len(seen) < 100 {
		t.Fatalf("only %d distinct waits: no jitter", len(seen))
	}
}
