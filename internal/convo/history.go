package convo

import (
	"context"
	"slices"
	"time"

	"github.com/chatgateway/gateway/protocol"
)

// Bounds of the histories hubs keep between turns (see keepHistory) and
// between an agent turn's steps (see keepSteps), and what each message,
// tool use or result of one counts beyond its strings.
const (
	historyCacheBytes = 32 << 20
	historyHubBytes   = 1 << 20
	keptItemBytes     = 64
)

// recentMessages is how many of the newest messages readHistory reads to
// join them to a kept history: those sent since it was kept (usually the
// one whose turn this is), and the kept history's last.
const recentMessages = 2

// readHistory returns the messages of conversation m (as the caller read
// it) before seq before (0: all): the history h keeps, with the few
// messages sent since read from the Log, or else all of them from the
// Log, and the bytes they count against Config.MaxHistoryBytes (see
// historyBytes). It fails with ErrHistoryTooLong, having read no more
// than about that bound, if they take more.
func (s *Service) readHistory(ctx context.Context, h *hub, m *Meta, before uint64) ([]protocol.Message, int, error) {
	msgs, err := s.messagesBefore(ctx, h, m, before)
	if err != nil {
		return nil, 0, err
	}
	size := historyBytes(msgs)
	if size > s.cfg.MaxHistoryBytes {
		return nil, 0, ErrHistoryTooLong
	}
	return msgs, size, nil
}

// historyBytes is what msgs count against Config.MaxHistoryBytes.
func historyBytes(msgs []protocol.Message) int {
	n := 0
	for i := range msgs {
		n += MessageBytes(&msgs[i])
	}
	return n
}

// messagesBefore is readHistory's read: the Log's stops once it has
// Config.MaxHistoryBytes, failing with ErrHistoryTooLong if older
// messages remain.
func (s *Service) messagesBefore(ctx context.Context, h *hub, m *Meta, before uint64) ([]protocol.Message, error) {
	if kept, at := s.takeHistory(h, m); kept != nil {
		last := m.LastSeq
		if before > 0 {
			last = before - 1
		}
		if last == at {
			return kept, nil // nothing came since
		}
		recent, more, err := s.log.Messages(ctx, h.id, before, recentMessages, 0)
		if err != nil {
			return nil, err
		}
		if !more {
			return recent, nil
		}
		// recent joins kept if it reaches back to kept's last message.
		if i := slices.IndexFunc(recent, func(msg protocol.Message) bool { return msg.Seq > at }); i != 0 {
			if i < 0 {
				i = len(recent)
			}
			return append(kept, recent[i:]...), nil
		}
	}
	msgs, more, err := s.log.Messages(ctx, h.id, before, 0, s.cfg.MaxHistoryBytes)
	if err == nil && more {
		err = ErrHistoryTooLong
	}
	return msgs, err
}

// keptHistory is the history a hub keeps of its conversation between
// two model calls: a plain conversation's messages as its last turn left
// them (msgs, see keepHistory), or the history of an agent turn's next
// step (steps, see keepSteps). Both count against one budget.
type keptHistory struct {
	of   time.Time // the conversation's CreatedAt
	size int64     // what it counts against historyHubBytes and historyCacheBytes

	// msgs is a plain conversation's messages through seq at.
	msgs []protocol.Message
	at   uint64

	// steps is what step number step of agent turn turn sends the
	// model, but for the results of the step before it.
	steps []HistoryMessage
	turn  string
	step  int
}

// keep makes k what h keeps, in place of what it kept: within
// historyHubBytes and, with what all hubs keep, historyCacheBytes; past
// either, or once h is dropped (a delete), it keeps nothing.
func (s *Service) keep(h *hub, k keptHistory) {
	h.mu.Lock()
	defer h.mu.Unlock()
	s.forgetHistory(h)
	// dropHub, which forgets what h keeps, sets h.dropped under h.mu.
	if h.dropped || k.size > historyHubBytes {
		return
	}
	if s.historyBytes.Add(k.size) > historyCacheBytes {
		s.historyBytes.Add(-k.size)
		return
	}
	h.kept = k
}

// take returns, and forgets, what h keeps.
func (s *Service) take(h *hub) keptHistory {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := h.kept
	s.forgetHistory(h)
	return k
}

// forgetHistory drops what h keeps. Call with h.mu held.
func (s *Service) forgetHistory(h *hub) {
	s.historyBytes.Add(-h.kept.size)
	h.kept = keptHistory{}
}

// keepHistory keeps on h the conversation's messages through the turn_end
// end stored: msgs (all those before the turn's end that its model saw)
// and the reply, if nothing else came meanwhile (no message is pending,
// and the turn_end is the log's end), so that the next turn need not
// read them back. end nil (no turn_end stored) keeps nothing.
func (s *Service) keepHistory(h *hub, msgs []protocol.Message, end *Appended) {
	if end == nil || len(end.Events) != 1 {
		return
	}
	ev, m := end.Events[0], end.Meta
	if m == nil || m.Agent != "" || len(m.Pending) > 0 || m.OpenTurn != nil || m.LastSeq != ev.Seq || ev.Message == nil {
		return
	}
	msgs = append(msgs, protocol.Message{Role: protocol.RoleAssistant, Text: ev.Message.Text, Turn: ev.Turn, Seq: ev.Seq})
	var size int64
	for _, msg := range msgs {
		size += int64(len(msg.Text)+len(msg.Turn)) + keptItemBytes
	}
	s.keep(h, keptHistory{of: m.CreatedAt, size: size, msgs: msgs, at: ev.Seq})
}

// takeHistory returns, and forgets, the messages h keeps of conversation
// m (none for another conversation created under its id), and the seq
// they run through.
func (s *Service) takeHistory(h *hub, m *Meta) ([]protocol.Message, uint64) {
	k := s.take(h)
	if !k.of.Equal(m.CreatedAt) || k.at > m.LastSeq {
		return nil, k.at
	}
	return k.msgs, k.at
}
