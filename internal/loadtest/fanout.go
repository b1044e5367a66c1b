package loadtest

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chatgateway/gateway/protocol"
)

// fanoutResult is one step of the fanout scenario: one conversation, s
// subscribers.
type fanoutResult struct {
	s int
	// toLast is, per chunk, the time from its creation to its arrival at
	// the last subscriber; each is per delivery.
	toLast, each summary
	// missing counts chunks some subscriber did not receive.
	missing int
	load    load
}

// chunkArrivals tracks, per chunk of a step, its creation time, the
// latest arrival and the number of subscribers it reached.
type chunkArrivals struct {
	created, last []atomic.Int64
	reached       []atomic.Int32
}

func newChunkArrivals(n int) *chunkArrivals {
	return &chunkArrivals{created: make([]atomic.Int64, n), last: make([]atomic.Int64, n), reached: make([]atomic.Int32, n)}
}

func (a *chunkArrivals) arrived(key int, created, at time.Time) {
	if key < 0 || key >= len(a.created) {
		return
	}
	a.created[key].Store(created.UnixNano())
	a.reached[key].Add(1)
	for {
		last := a.last[key].Load()
		if at.UnixNano() <= last || a.last[key].CompareAndSwap(last, at.UnixNano()) {
			return
		}
	}
}

// toLast returns the creation-to-last-arrival latencies of the chunks
// every one of subs subscribers received, and how many chunks reached some
// subscribers but not all. (A chunk that reached none was never stamped:
// a remote gateway's own model, or a turn cut short.)
func (a *chunkArrivals) toLast(subs int) ([]time.Duration, int) {
	var out []time.Duration
	missing := 0
	for i := range a.created {
		switch n := int(a.reached[i].Load()); {
		case n == 0:
			continue
		case n < subs:
			missing++
			continue
		}
		out = append(out, time.Duration(a.last[i].Load()-a.created[i].Load()))
	}
	return out, missing
}

// fanout subscribes s clients to one conversation, then a driver client
// sends cfg.Turns messages one after another; every subscriber records
// when each chunk of the replies reaches it. The subscribers run in a
// child process (see streams), the driver in this one.
func (r *runner) fanout(ctx context.Context, s int) (fanoutResult, error) {
	res := fanoutResult{s: s}
	t, err := r.newTarget(r.model)
	if err != nil {
		return res, err
	}
	defer r.closeTarget(t)
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Duration)
	defer cancel()

	driver, err := dial(ctx, t.wsURL)
	if err != nil {
		return res, err
	}
	defer closeAll([]*client{driver})
	if err := driver.request(&protocol.Create{ID: "create", Title: "fanout"}); err != nil {
		return res, err
	}
	created, err := driver.readUntil(protocol.ReplyCreated, nil)
	if err != nil {
		return res, err
	}
	conv := created.conversation
	deadline, _ := ctx.Deadline()
	child, err := r.startChild(ctx, childSpec{
		Role: roleFanout, URL: t.wsURL + "?conversation=" + url.QueryEscape(conv), N: s, Deadline: deadline,
		Turns: r.cfg.Turns, Chunks: r.cfg.Chunks,
	})
	if err != nil {
		return res, err
	}
	defer child.close()

	var out childResult
	res.load, out, err = r.measure(ctx, t, child, func(m *loadMeter) {
		for i := range r.cfg.Turns {
			if err := drive(driver, conv, i); err != nil {
				m.fail(ctx, err)
				return
			}
		}
	})
	if err != nil {
		return res, err
	}
	res.toLast, res.missing, res.each = summarize(out.ToLast), out.Missing, summarize(out.Each)
	res.load.chunks = res.each.n
	return res, nil
}

// subscribers are a fanout step's subscribed clients, each following the
// turns of the conversation.
type subscribers struct {
	arrivals *chunkArrivals
	each     recorder
	n        int
	done     sync.WaitGroup
	mu       sync.Mutex
	failures failures
}

// subscribeAll has each client follow turns turns of chunks chunks (see
// subscriber), and returns once every one is subscribed or failed.
func subscribeAll(ctx context.Context, clients []*client, turns, chunks int) *subscribers {
	f := &subscribers{arrivals: newChunkArrivals(turns * chunks), n: len(clients)}
	var subscribed sync.WaitGroup
	subscribed.Add(len(clients))
	for _, c := range clients {
		f.done.Go(func() {
			err := subscriber(c, turns, chunks, f.arrivals, &f.each, subscribed.Done)
			f.mu.Lock()
			defer f.mu.Unlock()
			f.failures.add(ctx, err)
		})
	}
	subscribed.Wait()
	return f
}

// wait returns what the subscribers received once each followed its
// turns or failed.
func (f *subscribers) wait() childResult {
	f.done.Wait()
	toLast, missing := f.arrivals.toLast(f.n)
	return childResult{ToLast: toLast, Missing: missing, Each: f.each.d, failures: f.failures}
}

// subscriber reads the subscribed reply (then calls subscribed, once, also
// on failure), then the events of turns turns, recording the arrival of
// each stamped chunk of the first chunks of each.
func subscriber(c *client, turns, chunks int, arrivals *chunkArrivals, each *recorder, subscribed func()) error {
	_, err := c.readUntil(protocol.ReplySubscribed, nil)
	subscribed()
	if err != nil {
		return err
	}
	var lat []time.Duration
	for turn := range turns {
		_, err := c.readUntil(protocol.EventTurnEnd, func(f *frame, at time.Time) {
			if f.typ != protocol.EventDelta {
				return
			}
			for _, s := range parseStamps(f.text) {
				if s.index >= chunks {
					continue
				}
				arrivals.arrived(turn*chunks+s.index, s.created, at)
				lat = append(lat, at.Sub(s.created))
			}
		})
		if err != nil {
			each.add(lat...)
			return err
		}
	}
	each.add(lat...)
	return nil
}

// drive sends message i of the conversation and reads until its turn ends.
func drive(c *client, conv string, i int) error {
	if err := c.request(&protocol.Send{ID: fmt.Sprintf("d%d", i), Conversation: conv, Text: "fan out"}); err != nil {
		return err
	}
	_, err := c.readUntil(protocol.EventTurnEnd, nil)
	return err
}
