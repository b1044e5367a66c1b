package convo

import (
	"unicode/utf8"

	"github.com/chatgateway/gateway/protocol"
)

// meta is a conversation's stored metadata. Besides what clients see it
// tracks the turn bookkeeping that crash recovery needs; both are updated
// in the transaction that stores each event (see apply), so they can never
// disagree with the log.
type meta struct {
	protocol.Conversation
	Owner string `json:"owner"`
	// OpenTurn is the turn with a turn_start and no turn_end yet.
	OpenTurn *openTurn `json:"open_turn,omitempty"`
	// Pending lists the stored user messages whose turns have not started,
	// in seq order.
	Pending []pendingTurn `json:"pending,omitempty"`
}

type openTurn struct {
	Turn string `json:"turn"`
	Seq  uint64 `json:"seq"` // the turn_start's seq
}

type pendingTurn struct {
	Turn   string `json:"turn"`
	MsgSeq uint64 `json:"msg_seq"`
}

// titleLen is how much of the first message becomes a conversation's
// default title, in bytes.
const titleLen = 60

// apply updates m for a stored event ev.
func (m *meta) apply(ev *protocol.Event) {
	m.LastSeq = ev.Seq
	m.UpdatedAt = ev.TS
	switch ev.Type {
	case protocol.EventMessage:
		if ev.Message.Role != protocol.RoleUser {
			return
		}
		m.Pending = append(m.Pending, pendingTurn{Turn: ev.Message.Turn, MsgSeq: ev.Seq})
		if m.Title == "" {
			m.Title = titleFrom(ev.Message.Text)
		}
	case protocol.EventTurnStart:
		for i, p := range m.Pending {
			if p.Turn == ev.Turn {
				m.Pending = append(m.Pending[:i:i], m.Pending[i+1:]...)
				break
			}
		}
		m.OpenTurn = &openTurn{Turn: ev.Turn, Seq: ev.Seq}
	case protocol.EventTurnEnd:
		m.OpenTurn = nil
	}
}

// titleFrom makes a title from the first line of a message, cut at a rune
// boundary.
func titleFrom(text string) string {
	for i, r := range text {
		if r == '\n' {
			text = text[:i]
			break
		}
	}
	if len(text) <= titleLen {
		return text
	}
	cut := titleLen
	for cut > 0 && !utf8.RuneStart(text[cut]) {
		cut--
	}
	return text[:cut] + "…"
}
