// Package agent holds the gateway's agents and the tools they call: it
// reads the agents file (YAML or JSON), keeps the live set of agents
// (reloadable), and runs one tool call at a time — an HTTP endpoint or an
// MCP server's tool. It knows nothing of conversations or turns: the tool
// loop that decides when to call what lives in internal/convo, which asks
// this package for an agent's definition and calls Agent.Call.
//
// Client tools (answered by a connected client with tool_output) are
// defined here but not run here: the loop waits for their answer.
package agent
