package convo

import (
	"context"
	"encoding/json"
	"time"

	"github.com/chatgateway/gateway/protocol"
)

// Agents gives a Service the agents the operator defined. cmd/gateway
// adapts internal/agent's registry to it; convo does not import that
// package. Its methods are safe for concurrent use.
type Agents interface {
	// Agent returns the named agent's definition as it is now, for a
	// turn of conversation, owned by user. A turn keeps the one it
	// started with.
	Agent(name, user, conversation string) (*Agent, bool)
	// Allowed reports whether the caller of ctx (see the transports'
	// identity) may list and use the named agent.
	Allowed(ctx context.Context, name string) bool
	// List returns the agents the caller of ctx may use, as the agents
	// reply shows them.
	List(ctx context.Context) []protocol.AgentInfo
}

// Agent is an agent's definition: what a conversation bound to it sends
// the model, and how it runs the model's tool calls.
type Agent struct {
	Name   string
	Model  string
	System string // with {{agent}}, {{user}} and {{conversation}} in place
	// MaxSteps bounds the model calls of one turn.
	MaxSteps    int
	MaxTokens   *int32
	Temperature *float32
	Tools       []AgentTool
	// Run runs one call of a tool that is not a client tool and returns
	// its outcome, with status protocol.ResultOK, ResultError,
	// ResultTimeout or, when ctx ended first (the call aborted),
	// ResultCancelled and the error CancelledCallError. progress, when
	// the tool reports it, may be called from another goroutine, never
	// after Run returns.
	Run func(ctx context.Context, call ToolCall, progress func(ToolProgress)) ToolOutcome
}

// AgentTool is one tool of an agent, as the model sees it.
type AgentTool struct {
	ToolSpec
	// Kind is protocol.ToolKindHTTP, ToolKindMCP or ToolKindClient: a
	// client tool is answered by a tool_output request.
	Kind string
	// Approval makes every call wait for an approve request first.
	Approval bool
	// Timeout bounds a call, and each wait for an answer.
	Timeout time.Duration
}

// ToolCall is one call for Agent.Run.
type ToolCall struct {
	// ID is the model's tool-use id.
	ID, Name string
	Input    json.RawMessage
	// User owns the conversation; Conversation is its id.
	User, Conversation string
}

// ToolProgress is a progress report of a running call; Total is 0 when
// unknown.
type ToolProgress struct {
	Progress, Total float64
	Message         string
}

// ToolOutcome is how a call ended: Output with status ok, else Error.
type ToolOutcome struct {
	Status string
	Output json.RawMessage
	Error  string
}

// tool returns the agent's tool called name.
func (a *Agent) tool(name string) (AgentTool, bool) {
	for _, t := range a.Tools {
		if t.Name == name {
			return t, true
		}
	}
	return AgentTool{}, false
}

// specs are the agent's tools as the model request declares them.
func (a *Agent) specs() []ToolSpec {
	specs := make([]ToolSpec, len(a.Tools))
	for i, t := range a.Tools {
		specs[i] = t.ToolSpec
	}
	return specs
}
