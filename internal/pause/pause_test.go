package pause_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/chatgateway/gateway/internal/pause"
)

func TestFor(t *testing.T) {
	done, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		ctx  context.Context
		d    time.Duration
		want error
	}{
		{"waits the time out", context.Background(), time.Millisecond, nil},
		{"no wait", context.Background(), 0, nil},
		{"negative: no wait", context.Background(), -time.Second, nil},
		{"ended context cuts a long wait", done, time.Hour, context.Canceled},
		{"ended context, no wait", done, 0, context.Canceled},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := pause.For(tc.ctx, tc.d); !errors.Is(err, tc.want) {
				t.Errorf("For(%v) = %v, want %v", tc.d, err, tc.want)
			}
		})
	}
}
