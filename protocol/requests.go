package protocol

import (
	"encoding/json"
	"time"
)

// Request types: the frames a client sends.
const (
	TypeSend        = "send"
	TypeSubscribe   = "subscribe"
	TypeUnsubscribe = "unsubscribe"
	TypeCancel      = "cancel"
	TypeHistory     = "history"
	TypeList        = "list"
	TypeCreate      = "create"
	TypeDelete      = "delete"
	TypePing        = "ping"

	// Requests of agents (v1.1).
	TypeAgents     = "agents"
	TypeApprove    = "approve"
	TypeToolOutput = "tool_output"
)

// History limits: the default and the largest page a history request gets.
const (
	DefaultHistoryLimit = 50
	MaxHistoryLimit     = 500
)

// List limits: the default and the largest page a list request gets, and
// the longest cursor (Before) a client may send.
const (
	DefaultListLimit = 100
	MaxListLimit     = 500
	MaxCursorLen     = 256
)

// MaxPageBytes bounds a history or list reply besides its limit: past its
// first message or conversation, a page stops before its messages or
// conversations would take more than about this many bytes (their text,
// title and system prompt, and ids), and says that more remain. A reply
// then always fits in a connection's send queue.
const MaxPageBytes = 1 << 20

// MaxRequestIDLen is the longest request id a client may send, in bytes.
const MaxRequestIDLen = 64

// MaxConversationIDLen is the longest conversation id, in bytes.
const MaxConversationIDLen = 128

// MaxNameLen is the longest agent name, and the longest call id, in bytes.
const MaxNameLen = 64

// MaxReasonLen is the longest reason an approve request may give, in bytes.
const MaxReasonLen = 1024

// Request is a decoded client frame: one of *Send, *Subscribe, *Unsubscribe,
// *Cancel, *History, *List, *Create, *Delete, *Ping, *Agents, *Approve or
// *ToolOutput.
type Request interface {
	// RequestID is the client's "id", echoed in the reply.
	RequestID() string
	// Type is the frame's "type".
	Type() string
}

// Send stores a user message and starts (or queues) a turn that answers it.
// An empty Conversation creates a new conversation with a generated id.
type Send struct {
	ID           string `json:"id,omitempty"`
	Conversation string `json:"conversation,omitempty"`
	Text         string `json:"text"`
	ClientMsgID  string `json:"client_msg_id,omitempty"`
}

// Subscribe asks for every event of Conversation with seq > After: first
// from the log, then live. CreatedAt, when not zero, is the creation time
// of the conversation the client knew (the created_at of a subscribed
// reply or of the conversation object): if the conversation under that id
// now is another one (deleted and created again), the subscribe is
// refused as not found instead of resuming a log After does not belong to.
type Subscribe struct {
	ID           string    `json:"id,omitempty"`
	Conversation string    `json:"conversation"`
	After        uint64    `json:"after,omitempty"`
	CreatedAt    time.Time `json:"created_at,omitzero"`
}

// Unsubscribe stops the events of Conversation on this connection.
type Unsubscribe struct {
	ID           string `json:"id,omitempty"`
	Conversation string `json:"conversation"`
}

// Cancel ends the running turn of Conversation with stop reason "cancelled".
type Cancel struct {
	ID           string `json:"id,omitempty"`
	Conversation string `json:"conversation"`
}

// History asks for up to Limit stored messages with seq < Before (all, when
// Before is 0), oldest first.
type History struct {
	ID           string `json:"id,omitempty"`
	Conversation string `json:"conversation"`
	Before       uint64 `json:"before,omitempty"`
	Limit        int    `json:"limit,omitempty"`
}

// List asks for the caller's conversations, newest first.
type List struct {
	ID string `json:"id,omitempty"`
	// Before, when set, is the Next of a previous conversations reply:
	// the page starts after the last conversation that reply held.
	Before string `json:"before,omitempty"`
	// Limit is the most conversations the reply holds (0: DefaultListLimit;
	// above MaxListLimit: MaxListLimit).
	Limit int `json:"limit,omitempty"`
}

// Create makes a conversation. Every field is optional: an empty
// Conversation gets a generated id, an empty Model the gateway's default.
// Agent binds the conversation to an agent, which brings its own model and
// system prompt: DecodeClientFrame refuses Agent with Model or System.
type Create struct {
	ID           string   `json:"id,omitempty"`
	Conversation string   `json:"conversation,omitempty"`
	Title        string   `json:"title,omitempty"`
	System       string   `json:"system,omitempty"`
	Model        string   `json:"model,omitempty"`
	MaxTokens    *int32   `json:"max_tokens,omitempty"`
	Temperature  *float32 `json:"temperature,omitempty"`
	Agent        string   `json:"agent,omitempty"`
}

// Delete removes a conversation and its log.
type Delete struct {
	ID           string `json:"id,omitempty"`
	Conversation string `json:"conversation"`
}

// Ping asks for a pong; clients use it to check the connection.
type Ping struct {
	ID string `json:"id,omitempty"`
}

// Agents asks for the agents the caller may use.
type Agents struct {
	ID string `json:"id,omitempty"`
}

// Approve answers a tool call that awaits approval: Approved runs it, and
// a denied call is sent to the model as an error result. Reason is
// optional.
type Approve struct {
	ID           string `json:"id,omitempty"`
	Conversation string `json:"conversation"`
	Call         string `json:"call"`
	Approved     bool   `json:"approved"`
	Reason       string `json:"reason,omitempty"`
}

// ToolOutput answers a client tool's call with its Output (any JSON value)
// or, when the tool failed, an Error message; exactly one is set.
type ToolOutput struct {
	ID           string          `json:"id,omitempty"`
	Conversation string          `json:"conversation"`
	Call         string          `json:"call"`
	Output       json.RawMessage `json:"output,omitempty"`
	Error        string          `json:"error,omitempty"`
}

// RequestID implements Request.
func (r *Send) RequestID() string { return r.ID }

// RequestID implements Request.
func (r *Subscribe) RequestID() string { return r.ID }

// RequestID implements Request.
func (r *Unsubscribe) RequestID() string { return r.ID }

// RequestID implements Request.
func (r *Cancel) RequestID() string { return r.ID }

// RequestID implements Request.
func (r *History) RequestID() string { return r.ID }

// RequestID implements Request.
func (r *List) RequestID() string { return r.ID }

// RequestID implements Request.
func (r *Create) RequestID() string { return r.ID }

// RequestID implements Request.
func (r *Delete) RequestID() string { return r.ID }

// RequestID implements Request.
func (r *Ping) RequestID() string { return r.ID }

// RequestID implements Request.
func (r *Agents) RequestID() string { return r.ID }

// RequestID implements Request.
func (r *Approve) RequestID() string { return r.ID }

// RequestID implements Request.
func (r *ToolOutput) RequestID() string { return r.ID }

// Type implements Request.
func (*Send) Type() string { return TypeSend }

// Type implements Request.
func (*Subscribe) Type() string { return TypeSubscribe }

// Type implements Request.
func (*Unsubscribe) Type() string { return TypeUnsubscribe }

// Type implements Request.
func (*Cancel) Type() string { return TypeCancel }

// Type implements Request.
func (*History) Type() string { return TypeHistory }

// Type implements Request.
func (*List) Type() string { return TypeList }

// Type implements Request.
func (*Create) Type() string { return TypeCreate }

// Type implements Request.
func (*Delete) Type() string { return TypeDelete }

// Type implements Request.
func (*Ping) Type() string { return TypePing }

// Type implements Request.
func (*Agents) Type() string { return TypeAgents }

// Type implements Request.
func (*Approve) Type() string { return TypeApprove }

// Type implements Request.
func (*ToolOutput) Type() string { return TypeToolOutput }
