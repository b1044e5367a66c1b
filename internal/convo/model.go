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
}

// HistoryMessage is one stored message as the model sees it. History is in
// conversation order (each user message followed by the reply to it), but
// it may hold two messages of one role in a row (a message queued during a
// turn, a reply that produced no text): adapters whose service requires
// alternating roles must merge or skip them.
type HistoryMessage struct {
	Role string // protocol.RoleUser or protocol.RoleAssistant
	Text string
}

// ChunkKind says what a Chunk carries.
type ChunkKind int

// The kinds of chunk a model emits.
const (
	// ChunkText is a piece of the answer; it becomes a delta event.
	ChunkText ChunkKind = iota
	// ChunkThinking is reasoning content; it becomes a thinking event.
	ChunkThinking
	// ChunkAction is a tool call; it becomes an action event.
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
}
