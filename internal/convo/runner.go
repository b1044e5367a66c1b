package convo

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/chatgateway/gateway/internal/pause"
	"github.com/chatgateway/gateway/protocol"
)

// Why a turn's context was cancelled.
var (
	errCancelled = errors.New("convo: turn cancelled")
	errShutdown  = errors.New("convo: gateway shutting down")
	errDeleted   = errors.New("convo: conversation deleted")
	errStorage   = errors.New("convo: storing the reply failed")
)

// errTurnGone refuses a turn's write when the turn is no longer the open
// one (its conversation was deleted and made again under the same id).
var errTurnGone = errors.New("convo: the turn is no longer open")

// turn is a running turn runner as its hub sees it.
type turn struct {
	cancel context.CancelCauseFunc
}

// kick starts a turn runner for h unless one is running (or the service
// is draining or closed). The runner starts the pending turns one after
// another. The caller holds h (acquire, or turnDone for the runner that
// ends), so that h is still the conversation's hub: a hub dropped as
// idle is forgotten, and a runner started on it would run beside the one
// a new hub of the conversation starts.
func (s *Service) kick(h *hub) { s.startRunner(h, nil) }

// startRunner starts a turn runner for h, which runs e first when not nil
// (see earlyTurn), unless one is running, h's conversation was deleted,
// or the service is draining or closed; it reports whether it started
// one. A kick that finds a runner in progress is recorded for it to look
// again; an early turn is not (its send kicks if it does not open the
// turn).
func (s *Service) startRunner(h *hub, e *earlyTurn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	// A runner may not start once Drain waits for them (a WaitGroup must
	// not grow while waited for). A send that opened its turn as Drain
	// began leaves it for the next start to end as interrupted.
	if s.closed || s.draining.Load() {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.deleted {
		return false
	}
	if h.running != nil {
		h.kicked = h.kicked || e == nil
		return false
	}
	ctx, cancel := context.WithCancelCause(s.turnCtx)
	t := &turn{cancel: cancel}
	h.running = t
	s.turns.Add(1)
	if e != nil {
		e.ctx, e.cancel = context.WithCancelCause(ctx)
	}
	go s.runTurn(ctx, h, t, e)
	return true
}

// turnDone clears h's running turn and, if another may be pending (the
// runner says so, or a kick came meanwhile), kicks. h is held from the
// moment its runner is cleared until the kick has started the next:
// idle in between, it could be dropped and another hub of the
// conversation start a runner of its own on the same turn.
func (s *Service) turnDone(h *hub, t *turn, next bool) {
	h.mu.Lock()
	if h.running == t {
		h.running = nil
		next = next || h.kicked
		h.kicked = false
	}
	if next {
		h.refs++
	}
	h.mu.Unlock()
	if !next {
		s.releaseIfIdle(h)
		return
	}
	s.kick(h)
	s.release(h)
}

// runTurn runs e's turn if a send is opening it (e not nil), else the
// open or next pending turn of h's conversation, if any, then looks for
// the one after it.
func (s *Service) runTurn(ctx context.Context, h *hub, t *turn, e *earlyTurn) {
	defer s.turns.Done()
	defer t.cancel(nil)
	var next bool
	if l, ok := s.log.(Leaser); ok {
		next = s.leasedTurn(ctx, l, h, t)
	} else {
		next = s.turn(ctx, h, e)
	}
	s.turnDone(h, t, next)
}

// turn runs one turn to its end: e's when not nil, else the one a send
// opened in its own commit, or else the oldest pending one, which it
// opens. It returns whether another turn may be waiting.
func (s *Service) turn(ctx context.Context, h *hub, e *earlyTurn) bool {
	if e != nil {
		if next, ran := s.earlyTurn(ctx, h, e); ran {
			return next
		}
	}
	m, err := s.openTurn(h)
	if err != nil || m == nil {
		return false
	}
	turnID := m.OpenTurn.Turn
	h.takeTurn(turnID)
	ctx, span := s.startTurnSpan(ctx, h.id, turnID, m.Model)
	defer span.End()
	// The turn waits for its model call before it reads the history, so
	// that a waiting turn holds no messages. One stopped meanwhile reads
	// none: stream then ends it with the right stop reason, calling no
	// model.
	slot := s.modelCalls.slot()
	defer slot.give()
	if m.Agent != "" {
		// An agent's turn reads its history before each step instead
		// (see agentRun.history).
		next, _ := s.play(ctx, h, m, turnID, nil, nil, slot)
		return next
	}
	var msgs []protocol.Message
	waited := slot.take(ctx) == nil
	if waited {
		msgs, _, err = s.readHistory(context.WithoutCancel(ctx), h, m, 0)
	}
	if err != nil {
		slot.give() // the turn calls no model: the next in line may
		s.finishTurn(ctx, h.id, turnID, m.Model, s.historyFailed(h.id, turnID, err), "")
		return true
	}
	next, end := s.play(ctx, h, m, turnID, modelHistory(msgs, turnID, nil), nil, slot)
	if waited {
		s.keepHistory(h, msgs, end)
	}
	return next
}

// historyFailed is the turn_end of turn turnID of conversation id, whose
// history could not be read (err): too_large past
// Config.MaxHistoryBytes, else unavailable.
func (s *Service) historyFailed(id, turnID string, err error) *protocol.Event {
	failure := ErrUnavailable
	if errors.Is(err, ErrHistoryTooLong) {
		failure = ErrHistoryTooLong
		s.logger.Info("history too long for a turn", "conversation", id, "turn", turnID, "limit", s.cfg.MaxHistoryBytes)
	} else {
		s.logger.Error("read history", "conversation", id, "turn", turnID, "err", err)
	}
	return &protocol.Event{StopReason: protocol.StopError, Error: protocol.AsError(failure)}
}

// play runs open turn turnID of conversation m (served by h) with history
// (none for an agent's turn, which reads its own) and stores its end;
// after and slot are as for stream. It returns false when the
// conversation was deleted meanwhile, or when an early turn's send did
// not open it: then nothing is stored, and no other turn waits for this
// runner. stored is the turn_end's append, when it was stored.
func (s *Service) play(ctx context.Context, h *hub, m *Meta, turnID string, history []HistoryMessage, after <-chan struct{}, slot *callSlot) (ok bool, stored *Appended) {
	id := h.id
	req := ModelRequest{Model: m.Model, System: m.System, History: history,
		MaxTokens: m.MaxTokens, Temperature: m.Temperature}
	s.cfg.Metrics.Turns.Inc()
	var end *protocol.Event
	var text string
	if m.Agent != "" {
		end, text = s.agentTurn(ctx, h, m, req, slot)
	} else {
		room := MaxReplyBytes
		end, text, _ = s.stream(ctx, id, turnID, req, after, &room, slot)
	}
	s.cfg.Metrics.Turns.Dec()
	if end == nil {
		return false, nil
	}
	return true, s.finishTurn(ctx, id, turnID, req.Model, end, text)
}

// finishTurn stores end as the turn_end of turn turnID of conversation
// id, with text as its reply (see endTurn), and records how the turn
// ended: on ctx's span, in the metrics (its stop reason, and the tokens
// of model), and in the log. A turn that runs here ends through it,
// whether it called the model or not (a history too long), so that a
// plain turn and an agent's count alike. It returns the append that
// stored the turn_end (nil if none did).
func (s *Service) finishTurn(ctx context.Context, id, turnID, model string, end *protocol.Event, text string) *Appended {
	stored, _ := s.endTurn(s.turnCtx, id, turnID, end, text)
	turnEnded(ctx, end)
	s.cfg.Metrics.TurnsEnded.WithLabelValues(end.StopReason).Inc()
	label := s.cfg.Metrics.ModelLabel(model, false)
	s.cfg.Metrics.Tokens.WithLabelValues(label, "in").Add(float64(end.Usage.InputTokens))
	s.cfg.Metrics.Tokens.WithLabelValues(label, "out").Add(float64(end.Usage.OutputTokens))
	s.logger.Debug("turn ended", "conversation", id, "turn", turnID, "stop_reason", end.StopReason)
	return stored
}

// openTurn returns the metadata of h's conversation with the turn to run
// open: the turn a send opened (in this process only the runner ends
// turns, so an open turn is one no runner has taken yet), or the oldest
// pending one, opened now unless the service is draining. It returns nil
// when there is nothing to run, also when the conversation under h's id
// is not the one h serves (see current).
func (s *Service) openTurn(h *hub) (*Meta, error) {
	id := h.id
	m, err := s.log.Meta(context.Background(), id)
	if err != nil || !s.current(h, m) {
		return nil, err
	}
	if m.OpenTurn != nil {
		return m, nil
	}
	if len(m.Pending) == 0 || s.draining.Load() {
		return nil, nil
	}
	pt := m.Pending[0]
	var res *Appended
	err = s.retry(s.turnCtx, id, "store turn_start", func() error {
		res, err = s.log.Append(context.Background(), &Append{Conversation: id, Build: func(m *Meta) ([]Draft, error) {
			if m.OpenTurn != nil || len(m.Pending) == 0 || m.Pending[0] != pt {
				return nil, fmt.Errorf("convo: turn %s is no longer next", pt.Turn)
			}
			return []Draft{{Event: &protocol.Event{Type: protocol.EventTurnStart, Turn: pt.Turn, Model: m.Model, Agent: m.Agent}}}, nil
		}})
		return err
	})
	if err != nil {
		s.logger.Warn("turn did not start", "conversation", id, "turn", pt.Turn, "err", err)
		return nil, err
	}
	return res.Meta, nil
}

// endTurn stores end (its Type, Turn and Message filled in here) as the
// turn's turn_end, with text as the assistant message. While storage
// fails it retries until ctx is done, so that the conversation does not
// stay with a turn open and its later messages unanswered: the runners
// pass s.turnCtx, which ends when the service closes (the next start then
// ends the turn as interrupted). A conversation that is gone is not an
// error. It returns the append that stored the turn_end (nil if none did).
func (s *Service) endTurn(ctx context.Context, id, turnID string, end *protocol.Event, text string) (*Appended, error) {
	end.Type = protocol.EventTurnEnd
	end.Turn = turnID
	end.Message = &protocol.Message{ID: newID("m_"), Role: protocol.RoleAssistant, Text: text, Turn: turnID}
	if end.Usage == nil {
		end.Usage = &protocol.Usage{}
	}
	var res *Appended
	err := s.retry(ctx, id, "store turn_end", func() error {
		var err error
		res, err = s.log.Append(context.WithoutCancel(ctx), &Append{Conversation: id, Build: func(m *Meta) ([]Draft, error) {
			if m.OpenTurn == nil || m.OpenTurn.Turn != turnID {
				return nil, errTurnGone
			}
			c := *end
			msg := *end.Message
			c.Message = &msg
			return []Draft{{Event: &c}}, nil
		}})
		return err
	})
	switch {
	case errors.Is(err, ErrNotFound) || errors.Is(err, errTurnGone):
		return nil, nil
	case err != nil:
		s.logger.Error("store turn_end", "conversation", id, "turn", turnID, "err", err)
		return nil, err
	}
	return res, nil
}

// Backoff bounds of retry.
const (
	retryFirst = 20 * time.Millisecond
	retryMax   = 2 * time.Second
)

// retry calls op until it succeeds or fails with something else than
// ErrUnavailable (returned as is), waiting longer after each failure, up
// to retryMax; once ctx is done it stops with op's last error.
func (s *Service) retry(ctx context.Context, id, what string, op func() error) error {
	wait := retryFirst
	for failures := 0; ; failures++ {
		err := op()
		if !errors.Is(err, ErrUnavailable) {
			if failures > 0 && err == nil {
				s.logger.Info(what+" succeeded again", "conversation", id, "failures", failures)
			}
			return err
		}
		if failures == 0 {
			s.logger.Warn(what+" failed, retrying", "conversation", id, "err", err)
		}
		if perr := pause.For(ctx, wait); perr != nil {
			return err
		}
		wait = min(2*wait, retryMax)
	}
}

// modelHistory orders a conversation's messages for the model: each user
// message up to and including the one that turn answers, followed by the
// reply to it: the messages of its steps when it called tools (steps, by
// turn), else the stored reply. Replies are stored after any message
// queued during their turn, so seq order alone would misplace them. The
// message of turn, open, is followed by the steps it has made, if any:
// each with its tool results, without the step to come.
func modelHistory(msgs []protocol.Message, turn string, steps map[string][]HistoryMessage) []HistoryMessage {
	replies := map[string]string{}
	var upTo uint64
	for _, m := range msgs {
		switch {
		case m.Role == protocol.RoleAssistant:
			replies[m.Turn] = m.Text
		case m.Turn == turn:
			upTo = m.Seq
		}
	}
	// Each message makes one entry at most, but for a turn's steps: one
	// allocation for a plain conversation's history, not one a doubling.
	out := make([]HistoryMessage, 0, len(msgs))
	for _, m := range msgs {
		if m.Role != protocol.RoleUser || m.Seq > upTo {
			continue
		}
		out = append(out, HistoryMessage{Role: protocol.RoleUser, Text: m.Text})
		r, ok := replies[m.Turn]
		switch {
		case m.Turn == turn && steps[turn] != nil:
			// toolSteps ends a turn with the text after its last calls:
			// none yet, for the step to come.
			out = append(out, steps[turn][:len(steps[turn])-1]...)
		case !ok:
		case steps[m.Turn] != nil:
			out = append(out, steps[m.Turn]...)
		default:
			out = append(out, HistoryMessage{Role: protocol.RoleAssistant, Text: r})
		}
	}
	return out
}

// modelError is the error a turn_end shows for a failed model call.
func modelError(err error) *protocol.Error {
	var perr *protocol.Error
	if errors.As(err, &perr) {
		return perr
	}
	return &protocol.Error{Code: protocol.CodeModelError, Message: err.Error()}
}

// recover ends the turns a crash left open as "interrupted", keeping the
// text their stored deltas hold, and starts the queued turns. With a Log
// shared by several gateways, a turn open in the log may run on another
// gateway: only the orphans are kicked, as the sweep does, and the
// runner, once it holds the lease, ends the cut-off ones.
func (s *Service) recover() error {
	list := s.log.Unfinished
	l, shared := s.log.(Leaser)
	if shared {
		list = l.Orphans
	}
	unfinished, err := list(context.Background())
	if err != nil {
		return fmt.Errorf("convo: recover: %w", err)
	}
	for _, m := range unfinished {
		if m.OpenTurn != nil && !shared {
			if err := s.recoverTurn(m); err != nil {
				return err
			}
		}
	}
	for _, m := range unfinished {
		if len(m.Pending) > 0 || shared {
			h := s.acquire(m.ID)
			s.kick(h)
			s.release(h)
		}
	}
	return nil
}

// recoverTurn ends m's open turn as "interrupted", with the text of its
// stored deltas.
func (s *Service) recoverTurn(m *Meta) error {
	cut, err := s.cutTurn(m)
	if err != nil {
		return err
	}
	// One try: storage that cannot write at start-up fails the start.
	once, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.closeCalls(m); err != nil {
		return fmt.Errorf("convo: recover %s: %w", m.ID, err)
	}
	if err := s.endCutOff(once, m, cut); err != nil {
		return fmt.Errorf("convo: recover %s: %w", m.ID, err)
	}
	s.logger.Info("ended a turn cut off by a restart", "conversation", m.ID, "turn", m.OpenTurn.Turn)
	return nil
}

// endCutOff ends m's open turn, cut off as cut tells (by a restart, or on
// another gateway), as "interrupted" with the text of its stored deltas;
// once stored, it counts among the ended turns, as a turn that runs to
// its end does (see finishTurn).
func (s *Service) endCutOff(ctx context.Context, m *Meta, cut cutOff) error {
	end := &protocol.Event{StopReason: protocol.StopInterrupted, Steps: cut.steps}
	stored, err := s.endTurn(ctx, m.ID, m.OpenTurn.Turn, end, cut.text)
	if stored != nil {
		s.cfg.Metrics.TurnsEnded.WithLabelValues(end.StopReason).Inc()
	}
	return err
}

// cutOff is what the stored events of an open turn tell of it.
type cutOff struct {
	text string // the text of its deltas
	// streamed says whether it stored any event of its reply (delta,
	// thinking, action, tool call...).
	streamed bool
	// steps is the model calls of an agent's turn that the events show:
	// the highest step of its tool calls, and one more when model output
	// (delta, thinking) follows the last tool call: a step cut off before
	// it asked for tools, or before it ended.
	steps int
}

// cutTurn reads the stored events of m's open turn.
func (s *Service) cutTurn(m *Meta) (cutOff, error) {
	var cut cutOff
	var text strings.Builder
	output := false // model output since the last tool call
	after := m.OpenTurn.Seq
	for {
		frames, err := s.log.Events(context.Background(), m.ID, after, 0, replayPage)
		if err != nil {
			return cutOff{}, fmt.Errorf("convo: recover %s: %w", m.ID, err)
		}
		if len(frames) == 0 {
			// A log written before replies were bounded may hold more
			// text than a turn_end can: its end keeps what fits, so
			// that the turn ends at all (see MaxReplyBytes).
			cut.text, _ = fitText(text.String(), MaxReplyBytes)
			if len(cut.text) < text.Len() {
				s.logger.Warn("a cut-off turn's text is over the reply limit: its turn_end keeps the start", "conversation", m.ID,
					"turn", m.OpenTurn.Turn, "limit", MaxReplyBytes)
			}
			if output && m.Agent != "" {
				cut.steps++
			}
			return cut, nil
		}
		for _, f := range frames {
			ev, err := decodeEvent(f)
			if err != nil {
				return cutOff{}, fmt.Errorf("convo: recover %s: %w", m.ID, err)
			}
			if ev.Turn == m.OpenTurn.Turn && ev.Type != protocol.EventTurnStart {
				cut.streamed = true
				switch ev.Type {
				case protocol.EventDelta:
					text.WriteString(ev.Text)
					output = true
				case protocol.EventThinking:
					output = true
				case protocol.EventToolCall:
					cut.steps = max(cut.steps, ev.Step)
					output = false
				}
			}
			after = ev.Seq
		}
	}
}

// closeCalls gives each tool call that m's open turn left open a
// tool_result "interrupted", so that every call of the turn ends before
// its turn_end.
func (s *Service) closeCalls(m *Meta) error {
	if len(m.OpenTurn.Calls) == 0 {
		return nil
	}
	turnID := m.OpenTurn.Turn
	_, err := s.log.Append(context.Background(), &Append{Conversation: m.ID, Build: func(m *Meta) ([]Draft, error) {
		if m.OpenTurn == nil || m.OpenTurn.Turn != turnID {
			return nil, errTurnGone
		}
		var drafts []Draft
		for _, c := range m.OpenTurn.Calls {
			ms := max(time.Since(c.Since), 0).Milliseconds()
			drafts = append(drafts, Draft{Event: &protocol.Event{Type: protocol.EventToolResult, Turn: turnID, Call: c.Call,
				Name: c.Name, Status: protocol.ResultInterrupted, ToolError: "the gateway stopped during the call", DurationMS: &ms}})
		}
		return drafts, nil
	}})
	if errors.Is(err, errTurnGone) {
		return nil
	}
	return err
}
