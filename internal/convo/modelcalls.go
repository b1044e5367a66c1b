package convo

import (
	"context"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// modelCalls bounds the model calls in progress at once
// (Config.MaxModelCalls). Calls that find none free wait in line, first
// come first served (see bound). The turns that wait for their first call
// are bounded too (Config.MaxWaitingTurns): a turn that finds the line
// full does not join it.
type modelCalls struct {
	bound
	// maxStarts bounds starts, the turns waiting for their first call.
	maxStarts int
	mu        sync.Mutex
	starts    int
}

// newModelCalls returns a bound of limit calls at once (0 or less: none),
// with at most maxStarts turns waiting for their first call, counting
// the calls that wait in waiting.
func newModelCalls(limit, maxStarts int, waiting prometheus.Gauge) *modelCalls {
	return &modelCalls{bound: newBound(limit, waiting), maxStarts: maxStarts}
}

// slot returns a turn's hold on a call, not taken yet.
func (c *modelCalls) slot() *callSlot { return &callSlot{calls: c} }

// joinStarts counts one more turn waiting for its first call, unless
// maxStarts wait already; it reports whether it did.
func (c *modelCalls) joinStarts() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.starts >= c.maxStarts {
		return false
	}
	c.starts++
	return true
}

// leaveStarts counts one turn fewer waiting for its first call.
func (c *modelCalls) leaveStarts() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.starts--
}

// callSlot is one turn's hold on a model call in progress. A turn takes it
// before it reads its history (so that a turn that waits holds its
// metadata, not its messages), the model call uses it, and it is given
// back as soon as the call returns: an agent's turn takes it again for
// its next step, and holds none while its tools run or wait for an
// answer. Only one goroutine uses it at a time.
type callSlot struct {
	calls *modelCalls
	held  bool
	// called says the turn has had a call: its later steps always wait
	// their turn. refused is why its first call was refused, for good.
	called  bool
	refused error
}

// take waits until the turn may call the model: at once if it holds the
// slot already, or else when it is first in line and a call in progress
// ends. A context that ends first (the turn was cancelled, its
// conversation deleted, the gateway stops) returns its error and takes
// nothing; so does one that has ended already, also without a bound,
// since a model called then could only fail. A turn's first call that
// would wait while the line of first calls is full is refused with
// ErrTooManyWaiting, as is every take of that turn after it.
func (c *callSlot) take(ctx context.Context) error {
	if c.held {
		return nil
	}
	if c.refused != nil {
		return c.refused
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if !c.calls.tryTake() {
		first := !c.called
		if first && !c.calls.joinStarts() {
			c.refused = ErrTooManyWaiting
			return c.refused
		}
		err := c.calls.wait(ctx)
		if first {
			c.calls.leaveStarts()
		}
		if err != nil {
			return err
		}
	}
	c.held, c.called = true, true
	return nil
}

// give gives the slot back, if held, to the first call in line.
func (c *callSlot) give() {
	if !c.held {
		return
	}
	c.held = false
	c.calls.give()
}
