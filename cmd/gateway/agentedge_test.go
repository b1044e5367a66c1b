package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/chatgateway/gateway/internal/bedrock/fakebedrock"
	"github.com/chatgateway/gateway/internal/conn/conntest"
	"github.com/chatgateway/gateway/protocol"
)

// startAgentsGateway runs the gateway with the demo model and the agents
// file yaml, and returns the file's path.
func startAgentsGateway(t *testing.T, yaml string) (*gateway, string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "agents.yaml")
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return startRun(t, map[string]string{"GATEWAY_DB": filepath.Join(t.TempDir(), "gateway.db"), "GATEWAY_DEMO_WORD_DELAY": "-1ns"},
		"-addr", "127.0.0.1:0", "-agents", file, "-send-rate", "0"), file
}

// readRawUntil reads c's frames as sent until one of type typ, and
// returns them undecoded.
func readRawUntil(t *testing.T, c *conntest.Client, typ string) [][]byte {
	t.Helper()
	var frames [][]byte
	for {
		ctx, cancel := context.WithTimeout(context.Background(), conntest.Timeout)
		_, data, err := c.WS.Read(ctx)
		cancel()
		if err != nil {
			t.Fatalf("read after %d frames: %v", len(frames), err)
		}
		frames = append(frames, data)
		var f protocol.ServerFrame
		if json.Unmarshal(data, &f) == nil && f.Type == typ {
			return frames
		}
	}
}

// TestAgentsToolOutputNotUTF8: an HTTP tool whose JSON body is not UTF-8
// (a legacy service answering in Latin-1) gives a tool_result that is
// still a valid WebSocket text frame, live and on resume, the bytes that
// are not UTF-8 replaced; a browser fails a connection that gets a text
// frame that is not UTF-8, and would again on every resume.
func TestAgentsToolOutputNotUTF8(t *testing.T) {
	t.Parallel()
	legacy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=iso-8859-1")
		_, _ = io.WriteString(w, "{\"name\":\"Jos\xe9\"}")
	}))
	t.Cleanup(legacy.Close)
	g, _ := startAgentsGateway(t, fmt.Sprintf("tools:\n  - name: legacy\n    http: {url: %s}\nagents:\n  - name: a\n    tools: [legacy]\n", legacy.URL))

	c := conntest.Dial(t, g.URL, "/v1/ws")
	if f := c.Call(&protocol.Create{ID: "create", Conversation: "latin1", Agent: "a"}); f.Type != protocol.ReplyCreated {
		t.Fatalf("create: %s %s", f.Type, f.ErrorMessage())
	}
	c.Request(&protocol.Send{Conversation: "latin1", Text: "/tool legacy {}"})
	live := readRawUntil(t, c, protocol.EventTurnEnd)
	resumed := readRawUntil(t, conntest.Dial(t, g.URL, "/v1/ws?conversation=latin1&after=0"), protocol.EventTurnEnd)
	for name, frames := range map[string][][]byte{"live": live, "resumed": resumed} {
		var result *protocol.ServerFrame
		for _, data := range frames {
			if !utf8.Valid(data) {
				t.Errorf("%s: a text frame that is not UTF-8: %q", name, data)
			}
			var f protocol.ServerFrame
			if json.Unmarshal(data, &f) == nil && f.Type == protocol.EventToolResult {
				result = &f
			}
		}
		if result == nil || result.Status != protocol.ResultOK || string(result.Output) != `{"name":"Jos`+"\uFFFD"+`"}` {
			t.Errorf("%s: tool_result %+v", name, result)
		}
	}
}

// TestAgentsAnswerAfterAgentRemoved: a reload that removes an agent while
// its turn waits for a client's output leaves the turn with the
// definition it started with, so the output is taken, and the turn goes
// on; a new message is refused.
func TestAgentsAnswerAfterAgentRemoved(t *testing.T) {
	t.Parallel()
	const keep = "tools:\n  - name: confirm\n    client: {}\nagents:\n  - name: b\n"
	g, file := startAgentsGateway(t, keep+"  - name: a\n    tools: [confirm]\n")

	c := conntest.Dial(t, g.URL, "/v1/ws")
	if f := c.Call(&protocol.Create{ID: "create", Conversation: "removed", Agent: "a"}); f.Type != protocol.ReplyCreated {
		t.Fatalf("create: %s %s", f.Type, f.ErrorMessage())
	}
	c.Request(&protocol.Send{Conversation: "removed", Text: "/tool confirm {}"})
	calls := ofType(c.ReadUntil(conntest.IsType(protocol.EventToolCall)), protocol.EventToolCall)
	if len(calls) != 1 || calls[0].Status != protocol.CallAwaitingClient {
		t.Fatalf("tool_calls %+v", calls)
	}
	if err := os.WriteFile(file, []byte(keep), 0o600); err != nil {
		t.Fatal(err)
	}
	agentsAfterHangup(t, g.URL, 1)

	other := conntest.Dial(t, g.URL, "/v1/ws")
	if a := other.Call(&protocol.ToolOutput{ID: "o", Conversation: "removed", Call: calls[0].Call,
		Output: json.RawMessage(`{"confirmed":true}`)}); a.Type != protocol.ReplyAccepted {
		t.Fatalf("tool_output after the agent was removed: %s %s %s", a.Type, a.Code, a.ErrorMessage())
	}
	frames := c.ReadUntil(conntest.IsType(protocol.EventTurnEnd))
	res := ofType(frames, protocol.EventToolResult)
	if len(res) != 1 || res[0].Status != protocol.ResultOK || string(res[0].Output) != `{"confirmed":true}` {
		t.Errorf("tool_results %+v", res)
	}
	if end := frames[len(frames)-1]; end.StopReason != protocol.StopEndTurn {
		t.Errorf("turn_end %s %+v", end.StopReason, end.Error)
	}
	// A new message is refused: the agent is gone.
	if e := other.Call(&protocol.Send{ID: "s", Conversation: "removed", Text: "more"}); e.Code != protocol.CodeNotFound {
		t.Errorf("send after the agent was removed: %s %s %s", e.Type, e.Code, e.ErrorMessage())
	}
}

// TestAgentsCallIDWithDotsAndColons: Bedrock's tool-use ids may hold '.'
// and ':' (some models number their calls "functions.NAME:N"); such a
// call can be approved and answered, over WebSocket and HTTP, and the
// next turn replays it.
func TestAgentsCallIDWithDotsAndColons(t *testing.T) {
	t.Parallel()
	r := startAgentRigWith(t, toolModelIDs(func(call, i int, name string) string { return fmt.Sprintf("functions.%s:%d", name, 10*call+i) }))

	c := r.agentConv(t, "dotted", "support")
	other := conntest.Dial(t, r.g.URL, "/v1/ws")
	c.Request(&protocol.Send{Conversation: "dotted", Text: "/tool confirm {}\n/tool refund {\"id\":\"1\"}"})
	var calls []protocol.ServerFrame
	for len(calls) < 2 {
		calls = append(calls, ofType([]protocol.ServerFrame{c.Read()}, protocol.EventToolCall)...)
	}
	if !strings.HasPrefix(calls[0].Call, "functions.confirm:") || !strings.HasPrefix(calls[1].Call, "functions.refund:") {
		t.Fatalf("tool_calls %+v", calls)
	}
	if a := other.Call(&protocol.ToolOutput{ID: "o", Conversation: "dotted", Call: calls[0].Call,
		Output: json.RawMessage(`{"confirmed":true}`)}); a.Type != protocol.ReplyAccepted {
		t.Fatalf("tool_output: %s %s %s", a.Type, a.Code, a.ErrorMessage())
	}
	// As encodeURIComponent escapes it: ':' as %3A.
	url := r.g.URL + "/v1/conversations/dotted/calls/" + strings.ReplaceAll(calls[1].Call, ":", "%3A") + "/approval"
	if status, body := conntest.Do(t, "POST", url, `{"approved":true}`); status != 200 {
		t.Fatalf("POST approval: %d %s", status, body)
	}
	frames := c.ReadUntil(conntest.IsType(protocol.EventTurnEnd))
	res := ofType(frames, protocol.EventToolResult)
	if len(res) != 2 || res[0].Status != protocol.ResultOK || res[1].Status != protocol.ResultOK {
		t.Errorf("tool_results %+v", res)
	}
	if end := frames[len(frames)-1]; end.StopReason != protocol.StopEndTurn {
		t.Errorf("turn_end %s %+v", end.StopReason, end.Error)
	}
	if next := send(t, c, "dotted", "thanks"); next[len(next)-1].StopReason != protocol.StopEndTurn {
		t.Errorf("the next turn ended %s %+v", next[len(next)-1].StopReason, next[len(next)-1].Error)
	}
}

// TestAgentsRepeatedCallID: a model that gives two tool uses of one step
// the same id does not hang the turn: the first is run and answered, and
// the turn, and the next one, go on to their end.
func TestAgentsRepeatedCallID(t *testing.T) {
	t.Parallel()
	r := startAgentRigWith(t, toolModelIDs(func(call, i int, name string) string { return "tooluse_same" }))

	c := r.agentConv(t, "same", "support")
	frames := send(t, c, "same", "/tool lookup_order {\"id\":\"1\"}\n/tool lookup_order {\"id\":\"2\"}")
	calls, res := ofType(frames, protocol.EventToolCall), ofType(frames, protocol.EventToolResult)
	if len(calls) != 1 || len(res) != 1 || string(calls[0].Input) != `{"id":"1"}` || res[0].Status != protocol.ResultOK {
		t.Errorf("tool_calls %+v\ntool_results %+v, want the first use's call, answered", calls, res)
	}
	if end := frames[len(frames)-1]; end.StopReason != protocol.StopEndTurn {
		t.Errorf("turn_end %s %+v", end.StopReason, end.Error)
	}
	if next := send(t, c, "same", "thanks"); next[len(next)-1].StopReason != protocol.StopEndTurn {
		t.Errorf("the next turn ended %s %+v", next[len(next)-1].StopReason, next[len(next)-1].Error)
	}
}

// TestAgentsCallIDAgainInALaterStep: a model that numbers its tool uses
// per step ("functions.NAME:0" at every step) gives a later step's call
// an earlier one's id; the next turn replays each step's call with its
// own result.
func TestAgentsCallIDAgainInALaterStep(t *testing.T) {
	t.Parallel()
	r := startAgentRigWith(t, toolModelIDs(func(call, i int, name string) string { return fmt.Sprintf("functions.%s:%d", name, i) }))

	// "tight" makes two model calls: the first step's call runs, the
	// second's is refused (max_steps), under the same id.
	c := r.agentConv(t, "again", "tight")
	frames := send(t, c, "again", `/loop lookup_order {"id":"1"}`)
	if res := ofType(frames, protocol.EventToolResult); len(res) != 2 || res[0].Status != protocol.ResultOK || res[1].Status != protocol.ResultError {
		t.Fatalf("tool_results %+v", res)
	}
	if next := send(t, c, "again", "thanks"); next[len(next)-1].StopReason != protocol.StopEndTurn {
		t.Fatalf("the next turn ended %s %+v", next[len(next)-1].StopReason, next[len(next)-1].Error)
	}
	reqs := r.fake.Requests()
	msgs := reqs[len(reqs)-1].Body.Messages
	if len(msgs) < 5 || msgs[2].Content[0].ToolResult == nil || msgs[4].Content[0].ToolResult == nil {
		b, _ := json.Marshal(msgs)
		t.Fatalf("the next turn's messages %s", b)
	}
	if first, second := msgs[2].Content[0].ToolResult, msgs[4].Content[0].ToolResult; first.Status == "error" || second.Status != "error" {
		b, _ := json.Marshal(msgs)
		t.Errorf("step 1's result replayed with status %q, step 2's with %q, want step 1's ok and step 2's error: %s", first.Status, second.Status, b)
	}
}

// toolModelIDs is toolModel with each tool use's id given by id, of the
// model call, the use's index in its step and the tool's name.
func toolModelIDs(id func(call, i int, name string) string) func(int, fakebedrock.Request) fakebedrock.Reply {
	return func(call int, req fakebedrock.Request) fakebedrock.Reply {
		reply := toolModel(call, req)
		for i := range reply.ToolUses {
			reply.ToolUses[i].ID = id(call, i, reply.ToolUses[i].Name)
		}
		return reply
	}
}
