package convo

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"
)

// bound bounds how many hold something at once (model calls, tool runs,
// waits for an answer). Those that find no room wait in line, first come
// first served (the semaphore serves its waiters in order, and one that
// finds another waiting queues behind it), or are refused when only
// tryTake is used.
type bound struct {
	sem     *semaphore.Weighted // nil: no bound
	waiting prometheus.Gauge    // nil when none waits in line
}

// newBound returns a bound of limit holders at once (0 or less: none),
// counting those that wait in waiting (nil if wait is never used).
func newBound(limit int, waiting prometheus.Gauge) bound {
	b := bound{waiting: waiting}
	if limit > 0 {
		b.sem = semaphore.NewWeighted(int64(limit))
	}
	return b
}

// tryTake takes a place if one is free and nobody waits for one.
func (b bound) tryTake() bool { return b.sem == nil || b.sem.TryAcquire(1) }

// wait waits in line, counted in waiting, for a place after tryTake found
// none. A context that ends first returns its error and takes nothing.
func (b bound) wait(ctx context.Context) error {
	b.waiting.Inc()
	defer b.waiting.Dec()
	return b.sem.Acquire(ctx, 1)
}

// give gives back a place taken, to the first in line.
func (b bound) give() {
	if b.sem != nil {
		b.sem.Release(1)
	}
}
