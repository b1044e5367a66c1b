package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/coder/websocket"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/chatgateway/gateway/internal/conn/conntest"
	"github.com/chatgateway/gateway/protocol"
)

// waitMCP is an MCP server over streamable HTTP whose tool "wait" runs
// until its request is cancelled (or the test ends): started gets a
// value when a call starts, ended when it returns.
type waitMCP struct {
	*httptest.Server
	started, ended chan struct{}
	closing        chan struct{}
}

func startWaitMCP(t *testing.T) *waitMCP {
	w := &waitMCP{started: make(chan struct{}, 4), ended: make(chan struct{}, 4), closing: make(chan struct{})}
	s := mcp.NewServer(&mcp.Implementation{Name: "wait", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "wait", Description: "Waits."},
		func(ctx context.Context, _ *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, struct{}, error) {
			w.started <- struct{}{}
			select {
			case <-ctx.Done():
			case <-w.closing:
			}
			w.ended <- struct{}{}
			return nil, struct{}{}, ctx.Err()
		})
	w.Server = httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	t.Cleanup(w.Close)
	t.Cleanup(func() { close(w.closing) })
	return w
}

// lifeAgents is the agents file of the lifecycle tests, for the demo
// model: "life" has a client tool and the MCP server "slow", whose calls
// wait for an approval; "direct" calls it without one; "once" may make
// one model call a turn.
func lifeAgents(mcpURL string) string {
	return fmt.Sprintf(`tools:
  - name: ask
    description: Asks the person
    client: {}
mcp_servers:
  - name: slow
    url: %s/
agents:
  - name: life
    tools: [ask, slow]
    approval: [slow]
  - name: direct
    tools: [slow]
  - name: once
    tools: [ask]
    max_steps: 1
`, mcpURL)
}

// lifeConv opens a WebSocket to g and creates conversation id with agent.
func lifeConv(t *testing.T, url, id, agent string) *conntest.Client {
	t.Helper()
	c := conntest.Dial(t, url, "/v1/ws")
	if f := c.Call(&protocol.Create{ID: "create", Conversation: id, Agent: agent}); f.Type != protocol.ReplyCreated {
		t.Fatalf("create: %s %s", f.Code, f.ErrorMessage())
	}
	return c
}

// firstCall reads c's frames up to the first tool_call, and returns it.
func firstCall(c *conntest.Client) protocol.ServerFrame {
	frames := c.ReadUntil(conntest.IsType(protocol.EventToolCall))
	return frames[len(frames)-1]
}

// nextTurnWorks sends a message to conversation and checks that its turn
// ends normally.
func nextTurnWorks(t *testing.T, c *conntest.Client, conversation string) {
	t.Helper()
	if next := send(t, c, conversation, "and now?"); next[len(next)-1].StopReason != protocol.StopEndTurn {
		t.Errorf("the next turn ended %s %+v", next[len(next)-1].StopReason, next[len(next)-1].Error)
	}
}

// TestAgentsLifecycle checks how an agent's turn ends, and how late
// answers are refused, around cancels, waits and limits.
func TestAgentsLifecycle(t *testing.T) {
	t.Parallel()
	srv := startWaitMCP(t)
	g, _ := startAgentsGateway(t, lifeAgents(srv.URL))

	t.Run("cancel during an approval wait", func(t *testing.T) {
		c := lifeConv(t, g.URL, "approval", "life")
		c.Request(&protocol.Send{Conversation: "approval", Text: "/tool slow__wait {}"})
		call := firstCall(c)
		if call.Status != protocol.CallAwaitingApproval {
			t.Fatalf("tool_call status %s", call.Status)
		}
		c.Request(&protocol.Cancel{Conversation: "approval"})
		frames := c.ReadUntil(conntest.IsType(protocol.EventTurnEnd))
		res, end := ofType(frames, protocol.EventToolResult), frames[len(frames)-1]
		if len(res) != 1 || res[0].Status != protocol.ResultCancelled || end.StopReason != protocol.StopCancelled || end.Steps != 1 {
			t.Errorf("tool_results %+v, turn_end %s after %d steps", res, end.StopReason, end.Steps)
		}
		if f := c.Call(&protocol.Approve{ID: "late", Conversation: "approval", Call: call.Call, Approved: true}); f.Code != protocol.CodeBadRequest {
			t.Errorf("an approve after the cancel: %s %s, want bad_request", f.Type, f.Code)
		}
		nextTurnWorks(t, c, "approval")
	})

	t.Run("cancel during an MCP call", func(t *testing.T) {
		c := lifeConv(t, g.URL, "mcp", "direct")
		c.Request(&protocol.Send{Conversation: "mcp", Text: "/tool slow__wait {}"})
		<-srv.started
		c.Request(&protocol.Cancel{Conversation: "mcp"})
		frames := c.ReadUntil(conntest.IsType(protocol.EventTurnEnd))
		<-srv.ended // the server saw the call cancelled
		res := ofType(frames, protocol.EventToolResult)
		if len(res) != 1 || res[0].Status != protocol.ResultCancelled || frames[len(frames)-1].StopReason != protocol.StopCancelled {
			t.Errorf("tool_results %+v, turn_end %s", res, frames[len(frames)-1].StopReason)
		}
		nextTurnWorks(t, c, "mcp")
	})

	t.Run("tool_output after the cancel, for an ended turn, twice", func(t *testing.T) {
		c := lifeConv(t, g.URL, "output", "life")
		c.Request(&protocol.Send{Conversation: "output", Text: "/tool ask {}"})
		old := firstCall(c)
		c.Request(&protocol.Cancel{Conversation: "output"})
		c.ReadUntil(conntest.IsType(protocol.EventTurnEnd))
		if f := c.Call(&protocol.ToolOutput{ID: "late", Conversation: "output", Call: old.Call, Output: json.RawMessage(`1`)}); f.Code != protocol.CodeBadRequest {
			t.Errorf("a tool_output after the cancel: %s %s, want bad_request", f.Type, f.Code)
		}
		c.Request(&protocol.Send{Conversation: "output", Text: "/tool ask {}"})
		call := firstCall(c)
		if f := c.Call(&protocol.ToolOutput{ID: "old", Conversation: "output", Call: old.Call, Output: json.RawMessage(`1`)}); f.Code != protocol.CodeBadRequest {
			t.Errorf("a tool_output for the ended turn's call: %s %s, want bad_request", f.Type, f.Code)
		}
		if f, _ := callKeep(c, &protocol.ToolOutput{ID: "first", Conversation: "output", Call: call.Call, Output: json.RawMessage(`1`)}); f.Type != protocol.ReplyAccepted {
			t.Fatalf("tool_output: %s %s", f.Type, f.Code)
		}
		if f, _ := callKeep(c, &protocol.ToolOutput{ID: "again", Conversation: "output", Call: call.Call, Output: json.RawMessage(`2`)}); f.Code != protocol.CodeBadRequest {
			t.Errorf("a second tool_output: %s %s, want bad_request", f.Type, f.Code)
		}
	})

	t.Run("a subscriber resumes during a wait", func(t *testing.T) {
		c := lifeConv(t, g.URL, "resume", "life")
		c.Request(&protocol.Send{Conversation: "resume", Text: "/tool ask {}"})
		call := firstCall(c)
		other := conntest.Dial(t, g.URL, "/v1/ws")
		other.Call(&protocol.Subscribe{ID: "s", Conversation: "resume", After: call.Seq - 1})
		if f := firstCall(other); f.Call != call.Call || f.Status != protocol.CallAwaitingClient {
			t.Errorf("resumed with tool_call %s %s, want %s awaiting_client", f.Call, f.Status, call.Call)
		}
		c.Call(&protocol.ToolOutput{ID: "o", Conversation: "resume", Call: call.Call, Output: json.RawMessage(`1`)})
		frames := other.ReadUntil(conntest.IsType(protocol.EventTurnEnd))
		if res := ofType(frames, protocol.EventToolResult); len(res) != 1 || res[0].Status != protocol.ResultOK {
			t.Errorf("tool_results %+v", res)
		}
	})

	t.Run("max_steps 1", func(t *testing.T) {
		c := lifeConv(t, g.URL, "once", "once")
		frames := send(t, c, "once", "/tool ask {}")
		end, res := frames[len(frames)-1], ofType(frames, protocol.EventToolResult)
		if end.StopReason != protocol.StopMaxSteps || end.Steps != 1 || len(res) != 1 || res[0].ToolError != "max_steps reached" {
			t.Errorf("turn_end %s after %d steps, tool_results %+v", end.StopReason, end.Steps, res)
		}
		// A model call without tools at the limit ends the turn as usual.
		frames = send(t, c, "once", "hello")
		if end := frames[len(frames)-1]; end.StopReason != protocol.StopEndTurn || end.Steps != 1 {
			t.Errorf("turn_end %s after %d steps, want end_turn after 1", end.StopReason, end.Steps)
		}
	})
}

// TestAgentsWaitsAcrossRestart stops the gateway while a call waits for
// its approval and another for a client's output: both end interrupted
// with their turn, answers after the restart are refused, and the next
// turn works.
func TestAgentsWaitsAcrossRestart(t *testing.T) {
	t.Parallel()
	srv := startWaitMCP(t)
	file := filepath.Join(t.TempDir(), "agents.yaml")
	if err := os.WriteFile(file, []byte(lifeAgents(srv.URL)), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"GATEWAY_DB": filepath.Join(t.TempDir(), "gateway.db"), "GATEWAY_DEMO_WORD_DELAY": "-1ns"}
	args := []string{"-addr", "127.0.0.1:0", "-agents", file, "-send-rate", "0", "-drain-timeout", "1ns"}
	g := startRun(t, env, args...)
	c := lifeConv(t, g.URL, "r", "life")
	c.Request(&protocol.Send{Conversation: "r", Text: "/tool slow__wait {}\n/tool ask {}"})
	calls := ofType(c.ReadUntil(func(f *protocol.ServerFrame) bool {
		return f.Type == protocol.EventToolCall && f.Name == "ask"
	}), protocol.EventToolCall)
	_ = c.WS.Close(websocket.StatusNormalClosure, "")
	g.Stop(t)

	g = startRun(t, env, args...)
	log := readLog(t, g.URL, "r")
	results := map[string]string{}
	for _, raw := range log {
		if f := decodeFrame(t, raw); f.Type == protocol.EventToolResult {
			results[f.Call] = f.Status
		}
	}
	end := decodeFrame(t, log[len(log)-1])
	for _, call := range calls {
		if results[call.Call] != protocol.ResultInterrupted {
			t.Errorf("call %s (%s) ended %q, want interrupted", call.Call, call.Name, results[call.Call])
		}
	}
	if end.Type != protocol.EventTurnEnd || end.StopReason != protocol.StopInterrupted || end.Steps != 1 {
		t.Errorf("the log ends with %s %s after %d steps, want turn_end interrupted after 1", end.Type, end.StopReason, end.Steps)
	}
	c = conntest.Dial(t, g.URL, "/v1/ws")
	if f := c.Call(&protocol.Approve{ID: "a", Conversation: "r", Call: calls[0].Call, Approved: true}); f.Code != protocol.CodeBadRequest {
		t.Errorf("an approve after the restart: %s %s, want bad_request", f.Type, f.Code)
	}
	if f := c.Call(&protocol.ToolOutput{ID: "o", Conversation: "r", Call: calls[1].Call, Output: json.RawMessage(`1`)}); f.Code != protocol.CodeBadRequest {
		t.Errorf("a tool_output after the restart: %s %s, want bad_request", f.Type, f.Code)
	}
	nextTurnWorks(t, c, "r")
	_ = c.WS.Close(websocket.StatusNormalClosure, "")
}
