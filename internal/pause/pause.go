// Package pause waits for a while unless a context ends first: the
// models' pacing and retry backoff.
package pause

import (
	"context"
	"time"
)

// For waits d, or until ctx is done, whichever comes first; in the second
// case it returns ctx's error. With d ≤ 0 it does not wait and returns
// ctx's error, if any.
func For(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
