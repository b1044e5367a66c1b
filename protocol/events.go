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

	// The events of an agent's tool calls (v1.1).
	EventToolCall     = "tool_call"
	EventToolApproval = "tool_approval"
	EventToolProgress = "tool_progress"
	EventToolResult   = "tool_result"
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
	// StopMaxSteps ends an agent's turn that made its agent's max_steps
	// model calls while the model still asked for tools.
	StopMaxSteps = "max_steps"
)

// The status of a tool_call event: how the call proceeds.
const (
	// CallRunning: the gateway runs the tool now.
	CallRunning = "running"
	// CallAwaitingApproval: the call waits for an approve request.
	CallAwaitingApproval = "awaiting_approval"
	// CallAwaitingClient: the call waits for a tool_output request.
	CallAwaitingClient = "awaiting_client"
)

// The status of a tool_result event: how the call ended.
const (
	ResultOK          = "ok"
	ResultError       = "error"
	ResultDenied      = "denied"
	ResultTimeout     = "timeout"
	ResultCancelled   = "cancelled"
	ResultInterrupted = "interrupted"
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
	// Agent is the agent a turn_start runs, when the conversation has one.
	Agent string `json:"agent,omitempty"`
	// Text is the chunk of a delta or thinking event.
	Text string `json:"text,omitempty"`

	// Name, Input and Output describe an action (an event published by an
	// external agent), a tool_call (Name and Input) or a tool_result (Name
	// and, with status ok, Output).
	Name   string          `json:"name,omitempty"`
	Input  json.RawMessage `json:"input,omitempty"`
	Output json.RawMessage `json:"output,omitempty"`

	// Call is the model's tool-use id that the tool_* events are about.
	Call string `json:"call,omitempty"`
	// Step is the 1-based model call of the turn that asked for a
	// tool_call.
	Step int `json:"step,omitempty"`
	// Status is a tool_call's Call* or a tool_result's Result* constant.
	Status string `json:"status,omitempty"`
	// Approved, By and Reason answer an approval (tool_approval).
	Approved *bool  `json:"approved,omitempty"`
	By       string `json:"by,omitempty"`
	Reason   string `json:"reason,omitempty"`
	// Progress and Total report a tool_progress; ProgressMessage is its
	// "message" (a string, unlike the message object of other events).
	Progress        *float64 `json:"progress,omitempty"`
	Total           *float64 `json:"total,omitempty"`
	ProgressMessage string   `json:"-"`
	// ToolError is a tool_result's "error": a string, unlike the error
	// object of turn_end.
	ToolError string `json:"-"`
	// DurationMS is how long a tool_result's call took.
	DurationMS *int64 `json:"duration_ms,omitempty"`
	// Steps is the number of model calls an agent's turn_end made.
	Steps int `json:"steps,omitempty"`

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
	// Agent is the name of the agent the conversation uses, if any.
	Agent string `json:"agent,omitempty"`
}
