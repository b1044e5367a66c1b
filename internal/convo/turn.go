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

// Why a turn's context was cancelled.
var (
	errCancelled = errors.New("convo: turn cancelled")
	errShutdown  = errors.New("convo: gateway shutting down")
	errDeleted   = errors.New("convo: conversation deleted")
	errStorage   = errors.New("convo: storing the reply failed")
)

// turn is a running turn as its hub sees it.
type turn struct {
	cancel context.CancelCauseFunc
}

// chunkBuffer collects a turn's chunks while earlier ones are being
// committed. Consecutive text of one kind merges into one event, so a slow
// commit makes fewer, larger deltas instead of a backlog.
type chunkBuffer struct {
	turn string

	mu     sync.Mutex
	events []chunkEvent
	first  time.Time // when the first chunk arrived
	ready  chan struct{}
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
		b.events = append(b.events, chunkEvent{born: now, ev: &protocol.Event{Type: protocol.EventAction,
			Turn: b.turn, Name: c.Name, Input: validJSON(c.Input), Output: validJSON(c.Output)}})
	}
	if c.Kind != ChunkAction && c.Text != "" {
		if n := len(b.events); n > 0 && b.events[n-1].ev.Type == typ {
			b.events[n-1].ev.Text += c.Text
		} else {
			b.events = append(b.events, chunkEvent{born: now, ev: &protocol.Event{Type: typ, Turn: b.turn, Text: c.Text}})
		}
	}
	b.mu.Unlock()
	select {
	case b.ready <- struct{}{}:
	default:
	}
}

// take returns the buffered events and empties the buffer.
func (b *chunkBuffer) take() []chunkEvent {
	b.mu.Lock()
	defer b.mu.Unlock()
	evs := b.events
	b.events = nil
	return evs
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

// runTurn runs the next pending turn of h's conversation, if any, then
// looks for the one after it.
func (s *Service) runTurn(ctx context.Context, h *hub, t *turn) {
	defer s.turns.Done()
	defer t.cancel(nil)
	next := s.turn(ctx, h)
	s.turnDone(h, t, next)
}

// turn starts the oldest pending turn and streams it to the end. It
// returns whether another turn may be waiting.
func (s *Service) turn(ctx context.Context, h *hub) bool {
	m, err := s.st.meta(h.id)
	if err != nil || m.OpenTurn != nil || len(m.Pending) == 0 {
		return false
	}
	var start meta
	pt := m.Pending[0]
	err = s.st.do(func(b *batch) error {
		m, err := b.meta(h.id)
		if err != nil {
			return err
		}
		if m.OpenTurn != nil || len(m.Pending) == 0 || m.Pending[0] != pt {
			return protocol.Errorf(protocol.CodeBusy, "turn %s is no longer next", pt.Turn)
		}
		start = *m
		return b.append(m, &protocol.Event{Type: protocol.EventTurnStart, Turn: pt.Turn, Model: m.Model})
	})
	log := s.log.With("conversation", h.id, "turn", pt.Turn)
	if err != nil {
		log.Warn("turn did not start", "err", err)
		return false
	}
	msgs, err := s.st.allMessages(h.id)
	if err != nil {
		log.Error("read history", "err", err)
		s.endTurn(h.id, pt.Turn, &protocol.Event{StopReason: protocol.StopError, Error: protocol.AsError(ErrUnavailable)}, "")
		return true
	}
	req := ModelRequest{Model: start.Model, System: start.System, History: modelHistory(msgs, pt.MsgSeq),
		MaxTokens: start.MaxTokens, Temperature: start.Temperature}
	s.cfg.Metrics.Turns.Inc()
	end, text := s.stream(ctx, h.id, pt.Turn, req)
	s.cfg.Metrics.Turns.Dec()
	if end == nil { // the conversation was deleted
		return false
	}
	s.endTurn(h.id, pt.Turn, end, text)
	s.cfg.Metrics.TurnsEnded.WithLabelValues(end.StopReason).Inc()
	s.cfg.Metrics.Tokens.WithLabelValues(req.Model, "in").Add(float64(end.Usage.InputTokens))
	s.cfg.Metrics.Tokens.WithLabelValues(req.Model, "out").Add(float64(end.Usage.OutputTokens))
	log.Debug("turn ended", "stop_reason", end.StopReason)
	return true
}

// stream calls the model and stores its chunks as they come, coalescing
// while a commit is in flight. It returns the turn_end to store (nil when
// the conversation is gone) and the text stored in deltas.
func (s *Service) stream(ctx context.Context, id, turnID string, req ModelRequest) (*protocol.Event, string) {
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
		evs := buf.take()
		if len(evs) == 0 || ctx.Err() != nil && context.Cause(ctx) == errStorage {
			return
		}
		if err := s.appendTurnEvents(id, turnID, evs); err != nil {
			s.log.Error("store reply chunk", "conversation", id, "turn", turnID, "err", err)
			cancel(errStorage)
			return
		}
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
	end := &protocol.Event{Usage: &protocol.Usage{}}
	if first := buf.firstChunk(); !first.IsZero() {
		ttft := first.Sub(started)
		ms := ttft.Milliseconds()
		end.LatencyMS = &ms
		s.cfg.Metrics.FirstTokenSeconds.WithLabelValues(req.Model).Observe(ttft.Seconds())
	}
	cause := context.Cause(ctx)
	switch {
	case out.err == nil:
		end.StopReason = out.res.StopReason
		if end.StopReason == "" {
			end.StopReason = protocol.StopEndTurn
		}
		*end.Usage = out.res.Usage
	case errors.Is(cause, errDeleted):
		return nil, ""
	case errors.Is(cause, errCancelled):
		end.StopReason = protocol.StopCancelled
	case errors.Is(cause, errShutdown):
		end.StopReason = protocol.StopInterrupted
	case errors.Is(cause, errStorage):
		end.StopReason = protocol.StopError
		end.Error = protocol.AsError(ErrUnavailable)
	default:
		end.StopReason = protocol.StopError
		end.Error = modelError(out.err)
		s.log.Warn("model failed", "conversation", id, "turn", turnID, "err", out.err)
	}
	return end, text.String()
}

// modelError is the error a turn_end shows for a failed model call.
func modelError(err error) *protocol.Error {
	var perr *protocol.Error
	if errors.As(err, &perr) {
		return perr
	}
	return &protocol.Error{Code: protocol.CodeModelError, Message: err.Error()}
}

// appendTurnEvents stores a turn's chunk events, provided the turn is still
// the open one.
func (s *Service) appendTurnEvents(id, turnID string, evs []chunkEvent) error {
	return s.st.do(func(b *batch) error {
		m, err := b.meta(id)
		if err != nil {
			return err
		}
		if m.OpenTurn == nil || m.OpenTurn.Turn != turnID {
			return protocol.Errorf(protocol.CodeNotFound, "turn %s is not running", turnID)
		}
		for _, ce := range evs {
			if err := b.appendBorn(m, ce.ev, ce.born); err != nil {
				return err
			}
		}
		return nil
	})
}

// endTurn stores end (its Type, Turn and Message filled in here) as the
// turn's turn_end, with text as the assistant message.
func (s *Service) endTurn(id, turnID string, end *protocol.Event, text string) {
	end.Type = protocol.EventTurnEnd
	end.Turn = turnID
	end.Message = &protocol.Message{ID: newID("m_"), Role: protocol.RoleAssistant, Text: text, Turn: turnID}
	if end.Usage == nil {
		end.Usage = &protocol.Usage{}
	}
	err := s.st.do(func(b *batch) error {
		m, err := b.meta(id)
		if err != nil {
			return err
		}
		if m.OpenTurn == nil || m.OpenTurn.Turn != turnID {
			return protocol.Errorf(protocol.CodeNotFound, "turn %s is not running", turnID)
		}
		return b.append(m, end)
	})
	if err != nil {
		// The turn stays open in the log; the next start-up ends it as
		// interrupted.
		s.log.Error("store turn_end", "conversation", id, "turn", turnID, "err", err)
	}
}

// modelHistory orders a conversation's messages for the model: each user
// message up to and including the one at seq upTo, followed by the reply
// to it. Replies are stored after any message queued during their turn,
// so seq order alone would misplace them.
func modelHistory(msgs []protocol.Message, upTo uint64) []HistoryMessage {
	replies := map[string]string{}
	for _, m := range msgs {
		if m.Role == protocol.RoleAssistant {
			replies[m.Turn] = m.Text
		}
	}
	var out []HistoryMessage
	for _, m := range msgs {
		if m.Role != protocol.RoleUser || m.Seq > upTo {
			continue
		}
		out = append(out, HistoryMessage{Role: protocol.RoleUser, Text: m.Text})
		if r, ok := replies[m.Turn]; ok {
			out = append(out, HistoryMessage{Role: protocol.RoleAssistant, Text: r})
		}
	}
	return out
}

// recoverTurn ends a turn that a crash left open as "interrupted", keeping
// the text its stored deltas hold.
func (s *Service) recoverTurn(m *meta) error {
	var text strings.Builder
	after := m.OpenTurn.Seq
	for {
		frames, err := s.st.readEvents(m.ID, after, 0, replayPage)
		if err != nil {
			return fmt.Errorf("convo: recover %s: %w", m.ID, err)
		}
		if len(frames) == 0 {
			break
		}
		for _, f := range frames {
			ev, err := decodeEvent(f)
			if err != nil {
				return fmt.Errorf("convo: recover %s: %w", m.ID, err)
			}
			if ev.Type == protocol.EventDelta && ev.Turn == m.OpenTurn.Turn {
				text.WriteString(ev.Text)
			}
			after = ev.Seq
		}
	}
	s.endTurn(m.ID, m.OpenTurn.Turn, &protocol.Event{StopReason: protocol.StopInterrupted}, text.String())
	s.log.Info("ended a turn cut off by a restart", "conversation", m.ID, "turn", m.OpenTurn.Turn)
	return nil
}
