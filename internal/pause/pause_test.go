package pause_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/chatgateway/gateway/internal/pause"
)

// TestFor runs in a synctest bubble, whose clock moves only when every
// goroutine waits: For must take exactly the time it was asked to, and no
// time at all when its context has ended or d ≤ 0.
func TestFor(t *testing.T) {
	tests := []struct {
		name   string
		cancel bool // end the context before For
		d      time.Duration
		want   error
		waited time.Duration
	}{
		{"waits the time out", false, time.Hour, nil, time.Hour},
		{"no wait", false, 0, nil, 0},
		{"negative: no wait", false, -time.Second, nil, 0},
		{"ended context cuts a long wait", true, time.Hour, context.Canceled, 0},
		{"ended context, no wait", true, 0, context.Canceled, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel()
				if tc.cancel {
					cancel()
				}
				start := time.Now()
				err := pause.For(ctx, tc.d)
				if !errors.Is(err, tc.want) {
					t.Errorf("For(%v) = %v, want %v", tc.d, err, tc.want)
				}
				if waited := time.Since(start); waited != tc.waited {
					t.Errorf("For(%v) waited %v, want %v", tc.d, waited, tc.waited)
				}
			})
		})
	}
}

// TestForEndsWithItsContext ends the context in the middle of a wait.
func TestForEndsWithItsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		start := time.Now()
		if err := pause.For(ctx, time.Hour); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("For = %v, want the context's deadline", err)
		}
		if waited := time.Since(start); waited != time.Minute {
			t.Errorf("For waited %v, want the minute its context lasted", waited)
		}
	})
}
