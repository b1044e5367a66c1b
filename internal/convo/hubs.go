package convo

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/chatgateway/gateway/internal/metrics"
	"github.com/chatgateway/gateway/protocol"
)

// replayPage is how many events a replay reads from the log at a time.
// The page stays in memory until the client has taken it, so it bounds
// what a replay to a client that stops reading holds (16 events of at
// most the largest event's size), beside the connection's queue.
const replayPage = 16

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
	// created is the CreatedAt of the conversation whose log the hub
	// serves, read when it started (zero: the conversation did not
	// exist then, and no send of this gateway's has created it since).
	// A conversation created again under the id is another log: its
	// seqs start from 1 again, and this hub's last means nothing there.
	created time.Time
	// subs are the live subscribers, each with the seq after which it
	// wants events.
	subs subscribers
	// running is the turn runner in progress, or nil.
	running *turn
	// cancelled is the id of the open turn the last cancel found in the
	// log: the runner that takes that turn up cancels it (see
	// takeTurn). A cancel can come before that runner is running: while
	// the runner of the turn before, which has stored its turn_end, is
	// still in progress, or between a send's commit and its kick.
	cancelled string
	// kicked records a kick that came while a runner was in progress:
	// that runner may have looked for pending turns before the kick's
	// message was stored, so it must look again when it is done.
	kicked bool
	// refs counts calls in progress that need the hub to stay.
	refs int
	// deleted is set once the conversation is deleted, as its running
	// turn is stopped (markDeleted), before its subscribers are told
	// (removeAll): a subscribe not yet answered then fails as not found,
	// one that was replaying tells its subscriber too, instead of
	// registering it (or, if its next page is gone from the log, instead
	// of failing); and no runner starts on h, which would take the turns
	// of a conversation created again under the id.
	deleted bool
	// unfollow ends the Log's reports of the conversation (see Log.Follow);
	// nil until started is closed.
	unfollow func()
	// started is closed once acquire has read the hub's start from the
	// Log and asked it to follow the conversation.
	started chan struct{}
	// dropped is set when the Service forgets the hub.
	dropped bool
	// kept is what h keeps of its conversation's history between model
	// calls, so that the next need not read it back from the Log (see
	// Service.keep); its zero value: nothing.
	kept keptHistory
}

// idle reports whether nothing uses h. Call with h.mu held.
func (h *hub) idle() bool { return len(h.subs.list) == 0 && h.running == nil && h.refs == 0 }

// publish delivers the committed events of h's conversation to its live
// subscribers, skipping any at or below h.last (already covered by the
// log when h was created). A subscriber whose queue is full is dropped.
func (h *hub) publish(events []Committed) (dropped int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ev := range events {
		if ev.Seq <= h.last {
			continue
		}
		h.last = ev.Seq
		for i := 0; i < len(h.subs.list); {
			s := h.subs.list[i]
			if ev.Seq > s.after && !s.sub.Send(Frame{Data: ev.Frame, Born: ev.Born, Durable: ev.Durable}) {
				h.remove(s.sub) // the last one moves to i
				dropped++
				continue
			}
			i++
		}
	}
	return dropped
}

// subscribers is a set of live subscribers, each with the seq after
// which it wants events. publish walks a slice: walking a map of one
// subscriber took half of the commit loop's time in the hubs, because
// a map is more memory to bring into the cache, for a hundred hubs a
// commit. at says where each subscriber is in list, for the rest.
type subscribers struct {
	list []subscriber
	at   map[Subscriber]int
}

// subscriber is one entry of a subscribers set.
type subscriber struct {
	sub   Subscriber
	after uint64
}

// has reports whether sub is in the set.
func (ss *subscribers) has(sub Subscriber) bool {
	_, ok := ss.at[sub]
	return ok
}

// set puts sub in the set from seq after, or moves it there if it is in
// the set already, and reports whether it was not.
func (ss *subscribers) set(sub Subscriber, after uint64) bool {
	if i, ok := ss.at[sub]; ok {
		ss.list[i].after = after
		return false
	}
	if ss.at == nil {
		ss.at = make(map[Subscriber]int)
	}
	ss.at[sub] = len(ss.list)
	ss.list = append(ss.list, subscriber{sub, after})
	return true
}

// remove takes sub out of the set, moving the last entry to its place,
// and reports whether it was in it.
func (ss *subscribers) remove(sub Subscriber) bool {
	i, ok := ss.at[sub]
	if !ok {
		return false
	}
	delete(ss.at, sub)
	last := len(ss.list) - 1
	if i != last {
		ss.list[i] = ss.list[last]
		ss.at[ss.list[i].sub] = i
	}
	ss.list[last] = subscriber{}
	ss.list = ss.list[:last]
	return true
}

// addLive subscribes sub from the live edge if it is not subscribed yet,
// and reports whether it did.
func (h *hub) addLive(sub Subscriber) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs.has(sub) {
		return false
	}
	h.add(sub, h.last)
	return true
}

// add registers sub as live from seq after, or moves it there if it is
// live already. Call with h.mu held.
func (h *hub) add(sub Subscriber, after uint64) {
	if h.subs.set(sub, after) {
		h.metrics.Subscriptions.Inc()
	}
}

// remove unregisters sub, if registered. Call with h.mu held.
func (h *hub) remove(sub Subscriber) {
	if h.subs.remove(sub) {
		h.metrics.Subscriptions.Dec()
	}
}

// subscribe replays the log from after up to the live edge into sub, then
// registers sub as live. Each round reads only up to the last published
// seq and registers under the same lock that publish holds, so no event is
// missed or sent twice; a busy conversation needs more rounds, never a
// buffer.
func (h *hub) subscribe(ctx context.Context, log Log, after uint64, sub Subscriber, ready func(uint64)) error {
	h.mu.Lock()
	last := h.last
	h.mu.Unlock()
	// A refused subscribe leaves a subscription sub already has as it is.
	if after > last {
		m, err := log.Meta(ctx, h.id)
		if err != nil {
			return err
		}
		if after > m.LastSeq {
			return afterBeyondEnd(after, m.LastSeq)
		}
	}
	h.mu.Lock()
	if h.deleted {
		// Deleted since the caller checked it: not found, as a
		// subscribe after the delete would be.
		h.mu.Unlock()
		return ErrNotFound
	}
	// The hub may lag the log (a follower not yet at what another
	// gateway stored): after, which the log holds, is then the
	// conversation's last seq as far as the subscriber is concerned. A
	// seq it has seen is part of the conversation.
	last = max(h.last, after)
	// Subscribing again starts over from after: the client asked for
	// every event after it, whatever it was sent before.
	h.remove(sub)
	h.mu.Unlock()
	ready(last)
	pos := after
	for {
		h.mu.Lock()
		if h.deleted {
			h.mu.Unlock()
			sub.Gone(h.id)
			return nil
		}
		if pos >= h.last {
			h.add(sub, pos)
			h.mu.Unlock()
			return nil
		}
		upTo := h.last
		h.mu.Unlock()
		for pos < upTo {
			frames, err := log.Events(ctx, h.id, pos, upTo, replayPage)
			if errors.Is(err, ErrNotFound) {
				// Deleted meanwhile: sub learns it as removeAll tells
				// the live subscribers.
				sub.Gone(h.id)
				return nil
			}
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

// markDeleted marks h's conversation deleted, so that no runner starts
// on h any more, and ends its running turn.
func (h *hub) markDeleted() {
	h.mu.Lock()
	h.deleted = true
	h.mu.Unlock()
	h.stop("", errDeleted)
}

// removeAll unregisters every subscriber, telling each that the
// conversation is gone. Call after markDeleted.
func (h *hub) removeAll() {
	h.mu.Lock()
	for len(h.subs.list) > 0 {
		sub := h.subs.list[0].sub
		h.remove(sub)
		sub.Gone(h.id)
	}
	h.mu.Unlock()
}

// dispatch hands committed events to the hubs of their conversations; the
// Log calls it (see Log.Start) in commit order.
func (s *Service) dispatch(events []Committed) {
	s.calls.notify(events)
	for i := 0; i < len(events); {
		j := i + 1
		for j < len(events) && events[j].Conversation == events[i].Conversation {
			j++
		}
		if h := s.hubOf(events[i].Conversation); h != nil && h.publish(events[i:j]) > 0 {
			s.releaseIfIdle(h)
		}
		i = j
	}
}

// acquire returns the hub of conversation id, creating it at the log's
// current end, and holds it until release. The hub is made under s.mu
// but started (Log.Meta, Log.Follow) with no lock held: a Log may call
// dispatch, which takes s.mu and h.mu, while it holds locks that those
// calls wait for (jetlog reports an append under its conversation's
// locks). Until it has started, the hub takes published events (they
// only raise last) and other callers wait for it.
func (s *Service) acquire(id string) *hub {
	s.mu.Lock()
	h := s.hubs[id]
	starter := h == nil
	if starter {
		h = &hub{id: id, metrics: s.cfg.Metrics, started: make(chan struct{})}
		s.hubs[id] = h
		s.cfg.Metrics.Hubs.Inc()
	}
	h.mu.Lock()
	h.refs++
	h.mu.Unlock()
	s.mu.Unlock()
	if !starter {
		<-h.started
		return h
	}
	var last uint64
	var created time.Time
	// A conversation that does not exist (yet) starts at 0.
	if m, err := s.log.Meta(context.Background(), id); err == nil {
		last, created = m.LastSeq, m.CreatedAt
	}
	h.mu.Lock()
	h.last = max(h.last, last)
	h.created = created
	h.mu.Unlock()
	unfollow := s.log.Follow(id, last, created)
	h.mu.Lock()
	dropped := h.dropped
	if !dropped {
		h.unfollow = unfollow
	}
	h.mu.Unlock()
	if dropped {
		// A delete dropped the hub while it started.
		unfollow()
	}
	close(h.started)
	return h
}

// release undoes acquire and drops the hub when nothing uses it.
func (s *Service) release(h *hub) {
	h.mu.Lock()
	h.refs--
	h.mu.Unlock()
	s.releaseIfIdle(h)
}

func (s *Service) releaseIfIdle(h *hub) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.idle() && s.hubs[h.id] == h {
		s.dropHub(h)
	}
}

// dropHub forgets h. Call with s.mu and h.mu held.
func (s *Service) dropHub(h *hub) {
	s.forgetHistory(h)
	delete(s.hubs, h.id)
	h.dropped = true
	if h.unfollow != nil { // nil while acquire starts h: it unfollows
		h.unfollow()
	}
	s.cfg.Metrics.Hubs.Dec()
}

// hubOf returns the hub of conversation id, or nil without one.
func (s *Service) hubOf(id string) *hub {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hubs[id]
}

// stopTurn cancels conversation's running turn, if any, with cause (see
// hub.stop).
func (s *Service) stopTurn(conversation, open string, cause error) {
	if h := s.hubOf(conversation); h != nil {
		h.stop(open, cause)
	}
}

// stop cancels h's running turn, if any, with cause. open, when not
// empty, is the id of the conversation's open turn, which the runner
// that takes it up cancels too if it is not running yet.
func (h *hub) stop(open string, cause error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if open != "" {
		h.cancelled = open
	}
	if h.running != nil {
		h.running.cancel(cause)
	}
}

// takeTurn is called by h's running runner once it knows the id of the
// turn it runs: if a cancel came for that turn before (see stopTurn),
// it cancels the runner now.
func (h *hub) takeTurn(turnID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cancelled == turnID && h.running != nil {
		h.running.cancel(errCancelled)
	}
}
