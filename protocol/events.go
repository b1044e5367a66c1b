package protocol

import (
	"encoding/json"
	"time"
)

// Event types: the entries of a conversation's log, sent to every subscriber.
const (
	EventMessage   = "message"
	EventTurnStart = "turn_start"
	EventDelta     = "delta"
	EventThinking  = "thinking"
	EventAction    = "action"
	EventTurnEnd   = "turn_end"
)

// Stop reasons carried by turn_end.
const (
	StopEndTurn         = "end_turn"
	StopMaxTokens       = "max_tokens"
	StopStopSequence    = "stop_sequence"
	StopToolUse         = "tool_use"
	StopContentFiltered = "content_filtered"
	StopCancelled       = "cancelled"
	StopError           = "error"
	StopInterrupted     = "interrupted"
)

// Message roles.
const (
	RoleUser      = "user"
	RoleAssistant = "assistant"
)

// Event is one entry of a conversation's event log. Seq counts from 1 within
// a conversation with no gaps; TS is when the gateway stored it. Which of the
// other fields are set depends on Type (see the constants above and
// PROTOCOL.md). The JSON form is both what is stored and what is sent.
type Event struct {
	Type         string    `json:"type"`
	Conversation string    `json:"conversation"`
	Seq          uint64    `json:"seq"`
	TS           time.Time `json:"ts"`

	// Message is the stored message of a message or turn_end event.
	Message *Message `json:"message,omitempty"`
	// Turn names the turn of turn_start, delta, thinking, turn_end and,
	// optionally, action events.
	Turn string `json:"turn,omitempty"`
	// Model is the model id a turn_start runs.
	Model string `json:"model,omitempty"`
	// Text is the chunk of a delta or thinking event.
	Text string `json:"text,omitempty"`

	// Name, Input and Output describe an action: a tool call by the model
	// or an event published by an external agent.
	Name   string          `json:"name,omitempty"`
	Input  json.RawMessage `json:"input,omitempty"`
	Output json.RawMessage `json:"output,omitempty"`

	// StopReason, Usage, LatencyMS and Error close a turn.
	StopReason string `json:"stop_reason,omitempty"`
	Usage      *Usage `json:"usage,omitempty"`
	LatencyMS  *int64 `json:"latency_ms,omitempty"`
	Error      *Error `json:"error,omitempty"`
}

// Message is a stored chat message. Seq is the seq of the event that stored
// it: the message event for a user message, the turn_end for an assistant
// reply. Turn links a user message to the turn that answers it and an
// assistant message to the turn that wrote it.
type Message struct {
	ID        string    `json:"id"`
	Seq       uint64    `json:"seq"`
	Role      string    `json:"role"`
	Text      string    `json:"text"`
	Turn      string    `json:"turn,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// Usage counts the tokens of one turn as the model reported them.
type Usage struct {
	InputTokens  int64 `json:"input_tokens"`
	OutputTokens int64 `json:"output_tokens"`
}

// Conversation describes a conversation in list and create replies.
type Conversation struct {
	ID        string    `json:"id"`
	Title     string    `json:"title"`
	System    string    `json:"system,omitempty"`
	Model     string    `json:"model"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	LastSeq   uint64    `json:"last_seq"`
	// MaxTokens and Temperature override the gateway's inference defaults
	// for this conversation when set.
	MaxTokens   *int32   `json:"max_tokens,omitempty"`
	Temperature *float32 `json:"temperature,omitempty"`
}
