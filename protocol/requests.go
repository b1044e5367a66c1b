package protocol

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
)

// History limits: the default and the largest page a history request gets.
const (
	DefaultHistoryLimit = 50
	MaxHistoryLimit     = 500
)

// MaxRequestIDLen is the longest request id a client may send, in bytes.
const MaxRequestIDLen = 64

// MaxConversationIDLen is the longest conversation id, in bytes.
const MaxConversationIDLen = 128

// Request is a decoded client frame: one of *Send, *Subscribe, *Unsubscribe,
// *Cancel, *History, *List, *Create, *Delete or *Ping.
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
// from the log, then live.
type Subscribe struct {
	ID           string `json:"id,omitempty"`
	Conversation string `json:"conversation"`
	After        uint64 `json:"after,omitempty"`
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
}

// Create makes a conversation. Every field is optional: an empty
// Conversation gets a generated id, an empty Model the gateway's default.
type Create struct {
	ID           string   `json:"id,omitempty"`
	Conversation string   `json:"conversation,omitempty"`
	Title        string   `json:"title,omitempty"`
	System       string   `json:"system,omitempty"`
	Model        string   `json:"model,omitempty"`
	MaxTokens    *int32   `json:"max_tokens,omitempty"`
	Temperature  *float32 `json:"temperature,omitempty"`
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
