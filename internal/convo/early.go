package convo

import (
	"context"
	"errors"
	"sync"

	"github.com/chatgateway/gateway/protocol"
)

// errNotOpened cancels an early turn's model call when its send did not
// open the turn after all (it failed, or the conversation changed before
// its commit).
var errNotOpened = errors.New("convo: the send did not open the turn")

// earlyTurn is the turn a send opens in its own commit, started before
// that commit is durable: its history is known then (the conversation's
// messages up to the one the send read, and the new message), so the
// model's time to its first chunk overlaps the commit's fsyncs instead of
// following them. The reply stays held back until the send is durable
// (settle): nothing of it is stored or shown before, and nothing at all if
// the send did not open the turn.
//
// Only a plain conversation of a Log that this gateway alone writes starts
// turns early: an agent's turn reads its tool steps, and in cluster mode
// the turn waits for the conversation's lease, whose holder would call the
// model too.
type earlyTurn struct {
	// meta is the conversation as the send read it: no turn open or
	// pending. A conversation the send creates has a zero CreatedAt.
	meta *Meta
	turn string // the id the send gives the turn
	text string // the send's message

	// ctx is the model call's, a child of the runner's; cancel ends it
	// with errNotOpened before stored is closed if the send did not open
	// the turn (both set by startRunner).
	ctx    context.Context
	cancel context.CancelCauseFunc
	// stored is closed by settle, after it sets opened: whether the
	// send opened the turn.
	stored chan struct{}
	opened bool
	once   sync.Once
}

// startEarly starts a runner on e's turn, if the send about to store text
// with turn turnID in conversation m opens that turn and nothing runs on
// h, and returns it (nil otherwise). The send must settle it, and kick
// h unless it opened the turn.
func (s *Service) startEarly(h *hub, m *Meta, text, turnID string) *earlyTurn {
	if _, shared := s.log.(Leaser); shared || m.Agent != "" || m.OpenTurn != nil || len(m.Pending) > 0 {
		return nil
	}
	e := &earlyTurn{meta: m, turn: turnID, text: text, stored: make(chan struct{})}
	if !s.startRunner(h, e) {
		return nil
	}
	return e
}

// settle releases e's reply once the send's events are durable: res is
// its result, nil if it failed. Unless res opened e's turn right after the
// conversation as e.meta saw it (so that its history was the one the
// model got), the model call is cancelled and nothing of it is stored.
// It must not block: the Log calls it from Append.Durable.
func (e *earlyTurn) settle(res *Appended) {
	if e == nil {
		return
	}
	e.once.Do(func() {
		e.opened = e.opens(res)
		if !e.opened {
			e.cancel(errNotOpened)
		}
		close(e.stored)
	})
}

// opens reports whether res stored e's message and turn_start as the next
// events of the conversation e.meta describes.
func (e *earlyTurn) opens(res *Appended) bool {
	if res == nil || res.Duplicate != nil || len(res.Events) != 2 {
		return false
	}
	// The send's Build refuses a conversation deleted and made again
	// under its id: res is of the conversation e.meta describes.
	msg, start := res.Events[0], res.Events[1]
	return msg.Seq == e.meta.LastSeq+1 && start.Type == protocol.EventTurnStart && start.Turn == e.turn
}

// earlyTurn runs e's turn as turn does, calling the model at once and
// storing its reply once the send is stored; it returns whether another
// turn may be waiting. If the send did not open the turn, nothing was
// stored, and the send kicks a runner as for any send. ran is false when
// the history could not be read: the runner goes on as for any send,
// which reads it again and reports a failure.
func (s *Service) earlyTurn(ctx context.Context, h *hub, e *earlyTurn) (next, ran bool) {
	// As in turn, the model call first, then the history.
	slot := s.modelCalls.slot()
	defer slot.give()
	waited := slot.take(e.ctx) == nil
	// Exactly the messages the send saw: opened checks that nothing came
	// after them.
	var msgs []protocol.Message
	size := 0
	if waited && e.meta.LastSeq > 0 {
		var err error
		if msgs, size, err = s.readHistory(context.WithoutCancel(ctx), h, e.meta, e.meta.LastSeq+1); err != nil {
			<-e.stored
			return false, false
		}
	}
	msgs = append(msgs, protocol.Message{Role: protocol.RoleUser, Text: e.text, Turn: e.turn, Seq: e.meta.LastSeq + 1})
	if size+MessageBytes(&msgs[len(msgs)-1]) > s.cfg.MaxHistoryBytes {
		<-e.stored // the runner reads it again, and ends the turn
		return false, false
	}
	callCtx, span := s.startTurnSpan(e.ctx, h.id, e.turn, e.meta.Model)
	defer span.End()
	next, end := s.play(callCtx, h, e.meta, e.turn, modelHistory(msgs, e.turn, nil), e.stored, slot)
	if !e.opened {
		turnNotOpened(span)
	}
	if waited {
		s.keepHistory(h, msgs, end)
	}
	return next, true
}
