package convo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/chatgateway/gateway/protocol"
)

// chunkBuffer collects a turn's chunks while earlier ones are being
// committed. Consecutive text of one kind merges into one event, so a slow
// commit makes fewer, larger deltas instead of a backlog. The events stay
// in the buffer until stored: the append that stores them takes them when
// its commit runs (peek), not when it is queued, so that the chunks that
// came while it waited for the commit go with it. A chunk costs no event
// until then: the buffer keeps each event's text and makes the event when
// a peek hands it out.
type chunkBuffer struct {
	turn string

	mu     sync.Mutex
	events []bufferedEvent
	// sealed is how many of the first events a peek has handed out: no
	// chunk merges into them any more, the stored text must not grow.
	sealed int
	first  time.Time // when the first chunk arrived
	ready  chan struct{}
}

// bufferedEvent is an event the buffer will make: text of kind typ, or an
// action, with when its first chunk came.
type bufferedEvent struct {
	typ    string
	text   string
	action *protocol.Event // the action event, for typ EventAction
	born   time.Time
}

// chunkEvent is an event made from chunks, with when its first chunk came.
type chunkEvent struct {
	ev   *protocol.Event
	born time.Time
}

func newChunkBuffer(turnID string) *chunkBuffer {
	return &chunkBuffer{turn: turnID, ready: make(chan struct{}, 1)}
}

// emit is the Model's callback: it never waits for storage.
func (b *chunkBuffer) emit(c Chunk) {
	now := time.Now()
	b.mu.Lock()
	if b.first.IsZero() {
		b.first = now
	}
	typ := protocol.EventDelta
	switch c.Kind {
	case ChunkThinking:
		typ = protocol.EventThinking
	case ChunkAction:
		b.events = append(b.events, bufferedEvent{typ: protocol.EventAction, born: now, action: &protocol.Event{Type: protocol.EventAction,
			Turn: b.turn, Name: c.Name, Input: validJSON(c.Input), Output: validJSON(c.Output)}})
	}
	if c.Kind != ChunkAction && c.Text != "" {
		if n := len(b.events); n > b.sealed && b.events[n-1].typ == typ {
			b.events[n-1].text += c.Text
		} else {
			b.events = append(b.events, bufferedEvent{typ: typ, text: c.Text, born: now})
		}
	}
	b.mu.Unlock()
	select {
	case b.ready <- struct{}{}:
	default:
	}
}

// peek returns the buffered events, made anew (the Log stamps them), and
// seals them: chunks that come later make new events. The events stay
// buffered until drop.
func (b *chunkBuffer) peek() []chunkEvent {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.sealed = len(b.events)
	evs := make([]chunkEvent, len(b.events))
	for i, be := range b.events {
		var ev *protocol.Event
		if be.action != nil {
			c := *be.action
			ev = &c
		} else {
			ev = &protocol.Event{Type: be.typ, Turn: b.turn, Text: be.text}
		}
		evs[i] = chunkEvent{ev: ev, born: be.born}
	}
	return evs
}

// drop removes the first n events, which a peek returned and which are
// stored now.
func (b *chunkBuffer) drop(n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.events = b.events[n:]
	b.sealed = max(0, b.sealed-n)
}

// pending reports whether events are buffered.
func (b *chunkBuffer) pending() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.events) > 0
}

// firstChunk returns when the first chunk arrived (zero: none yet).
func (b *chunkBuffer) firstChunk() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.first
}

// validJSON returns raw if it is a JSON value, raw as a JSON string if it
// is not, and nil if it is empty; a model's bad tool input must not make
// the event unstorable.
func validJSON(raw []byte) []byte {
	if len(raw) == 0 {
		return nil
	}
	if json.Valid(raw) {
		return raw
	}
	quoted, _ := json.Marshal(string(raw)) // a string always marshals
	return quoted
}

func decodeEvent(frame []byte) (*protocol.Event, error) {
	var ev protocol.Event
	if err := json.Unmarshal(frame, &ev); err != nil {
		return nil, fmt.Errorf("corrupt event: %w", err)
	}
	return &ev, nil
}

// stream calls the model and stores its chunks as they come, coalescing
// while a commit is in flight. It returns the turn_end to store (nil when
// the conversation is gone), the text stored in deltas and the tool uses
// the model asked for. after, when not nil, is closed once the events that
// must precede the reply's (the previous step's tool results, or the
// user message of an early turn) are stored: the model is called at once,
// and the reply stored after them; if they were not (ctx's cause is then
// errNotOpened), nothing of it is.
func (s *Service) stream(ctx context.Context, id, turnID string, req ModelRequest, after <-chan struct{}) (*protocol.Event, string, []ToolUse) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	buf := newChunkBuffer(turnID)
	type outcome struct {
		res Result
		err error
	}
	done := make(chan outcome, 1)
	started := time.Now()
	go func() {
		res, err := s.model.Stream(ctx, req, buf.emit)
		done <- outcome{res, err}
	}()
	var text strings.Builder
	store := func() {
		if after != nil {
			<-after
			after = nil
		}
		if !buf.pending() || ctx.Err() != nil && (context.Cause(ctx) == errStorage || context.Cause(ctx) == errNotOpened) {
			return
		}
		evs, err := s.appendTurnEvents(id, turnID, buf)
		switch {
		case errors.Is(err, ErrNotFound) || errors.Is(err, errTurnGone):
			// Deleted while streaming: a user's action, not a failure.
			cancel(errDeleted)
			return
		case err != nil:
			s.logger.Error("store reply chunk", "conversation", id, "turn", turnID, "err", err)
			cancel(errStorage)
			return
		}
		buf.drop(len(evs))
		for _, ce := range evs {
			if ce.ev.Type == protocol.EventDelta {
				text.WriteString(ce.ev.Text)
			}
		}
	}
	var out outcome
	for running := true; running; {
		select {
		case <-buf.ready:
			store()
		case out = <-done:
			store()
			running = false
		}
	}
	if after != nil {
		<-after // what follows the reply, its turn_end included, comes after
	}
	end := &protocol.Event{Usage: &protocol.Usage{}}
	if first := buf.firstChunk(); !first.IsZero() {
		ttft := first.Sub(started)
		ms := ttft.Milliseconds()
		end.LatencyMS = &ms
		s.cfg.Metrics.FirstTokenSeconds.WithLabelValues(req.Model).Observe(ttft.Seconds())
	}
	cause := context.Cause(ctx)
	switch {
	case errors.Is(cause, errDeleted), errors.Is(cause, errLeaseLost), errors.Is(cause, errNotOpened):
		// Deleted, or another gateway ends the turn, or it never opened.
		return nil, "", nil
	case errors.Is(cause, errStorage):
		// Before a model that finished: its last chunks may be the ones
		// not stored, and the reply is then incomplete.
		end.StopReason = protocol.StopError
		end.Error = protocol.AsError(ErrUnavailable)
		if out.err == nil {
			*end.Usage = out.res.Usage
		}
	case out.err == nil:
		end.StopReason = out.res.StopReason
		if end.StopReason == "" {
			end.StopReason = protocol.StopEndTurn
		}
		*end.Usage = out.res.Usage
	case errors.Is(cause, errCancelled):
		end.StopReason = protocol.StopCancelled
	case errors.Is(cause, errShutdown):
		end.StopReason = protocol.StopInterrupted
	default:
		end.StopReason = protocol.StopError
		end.Error = modelError(out.err)
		s.logger.Warn("model failed", "conversation", id, "turn", turnID, "err", out.err)
	}
	return end, text.String(), out.res.ToolUses
}
