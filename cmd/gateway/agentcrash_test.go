package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/chatgateway/gateway/internal/bedrock/fakebedrock"
	"github.com/chatgateway/gateway/internal/conn/conntest"
	"github.com/chatgateway/gateway/protocol"
)

// TestAgentsCrash kills the gateway binary (SIGKILL) while an agent's turn
// has a tool running and another waiting for a client, restarts it, and
// checks that every open call got a tool_result "interrupted", that the
// turn ended "interrupted", and that the next turn works: the fake Bedrock
// accepts the replayed exchange.
func TestAgentsCrash(t *testing.T) {
	t.Parallel()
	tools := startTools(t)
	fake := fakebedrock.New(toolModel)
	t.Cleanup(fake.Close)
	bin, args := crashArgs(t, fake, tools)

	p := startBinary(t, bin, args...)
	c := conntest.Dial(t, p.URL, "/v1/ws")
	if f := c.Call(&protocol.Create{ID: "create", Conversation: "crash", Agent: "support"}); f.Type != protocol.ReplyCreated {
		t.Fatalf("create: %s %s", f.Code, f.ErrorMessage())
	}
	c.Request(&protocol.Send{Conversation: "crash", Text: "/tool hang {}\n/tool confirm {}"})
	seen := ofType(c.ReadUntil(func(f *protocol.ServerFrame) bool {
		return f.Type == protocol.EventToolCall && f.Status == protocol.CallAwaitingClient
	}), protocol.EventToolCall)
	<-tools.hanging // the HTTP tool runs
	if err := p.end(os.Kill); err == nil {
		t.Fatal("the gateway exited cleanly after SIGKILL")
	}

	p = startBinary(t, bin, args...)
	results := map[string]string{}
	var end protocol.ServerFrame
	for _, raw := range readLog(t, p.URL, "crash") {
		switch f := decodeFrame(t, raw); f.Type {
		case protocol.EventToolResult:
			if _, dup := results[f.Call]; dup {
				t.Errorf("call %s has two tool_results", f.Call)
			}
			results[f.Call] = f.Status
		case protocol.EventTurnEnd:
			end = f
			if len(results) != len(seen) {
				t.Errorf("turn_end before the tool_results of every call: %v", results)
			}
		}
	}
	for _, call := range seen {
		if results[call.Call] != protocol.ResultInterrupted {
			t.Errorf("call %s (%s) ended %q, want interrupted", call.Call, call.Name, results[call.Call])
		}
	}
	if end.StopReason != protocol.StopInterrupted || end.Steps != 1 {
		t.Errorf("turn_end %s after %d steps, want interrupted after 1", end.StopReason, end.Steps)
	}

	c = conntest.Dial(t, p.URL, "/v1/ws")
	frames := send(t, c, "crash", "are you there?")
	// The model gets the interrupted results first, then the new message.
	if last := frames[len(frames)-1]; last.StopReason != protocol.StopEndTurn ||
		!strings.Contains(last.StoredMessage().Text, "the gateway stopped during the call") {
		t.Errorf("the turn after the restart ended %s %q %+v", last.StopReason, last.StoredMessage().Text, last.Error)
	}
	// A client that does not read would hold the gateway's closing
	// handshake for its 5 s timeout.
	_ = c.WS.Close(websocket.StatusNormalClosure, "")
	if err := p.end(os.Interrupt); err != nil {
		t.Errorf("the gateway stopped with %v after SIGINT", err)
	}
}

// TestAgentsCrashSteps kills the gateway binary while the model streams a
// step's text: in one conversation the second step (after a tool call's
// result), in another the first (before any tool call). After the restart
// each turn_end counts the model calls made, the one cut off included,
// as the stored events show them: steps 2 and 1.
func TestAgentsCrashSteps(t *testing.T) {
	t.Parallel()
	tools := startTools(t)
	hold := make(chan struct{})
	// Each held reply streams its first chunk, then waits for the kill.
	fake := fakebedrock.New(func(call int, req fakebedrock.Request) fakebedrock.Reply {
		reply := toolModel(call, req)
		last := req.Body.Messages[len(req.Body.Messages)-1]
		switch cmd := turnCommand(req.Body.Messages); {
		case cmd == "hold":
			reply = fakebedrock.Reply{Chunks: []string{"Hel", "lo."}, Hold: hold, HoldAfter: 1}
		case strings.HasPrefix(cmd, "/tool") && last.Content[0].ToolResult != nil:
			reply.Hold, reply.HoldAfter = hold, 1
		}
		return reply
	})
	t.Cleanup(fake.Close)
	t.Cleanup(func() { close(hold) })
	bin, args := crashArgs(t, fake, tools)

	p := startBinary(t, bin, args...)
	c := conntest.Dial(t, p.URL, "/v1/ws")
	cases := []struct {
		conv, text, want string
		steps            int
	}{
		{"second", `/tool lookup_order {"id":"7"}`, "Let me check. Results: ", 2},
		{"first", "hold", "Hel", 1},
	}
	for _, tc := range cases {
		if f := c.Call(&protocol.Create{ID: "create", Conversation: tc.conv, Agent: "support"}); f.Type != protocol.ReplyCreated {
			t.Fatalf("create: %s %s", f.Code, f.ErrorMessage())
		}
		c.Request(&protocol.Send{Conversation: tc.conv, Text: tc.text})
		// The held chunk is stored: its delta ends the text to keep.
		text := ""
		c.ReadUntil(func(f *protocol.ServerFrame) bool {
			if f.Type == protocol.EventDelta && f.Conversation == tc.conv {
				text += f.Text
			}
			return text == tc.want
		})
	}
	if err := p.end(os.Kill); err == nil {
		t.Fatal("the gateway exited cleanly after SIGKILL")
	}

	p = startBinary(t, bin, args...)
	for _, tc := range cases {
		log := readLog(t, p.URL, tc.conv)
		end := decodeFrame(t, log[len(log)-1])
		if end.Type != protocol.EventTurnEnd || end.StopReason != protocol.StopInterrupted || end.Steps != tc.steps ||
			end.StoredMessage().Text != tc.want {
			t.Errorf("%s: last event %s %s after %d steps, text %q; want turn_end interrupted after %d steps, text %q",
				tc.conv, end.Type, end.StopReason, end.Steps, end.StoredMessage().Text, tc.steps, tc.want)
		}
	}
	c = conntest.Dial(t, p.URL, "/v1/ws")
	if frames := send(t, c, "second", "are you there?"); frames[len(frames)-1].StopReason != protocol.StopEndTurn {
		t.Errorf("the turn after the restart ended %s", frames[len(frames)-1].StopReason)
	}
	_ = c.WS.Close(websocket.StatusNormalClosure, "")
	if err := p.end(os.Interrupt); err != nil {
		t.Errorf("the gateway stopped with %v after SIGINT", err)
	}
}

// crashArgs builds the gateway binary and returns it with the arguments
// of the crash tests: a database in t.TempDir, the fake Bedrock fake and
// the agents file with tools.
func crashArgs(t *testing.T, fake *fakebedrock.Server, tools *toolServer) (string, []string) {
	t.Helper()
	return buildGateway(t), []string{"-addr", "127.0.0.1:0", "-db", filepath.Join(t.TempDir(), "gateway.db"), "-provider", "bedrock",
		"-model", agentModel, "-region", "us-east-1", "-bedrock-endpoint", fake.URL,
		"-agents", agentsFile(t, tools, startMCP(t))}
}
