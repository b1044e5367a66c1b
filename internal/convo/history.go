package convo

import (
	"context"
	"slices"
	"time"

	"github.com/chatgateway/gateway/protocol"
)

// Bounds of the histories hubs keep between turns (see keepHistory).
const (
	historyCacheBytes = 32 << 20
	historyHubBytes   = 1 << 20
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

// keepHistory keeps on h the conversation's messages through the turn_end
// end stored: msgs (all those before the turn's end that its model saw)
// and the reply, if nothing else came meanwhile (no message is pending,
// and the turn_end is the log's end), so that the next turn need not
// read them back. Within historyCacheBytes for all hubs. end nil (no
// turn_end stored) keeps nothing.
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
		size += int64(len(msg.Text)+len(msg.Turn)) + 64
	}
	// Under s.mu, so that a hub dropped meanwhile (a delete) keeps
	// nothing: dropHub forgets what it keeps.
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hubs[h.id] != h {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	s.forgetHistory(h)
	if size > historyHubBytes || s.historyBytes.Add(size) > historyCacheBytes {
		s.historyBytes.Add(-size)
		return
	}
	h.history, h.historyAt, h.historyOf, h.historySize = msgs, ev.Seq, m.CreatedAt, size
}

// takeHistory returns, and forgets, the history h keeps of conversation
// m (none for another conversation created under its id), and the seq it
// runs through.
func (s *Service) takeHistory(h *hub, m *Meta) ([]protocol.Message, uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	msgs, at := h.history, h.historyAt
	if !h.historyOf.Equal(m.CreatedAt) || at > m.LastSeq {
		msgs = nil
	}
	s.forgetHistory(h)
	return msgs, at
}

// forgetHistory drops the history h keeps. Call with h.mu held.
func (s *Service) forgetHistory(h *hub) {
	s.historyBytes.Add(-h.historySize)
	h.history, h.historyAt, h.historyOf, h.historySize = nil, 0, time.Time{}, 0
}
