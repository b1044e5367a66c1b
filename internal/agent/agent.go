package agent

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Tool kinds, as the agents list and ToolInfo.Kind name them.
const (
	KindHTTP   = "http"
	KindMCP    = "mcp"
	KindClient = "client"
)

// ToolInfo describes one tool as the model sees it.
type ToolInfo struct {
	// Name is the name the model calls it by; for an MCP tool,
	// <server>__<tool> made to fit NamePattern.
	Name string `json:"name"`
	// Description is the tool's description for the model.
	Description string `json:"description"`
	// Kind is KindHTTP, KindMCP or KindClient.
	Kind string `json:"kind"`
	// InputSchema is the JSON schema of the input, an object schema.
	InputSchema map[string]any `json:"-"`
	// Timeout bounds one call, or the wait for a client's answer.
	Timeout time.Duration `json:"-"`
	// Approval is whether a call waits for a person's approval first.
	Approval bool `json:"-"`
}

// Agent is one agent's definition as it was when Registry.Agent returned
// it: a turn keeps using it, whatever reloads happen meanwhile. Its fields
// must not be changed.
type Agent struct {
	// Name is the agent's name.
	Name string
	// Description is the agent's description.
	Description string
	// Model is the model id (the registry's default model when the file
	// sets none).
	Model string
	// System is the system prompt as written; see SystemPrompt.
	System string
	// Tools are the agent's tools as the model sees them, in the order of
	// the agents file (an MCP server's tools in the order it lists them).
	// An MCP server not reachable when the Agent was taken adds none.
	Tools []ToolInfo
	// MaxSteps bounds the model calls of one turn.
	MaxSteps int
	// MaxTokens is the model's output limit per call, if set.
	MaxTokens *int32
	// Temperature is the model's temperature, if set.
	Temperature *float32

	allow   map[string]any
	runners map[string]runner // by model-visible name; client tools have none
	env     *env
}

// Tool returns the tool the model calls name.
func (a *Agent) Tool(name string) (ToolInfo, bool) {
	i := slices.IndexFunc(a.Tools, func(t ToolInfo) bool { return t.Name == name })
	if i < 0 {
		return ToolInfo{}, false
	}
	return a.Tools[i], true
}

// Allowed reports whether a user with these token claims may list and use
// the agent: always for an agent without allow; otherwise every claim of
// allow must be in claims, equal to the value or a list holding it (values
// compared as text). With no claims (-auth none) an agent with allow is
// not allowed.
func (a *Agent) Allowed(claims map[string]any) bool {
	return allowed(a.allow, claims)
}

func allowed(allow, claims map[string]any) bool {
	for k, want := range allow {
		if !claimHolds(claims[k], fmt.Sprint(want)) {
			return false
		}
	}
	return true
}

// claimHolds reports whether the claim value got is want, or a list
// holding it.
func claimHolds(got any, want string) bool {
	switch g := got.(type) {
	case nil:
		return false
	case []any:
		return slices.ContainsFunc(g, func(v any) bool { return claimHolds(v, want) })
	case []string:
		return slices.Contains(g, want)
	case map[string]any:
		return false
	default:
		return fmt.Sprint(g) == want
	}
}

// SystemPrompt is the agent's system prompt for a turn of conversation by
// user, with {{agent}}, {{user}} and {{conversation}} replaced.
func (a *Agent) SystemPrompt(user, conversation string) string {
	return strings.NewReplacer("{{agent}}", a.Name, "{{user}}", user, "{{conversation}}", conversation).Replace(a.System)
}

// AgentInfo is an agent as the agents list shows it: no system prompt.
type AgentInfo struct {
	// Name is the agent's name.
	Name string `json:"name"`
	// Description is the agent's description.
	Description string `json:"description,omitempty"`
	// Model is the model id.
	Model string `json:"model"`
	// Tools are the agent's tools as the model sees them.
	Tools []ToolInfo `json:"tools"`
}

// Info is the agent as the agents list shows it.
func (a *Agent) Info() AgentInfo {
	tools := a.Tools
	if tools == nil {
		tools = []ToolInfo{}
	}
	return AgentInfo{Name: a.Name, Description: a.Description, Model: a.Model, Tools: tools}
}
