package convo

import (
	"context"
	"fmt"
	"sync"

	"github.com/chatgateway/gateway/internal/metrics"
	"github.com/chatgateway/gateway/protocol"
)

// replayPage is how many events a replay reads from the log at a time.
const replayPage = 256

// hub is the live side of one conversation: its subscribers and its running
// turn. The Service keeps one per active conversation and drops it when
// nothing uses it; a new one starts from the log.
type hub struct {
	id      string
	metrics *metrics.Metrics

	mu sync.Mutex
	// last is the seq of the newest event delivered to live subscribers.
	// Every seq ≤ last is in the log, because events are published only
	// after their commit.
	last uint64
	// subs maps each live subscriber to the seq after which it wants
	// events.
	subs map[Subscriber]uint64
	// running is the turn runner in progress, or nil.
	running *turn
	// kicked records a kick that came while a runner was in progress:
	// that runner may have looked for pending turns before the kick's
	// message was stored, so it must look again when it is done.
	kicked bool
	// refs counts calls in progress that need the hub to stay.
	refs int
}

// idle reports whether nothing uses h. Call with h.mu held.
func (h *hub) idle() bool { return len(h.subs) == 0 && h.running == nil && h.refs == 0 }

// publish delivers the committed events of h's conversation to its live
// subscribers, skipping any at or below h.last (already covered by the
// log when h was created). A subscriber whose queue is full is dropped.
func (h *hub) publish(events []committed) (dropped int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ev := range events {
		if ev.seq <= h.last {
			continue
		}
		h.last = ev.seq
		for sub, after := range h.subs {
			if ev.seq <= after {
				continue
			}
			if !sub.Send(Frame{Data: ev.frame, Born: ev.born, Durable: ev.durable}) {
				h.remove(sub)
				dropped++
			}
		}
	}
	return dropped
}

// addLive subscribes sub from the live edge if it is not subscribed yet,
// and reports whether it did.
func (h *hub) addLive(sub Subscriber) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[sub]; ok {
		return false
	}
	h.add(sub, h.last)
	return true
}

// add registers sub as live from seq after. Call with h.mu held.
func (h *hub) add(sub Subscriber, after uint64) {
	h.subs[sub] = after
	h.metrics.Subscriptions.Inc()
}

// remove unregisters sub, if registered. Call with h.mu held.
func (h *hub) remove(sub Subscriber) {
	if _, ok := h.subs[sub]; ok {
		delete(h.subs, sub)
		h.metrics.Subscriptions.Dec()
	}
}

// subscribe replays the log from after up to the live edge into sub, then
// registers sub as live. Each round reads only up to the last published
// seq and registers under the same lock that publish holds, so no event is
// missed or sent twice; a busy conversation needs more rounds, never a
// buffer.
func (h *hub) subscribe(ctx context.Context, st *store, after uint64, sub Subscriber, ready func(uint64)) error {
	h.mu.Lock()
	last := h.last
	// Subscribing again starts over from after: the client asked for
	// every event after it, whatever it was sent before.
	h.remove(sub)
	h.mu.Unlock()
	if after > last {
		if end := st.lastSeq(h.id); after > end {
			return afterBeyondEnd(after, end)
		}
	}
	ready(last)
	pos := after
	for {
		h.mu.Lock()
		if pos >= h.last {
			h.add(sub, pos)
			h.mu.Unlock()
			return nil
		}
		upTo := h.last
		h.mu.Unlock()
		for pos < upTo {
			frames, err := st.readEvents(h.id, pos, upTo, replayPage)
			if err != nil {
				return fmt.Errorf("convo: replay %s after %d: %w", h.id, pos, err)
			}
			if len(frames) == 0 {
				return fmt.Errorf("convo: replay %s: log ends before seq %d", h.id, upTo)
			}
			for _, f := range frames {
				if err := sub.SendWait(ctx, Frame{Data: f}); err != nil {
					return err
				}
				pos++
			}
		}
	}
}

// afterBeyondEnd is the error for a resume point the log has not reached.
func afterBeyondEnd(after, last uint64) error {
	return protocol.Errorf(protocol.CodeBadRequest, "after: %d is beyond the conversation's last seq %d", after, last)
}

// unsubscribe removes sub.
func (h *hub) unsubscribe(sub Subscriber) {
	h.mu.Lock()
	h.remove(sub)
	h.mu.Unlock()
}

// removeAll unregisters every subscriber, telling each that the
// conversation is gone.
func (h *hub) removeAll() {
	h.mu.Lock()
	for sub := range h.subs {
		h.remove(sub)
		sub.Gone(h.id)
	}
	h.mu.Unlock()
}
