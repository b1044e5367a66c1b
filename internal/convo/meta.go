package convo

import (
	"slices"
	"time"
	"unicode/utf8"

	"github.com/chatgateway/gateway/protocol"
)

// Meta is a conversation's stored metadata. Besides what clients see (the
// embedded protocol.Conversation) it tracks the turn bookkeeping that
// scheduling and crash recovery need. Every field but the ones set at
// creation follows from the conversation's events through Apply, which
// every Log calls for each event it stores, so it never disagrees with
// the log.
type Meta struct {
	protocol.Conversation
	// Owner is the id of the user who created the conversation.
	Owner string `json:"owner"`
	// OpenTurn is the turn with a turn_start and no turn_end yet.
	OpenTurn *OpenTurn `json:"open_turn,omitempty"`
	// Pending lists the stored user messages whose turns have not started,
	// in seq order.
	Pending []PendingTurn `json:"pending,omitempty"`
}

// OpenTurn is a conversation's running (or, after a crash, cut-off) turn.
type OpenTurn struct {
	Turn string `json:"turn"`
	Seq  uint64 `json:"seq"` // the turn_start's seq
	// Calls are the agent's tool calls of the turn that have no
	// tool_result yet, in the order of their tool_call events: a restart
	// closes them, and answers (approve, tool_output) are checked against
	// them.
	Calls []OpenCall `json:"calls,omitempty"`
}

// OpenCall is a tool call without a tool_result yet.
type OpenCall struct {
	Call string `json:"call"`
	Name string `json:"name"`
	// Status is the tool_call's status; running once approved, denied
	// once refused.
	Status string `json:"status"`
	// Since is when the tool_call was stored.
	Since time.Time `json:"since"`
}

// callDenied is an OpenCall's status once its approval was refused.
const callDenied = "denied"

// call returns the open call with id call, or nil (also for a nil t).
func (t *OpenTurn) call(call string) *OpenCall {
	if t == nil {
		return nil
	}
	for i := range t.Calls {
		if t.Calls[i].Call == call {
			return &t.Calls[i]
		}
	}
	return nil
}

// PendingTurn is a stored user message waiting for its turn.
type PendingTurn struct {
	Turn   string `json:"turn"`
	MsgSeq uint64 `json:"msg_seq"`
}

// titleLen is how much of the first message becomes a conversation's
// default title, in bytes.
const titleLen = 60

// Apply updates m for a stored event ev.
func (m *Meta) Apply(ev *protocol.Event) {
	m.LastSeq = ev.Seq
	m.UpdatedAt = ev.TS
	switch ev.Type {
	case protocol.EventMessage:
		if ev.Message.Role != protocol.RoleUser {
			return
		}
		m.Pending = append(m.Pending, PendingTurn{Turn: ev.Message.Turn, MsgSeq: ev.Seq})
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
		m.OpenTurn = &OpenTurn{Turn: ev.Turn, Seq: ev.Seq}
	case protocol.EventTurnEnd:
		m.OpenTurn = nil
	case protocol.EventToolCall:
		if m.OpenTurn != nil {
			m.OpenTurn.Calls = append(m.OpenTurn.Calls, OpenCall{Call: ev.Call, Name: ev.Name, Status: ev.Status, Since: ev.TS})
		}
	case protocol.EventToolApproval:
		if c := m.OpenTurn.call(ev.Call); c != nil {
			c.Status = callDenied
			if ev.Approved != nil && *ev.Approved {
				c.Status = protocol.CallRunning
			}
		}
	case protocol.EventToolResult:
		if m.OpenTurn != nil {
			m.OpenTurn.Calls = slices.DeleteFunc(m.OpenTurn.Calls, func(c OpenCall) bool { return c.Call == ev.Call })
		}
	}
}

// Clone returns a copy of m that shares nothing mutable with it.
func (m *Meta) Clone() *Meta {
	c := *m
	c.Pending = slices.Clone(m.Pending)
	if m.OpenTurn != nil {
		ot := *m.OpenTurn
		ot.Calls = slices.Clone(ot.Calls)
		c.OpenTurn = &ot
	}
	return &c
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
