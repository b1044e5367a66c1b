package bedrock_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatgateway/gateway/internal/bedrock"
	"github.com/chatgateway/gateway/internal/bedrock/fakebedrock"
	"github.com/chatgateway/gateway/internal/conn"
	"github.com/chatgateway/gateway/internal/conn/conntest"
	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/httpapi"
	"github.com/chatgateway/gateway/protocol"
)

// TestToolInputOverLimit runs an agent's turn through the whole gateway
// (WebSocket, convo, bbolt) against the fake, whose model streams a tool
// use with more than convo.MaxReplyBytes of input: tool inputs share the
// reply's room, so the turn ends max_tokens with the step's text, no
// tool_call is stored or sent and the tool does not run, and the
// conversation's next turn runs. An input that passes the room only
// once escaped is read whole (the turn decides); one whose bytes pass it
// (here 8 MiB) is not read to its end: the adapter closes the stream as
// it passes, before the metadata with the usage, and the fake sees the
// client go.
func TestToolInputOverLimit(t *testing.T) {
	escaped := []string{`{"text":"`}
	for range convo.MaxReplyBytes / 1000 {
		escaped = append(escaped, strings.Repeat("<", 1000))
	}
	escaped = append(escaped, `"}`)
	long := []string{`{"text":"`}
	for range 128 {
		long = append(long, strings.Repeat("x", 64<<10))
	}
	long = append(long, `"}`)
	for _, tc := range []struct {
		name  string
		input []string
		// cut says the adapter stops reading the stream.
		cut bool
	}{
		{"escaped past the room", escaped, false},
		{"8 MiB", long, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gone := make(chan struct{})
			srv := startFake(t, func(call int, _ fakebedrock.Request) fakebedrock.Reply {
				if call == 1 {
					// Delay paces the events, so that the fake sees the
					// client go before it has written the rest.
					return fakebedrock.Reply{Chunks: []string{"Writing."}, StopReason: "tool_use",
						ToolUses: []fakebedrock.ToolUse{{ID: "tooluse_w", Name: "write", Input: tc.input}},
						Usage:    fakebedrock.Usage{InputTokens: 5, OutputTokens: 7}, Delay: time.Microsecond, Gone: gone}
				}
				return fakebedrock.Reply{Chunks: []string{"ok"}}
			})
			agents := &writer{}
			log := testLogger(t)
			gw := conntest.Start(t, conntest.Config{
				Model: newClient(t, srv, bedrock.Options{}),
				Convo: convo.Config{DefaultModel: testModel, Agents: agents, Logger: log},
				Conn:  conn.Options{Logger: log},
				API:   httpapi.Options{Logger: log},
			})
			ws := gw.Dial(t, "")
			ws.Call(&protocol.Create{ID: "c", Conversation: "c1", Agent: "a"})
			ws.Request(&protocol.Send{Conversation: "c1", Text: "Write it all down."})
			frames := ws.ReadUntil(conntest.IsType(protocol.EventTurnEnd))
			for _, f := range frames {
				if f.Type == protocol.EventToolCall {
					t.Fatalf("a tool_call with %d bytes of input was sent", len(f.Input))
				}
			}
			end := frames[len(frames)-1]
			if end.StopReason != protocol.StopMaxTokens || end.StoredMessage().Text != "Writing." {
				t.Fatalf("the turn ended %s with %q, want max_tokens with \"Writing.\"", end.StopReason, end.StoredMessage().Text)
			}
			if n := agents.runs.Load(); n != 0 {
				t.Fatalf("the tool ran %d times, want none", n)
			}
			if read := end.Usage != nil && end.Usage.OutputTokens == 7; read == tc.cut {
				t.Fatalf("turn_end usage %+v: the stream read to its end is %v, want %v", end.Usage, read, !tc.cut)
			}
			if tc.cut {
				<-gone
			}
			if text, end := turn(t, ws, "c1", "Thanks."); text != "ok" || end.StopReason != protocol.StopEndTurn {
				t.Fatalf("the next turn ended %s with %q, want end_turn with \"ok\"", end.StopReason, text)
			}
		})
	}
}

// writer offers one agent, "a", whose tool "write" counts its runs.
type writer struct{ runs atomic.Int32 }

func (w *writer) Agent(name, _, _ string) (*convo.Agent, bool) {
	run := func(context.Context, convo.ToolCall, func(convo.ToolProgress)) convo.ToolOutcome {
		w.runs.Add(1)
		return convo.ToolOutcome{Status: protocol.ResultOK, Output: json.RawMessage(`{}`)}
	}
	return &convo.Agent{Name: name, Model: testModel, MaxSteps: 4, Run: run,
		Tools: []convo.AgentTool{{ToolSpec: convo.ToolSpec{Name: "write"}, Kind: protocol.ToolKindHTTP, Timeout: time.Minute}}}, name == "a"
}

func (*writer) Allowed(context.Context, string) bool { return true }

func (*writer) List(context.Context) []protocol.AgentInfo { return nil }
