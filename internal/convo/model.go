package convo

import (
	"context"
	"encoding/json"

	"github.com/chatgateway/gateway/protocol"
)

// Model streams one assistant reply. The demo model and the Bedrock adapter
// implement it; convo imports neither.
type Model interface {
	// Stream asks the model for the reply to req and calls emit for each
	// chunk, in order, as it arrives. emit never blocks for long: the turn
	// buffers and coalesces chunks while a commit is in flight. Stream
	// returns when the reply is complete, when ctx is done (returning
	// ctx.Err() or an error wrapping it), or on failure. An error that is a
	// *protocol.Error is shown to users as is; any other error is shown as
	// a model_error with err.Error() as its message.
	Stream(ctx context.Context, req ModelRequest, emit func(Chunk)) (Result, error)
}

// ModelRequest is what a turn sends the model: the conversation's model id,
// system prompt and whole stored history up to and including the message
// being answered, oldest first.
type ModelRequest struct {
	Model   string
	System  string
	History []HistoryMessage
	// MaxTokens and Temperature are the conversation's overrides; nil
	// means the model's configured default.
	MaxTokens   *int32
	Temperature *float32
	// Tools are the tools the model may call (an agent's), nil for none.
	// Adapters must still declare tools to services that require it when
	// the history holds tool blocks.
	Tools []ToolSpec
}

// ToolSpec describes one tool to the model.
type ToolSpec struct {
	// Name is what the model calls the tool: 1 to 64 ASCII letters,
	// digits, '_' and '-'.
	Name        string
	Description string
	// InputSchema is the JSON Schema of the tool's input, a JSON object.
	InputSchema json.RawMessage
}

// HistoryMessage is one stored message as the model sees it. History is in
// conversation order (each user message followed by the reply to it), but
// it may hold two messages of one role in a row (a message queued during a
// turn, a reply that produced no text): adapters whose service requires
// alternating roles must merge or skip them.
//
// An agent's turn is one assistant message per step: a step that called
// tools holds its text and ToolUses, and the user message after it holds
// the ToolResults, one per tool use and in their order, and no Text.
type HistoryMessage struct {
	Role string // protocol.RoleUser or protocol.RoleAssistant
	Text string
	// ToolUses are the tools an assistant message called, after its Text.
	ToolUses []ToolUse
	// ToolResults are the results a user message carries, before its
	// Text.
	ToolResults []ToolResult
}

// ToolUse is one tool call the model asked for.
type ToolUse struct {
	// ID is the model's tool-use id; the result names it.
	ID   string
	Name string
	// Input is the call's input, a JSON value ({} when the model sent
	// none).
	Input json.RawMessage
}

// ToolResult is the outcome of one tool call, as the model is told it.
type ToolResult struct {
	// ID is the ToolUse.ID the result answers.
	ID string
	// Output is the tool's output, a JSON value, when Error is empty.
	Output json.RawMessage
	// Error says why the call failed (an error, a denial, a timeout…);
	// empty when it succeeded.
	Error string
}

// ChunkKind says what a Chunk carries.
type ChunkKind int

// The kinds of chunk a model emits.
const (
	// ChunkText is a piece of the answer; it becomes a delta event.
	ChunkText ChunkKind = iota
	// ChunkThinking is reasoning content; it becomes a thinking event.
	ChunkThinking
	// ChunkAction is an action the model shows without the gateway
	// running anything (the demo model's v1 clock); it becomes an action
	// event. Tool calls to run come in Result.ToolUses.
	ChunkAction
)

// Chunk is one piece of a streamed reply.
type Chunk struct {
	Kind ChunkKind
	// Text is set for ChunkText and ChunkThinking.
	Text string
	// Name, Input and Output are set for ChunkAction. Input and Output are
	// JSON values (Output may be empty).
	Name   string
	Input  json.RawMessage
	Output json.RawMessage
}

// Result closes a successful reply.
type Result struct {
	// StopReason is one of protocol.StopEndTurn, StopMaxTokens,
	// StopStopSequence, StopToolUse or StopContentFiltered.
	StopReason string
	Usage      protocol.Usage
	// ToolUses are the tool calls of the reply, in the model's order;
	// with them, StopReason is StopToolUse.
	ToolUses []ToolUse
}
