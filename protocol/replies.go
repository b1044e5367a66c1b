package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Reply types: the frames the gateway sends in answer to a request.
const (
	ReplyAck           = "ack"
	ReplySubscribed    = "subscribed"
	ReplyUnsubscribed  = "unsubscribed"
	ReplyCancelled     = "cancelled"
	ReplyHistory       = "history"
	ReplyConversations = "conversations"
	ReplyCreated       = "created"
	ReplyDeleted       = "deleted"
	ReplyPong          = "pong"
	ReplyError         = "error"
	ReplyAgents        = "agents"
	ReplyAccepted      = "accepted"
)

// The kinds of tool an agent lists.
const (
	ToolKindHTTP   = "http"
	ToolKindMCP    = "mcp"
	ToolKindClient = "client"
)

// Ack answers a send once the user message is durably stored, before the
// model is called.
type Ack struct {
	Type         string   `json:"type"`
	ID           string   `json:"id,omitempty"`
	Conversation string   `json:"conversation"`
	Message      *Message `json:"message"`
}

// Subscribed answers a subscribe. Seq is the conversation's last seq when
// the subscription began, never below the subscribe's After; the replayed
// and live events follow it. CreatedAt is the conversation's creation
// time, as in its Conversation object: it tells a conversation from a
// later one under the same id, so a client sends it back in
// Subscribe.CreatedAt when it resumes.
type Subscribed struct {
	Type         string    `json:"type"`
	ID           string    `json:"id,omitempty"`
	Conversation string    `json:"conversation"`
	Seq          uint64    `json:"seq"`
	CreatedAt    time.Time `json:"created_at"`
}

// HistoryReply answers a history request: Messages oldest first (at most
// the request's limit, and fewer past MaxPageBytes), and HasMore when
// older messages remain.
type HistoryReply struct {
	Type         string    `json:"type"`
	ID           string    `json:"id,omitempty"`
	Conversation string    `json:"conversation"`
	Messages     []Message `json:"messages"`
	HasMore      bool      `json:"has_more"`
}

// MarshalJSON encodes r with "messages" as [] rather than null when there
// are none, so clients can iterate without a check.
func (r HistoryReply) MarshalJSON() ([]byte, error) {
	type plain HistoryReply // without this method
	r.Messages = nonNil(r.Messages)
	return json.Marshal(plain(r))
}

// ConversationsReply answers a list request, newest first: at most the
// request's limit of conversations, and fewer past MaxPageBytes.
type ConversationsReply struct {
	Type          string         `json:"type"`
	ID            string         `json:"id,omitempty"`
	Conversations []Conversation `json:"conversations"`
	// Next, set when more conversations follow, is the Before of the
	// list request for the next page.
	Next string `json:"next,omitempty"`
}

// MarshalJSON encodes r with "conversations" as [] rather than null when
// there are none.
func (r ConversationsReply) MarshalJSON() ([]byte, error) {
	type plain ConversationsReply // without this method
	r.Conversations = nonNil(r.Conversations)
	return json.Marshal(plain(r))
}

// nonNil returns s, or an empty slice when s is nil, which JSON encodes as
// [] rather than null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// Created answers a create request with the new conversation.
type Created struct {
	Type string `json:"type"`
	ID   string `json:"id,omitempty"`
	// Conversation is the new conversation's id; Info describes it.
	Conversation string        `json:"conversation"`
	Info         *Conversation `json:"info"`
}

// AgentsReply answers an agents request (and GET /v1/agents) with the
// agents the caller may use.
type AgentsReply struct {
	Type   string      `json:"type"`
	ID     string      `json:"id,omitempty"`
	Agents []AgentInfo `json:"agents"`
}

// MarshalJSON encodes r with "agents", and every agent's "tools", as []
// rather than null when there are none.
func (r AgentsReply) MarshalJSON() ([]byte, error) {
	type plain AgentsReply // without this method
	agents := make([]AgentInfo, len(r.Agents))
	for i, a := range r.Agents {
		a.Tools = nonNil(a.Tools)
		agents[i] = a
	}
	r.Agents = agents
	return json.Marshal(plain(r))
}

// AgentInfo describes an agent to its users; its system prompt is not
// shown.
type AgentInfo struct {
	Name        string     `json:"name"`
	Description string     `json:"description,omitempty"`
	Model       string     `json:"model"`
	Tools       []ToolInfo `json:"tools"`
}

// ToolInfo is one tool as the agent's model sees it: an MCP server's
// tools are listed one by one, as "<server>__<tool>".
type ToolInfo struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Kind is ToolKindHTTP, ToolKindMCP or ToolKindClient.
	Kind string `json:"kind"`
}

// Accepted answers approve and tool_output: the answer is recorded, and the
// call's tool_approval or tool_result event follows.
type Accepted struct {
	Type         string `json:"type"`
	ID           string `json:"id,omitempty"`
	Conversation string `json:"conversation"`
	Call         string `json:"call"`
}

// Done answers unsubscribe, cancel, delete and ping: Type says which.
type Done struct {
	Type         string `json:"type"`
	ID           string `json:"id,omitempty"`
	Conversation string `json:"conversation,omitempty"`
}

// ErrorReply is the error frame: the request id and conversation where
// known, and the error's code and message.
type ErrorReply struct {
	Type         string `json:"type"`
	ID           string `json:"id,omitempty"`
	Conversation string `json:"conversation,omitempty"`
	Code         string `json:"code"`
	Message      string `json:"message"`
	RetryAfterMS int64  `json:"retry_after_ms,omitempty"`
}

// NewErrorReply builds the error frame for err in answer to request id.
func NewErrorReply(id, conversation string, err *Error) *ErrorReply {
	return &ErrorReply{Type: ReplyError, ID: id, Conversation: conversation,
		Code: err.Code, Message: err.Message, RetryAfterMS: err.RetryAfterMS}
}

// ServerFrame decodes any frame the gateway sends, for Go clients: a reply
// or an event. Message stays raw because it is an object in ack and event
// frames but a string in error and tool_progress frames; use StoredMessage,
// ErrorMessage or ProgressMessage. A tool_result's "error" string goes in
// ToolError, the error object of other frames in Error.
type ServerFrame struct {
	Type         string    `json:"type"`
	ID           string    `json:"id"`
	Conversation string    `json:"conversation"`
	Seq          uint64    `json:"seq"`
	TS           time.Time `json:"ts"`
	// CreatedAt is a subscribed reply's.
	CreatedAt time.Time `json:"created_at"`

	Message       json.RawMessage `json:"message"`
	Messages      []Message       `json:"messages"`
	HasMore       bool            `json:"has_more"`
	Conversations []Conversation  `json:"conversations"`
	Next          string          `json:"next"`
	Info          *Conversation   `json:"info"`

	Turn       string          `json:"turn"`
	Model      string          `json:"model"`
	Text       string          `json:"text"`
	Name       string          `json:"name"`
	Input      json.RawMessage `json:"input"`
	Output     json.RawMessage `json:"output"`
	StopReason string          `json:"stop_reason"`
	Usage      *Usage          `json:"usage"`
	LatencyMS  *int64          `json:"latency_ms"`
	Error      *Error          `json:"error"`

	Agent      string      `json:"agent"`
	Steps      int         `json:"steps"`
	Call       string      `json:"call"`
	Step       int         `json:"step"`
	Status     string      `json:"status"`
	Approved   *bool       `json:"approved"`
	By         string      `json:"by"`
	Reason     string      `json:"reason"`
	Progress   *float64    `json:"progress"`
	Total      *float64    `json:"total"`
	DurationMS *int64      `json:"duration_ms"`
	ToolError  string      `json:"-"`
	Agents     []AgentInfo `json:"agents"`

	Code         string `json:"code"`
	RetryAfterMS int64  `json:"retry_after_ms"`
}

// UnmarshalJSON decodes a frame, putting its "error" in Error when it is an
// object and in ToolError when it is a string (a tool_result's).
func (f *ServerFrame) UnmarshalJSON(data []byte) error {
	type plain ServerFrame // without this method
	w := struct {
		*plain
		Error json.RawMessage `json:"error"`
	}{plain: (*plain)(f)}
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	if present(w.Error) {
		return unmarshalError(w.Error, &f.Error, &f.ToolError)
	}
	return nil
}

// StoredMessage returns the message object of an ack, message or turn_end
// frame, or nil when the frame has none.
func (f *ServerFrame) StoredMessage() *Message {
	if len(f.Message) == 0 || f.Message[0] != '{' {
		return nil
	}
	var m Message
	if json.Unmarshal(f.Message, &m) != nil {
		return nil
	}
	return &m
}

// ErrorMessage returns the message of an error frame.
func (f *ServerFrame) ErrorMessage() string { return f.messageText() }

// ProgressMessage returns the message of a tool_progress frame.
func (f *ServerFrame) ProgressMessage() string { return f.messageText() }

// messageText returns "message" when it is a string, else "".
func (f *ServerFrame) messageText() string {
	var s string
	_ = json.Unmarshal(f.Message, &s)
	return s
}

// EncodeRequest returns the JSON frame for r, with its "type" set. It fails
// for a nil request and for one that does not encode as a JSON object,
// such as a nil *Send.
func EncodeRequest(r Request) ([]byte, error) {
	if r == nil {
		return nil, errors.New("protocol: encode a nil request")
	}
	body, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("protocol: encode %s request: %w", r.Type(), err)
	}
	if len(body) < 2 || body[0] != '{' {
		return nil, fmt.Errorf("protocol: %s request does not encode as a JSON object", r.Type())
	}
	typ, _ := json.Marshal(r.Type())
	// body is a JSON object; put "type" first.
	out := make([]byte, 0, len(body)+len(typ)+9)
	out = append(out, `{"type":`...)
	out = append(out, typ...)
	if len(body) > 2 {
		out = append(out, ',')
	}
	return append(out, body[1:]...), nil
}
