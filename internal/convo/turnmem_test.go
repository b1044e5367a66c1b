package convo_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"
	"weak"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

// TestWaitingAgentTurnsHoldNoHistory starts an agent's turn in each of
// several conversations, whose call waits for the user's approval. While
// they wait, a history the hubs do not keep is garbage: a waiting turn
// holds none itself, however many wait and however long their
// conversations are. The hubs keep one a conversation (none over
// HistoryHubBytes) within HistoryCacheBytes for all: past those, the
// histories are not held. Once approved, each turn's next step gets its
// history back whole, kept or read from the log, and nothing stays kept.
func TestWaitingAgentTurnsHoldNoHistory(t *testing.T) {
	for _, tc := range []struct {
		name        string
		turns, size int // of the one message of each conversation
		// kept is how many histories the hubs keep, at most (and at
		// least one, when not 0).
		kept int
	}{
		{"over a hub's bound", 4, convo.HistoryHubBytes, 0},
		{"over the bound of all", convo.HistoryCacheBytes/convo.HistoryHubBytes + 2, convo.HistoryHubBytes - 4<<10,
			convo.HistoryCacheBytes / (convo.HistoryHubBytes - 4<<10)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			model := &askModel{size: tc.size, texts: map[string]weak.Pointer[byte]{}}
			s := openConfigured(t, t.TempDir()+"/gateway.db", model, func(l convo.Log) convo.Log { return l },
				convo.Config{Agents: askAgents{}, MaxTextBytes: tc.size})
			sub := &callEvents{ch: make(chan *protocol.Event, 2*tc.turns)}
			var ids []string
			for i := range tc.turns {
				c, err := s.Create(context.Background(), "u1", &protocol.Create{Agent: "ask"})
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, c.ID)
				send(t, s, c.ID, fmt.Sprintf("%03d:%s", i, strings.Repeat("x", tc.size-4)), sub)
			}
			for range tc.turns {
				if ev := sub.next(t); ev.Type != protocol.EventToolCall || ev.Status != protocol.CallAwaitingApproval {
					t.Fatalf("got a %s event (status %q), want a tool_call awaiting approval", ev.Type, ev.Status)
				}
			}
			// Every turn stored its tool_call: each now waits for its approval.
			runtime.GC()
			held := 0
			model.mu.Lock()
			for _, p := range model.texts {
				if p.Value() != nil {
					held++
				}
			}
			model.mu.Unlock()
			if kept := s.KeptHistoryBytes(); held > tc.kept || tc.kept > 0 && held == 0 || kept > convo.HistoryCacheBytes {
				t.Errorf("%d histories held while their turns wait, %d bytes kept; want up to %d, and at least one if any, within %d bytes",
					held, kept, tc.kept, convo.HistoryCacheBytes)
			}
			for _, id := range ids {
				if err := s.Approve(context.Background(), "u1", &protocol.Approve{Conversation: id, Call: "c1", Approved: true}); err != nil {
					t.Fatal(err)
				}
			}
			for range tc.turns {
				if ev := sub.next(t); ev.Type != protocol.EventTurnEnd || ev.StopReason != protocol.StopEndTurn {
					t.Fatalf("got a %s event (stop reason %q), want the turn's end", ev.Type, ev.StopReason)
				}
			}
			noHistoryKept(t, s.Service)
		})
	}
}

// askModel asks for the tool "t" at the first step of a turn, noting a
// weak pointer to its first message's text, and at the next step ends
// the turn "ok" if its history is the whole conversation so far: a
// message of size bytes, "Asking." with its tool use, and its result.
type askModel struct {
	size  int
	mu    sync.Mutex
	texts map[string]weak.Pointer[byte] // by the text's start
}

func (m *askModel) Stream(_ context.Context, req convo.ModelRequest, emit func(convo.Chunk)) (convo.Result, error) {
	h := req.History
	if len(h) == 1 {
		m.mu.Lock()
		m.texts[strings.Clone(h[0].Text[:8])] = weak.Make(unsafe.StringData(h[0].Text))
		m.mu.Unlock()
		emit(convo.Chunk{Kind: convo.ChunkText, Text: "Asking."})
		return convo.Result{StopReason: protocol.StopToolUse, ToolUses: []convo.ToolUse{{ID: "c1", Name: "t", Input: json.RawMessage(`{}`)}}}, nil
	}
	if len(h) != 3 || len(h[0].Text) != m.size || h[1].Text != "Asking." || len(h[1].ToolUses) != 1 ||
		len(h[2].ToolResults) != 1 || string(h[2].ToolResults[0].Output) != `{"ok":true}` {
		return convo.Result{}, fmt.Errorf("unexpected history at the second step: %d messages", len(h))
	}
	emit(convo.Chunk{Kind: convo.ChunkText, Text: "ok"})
	return convo.Result{StopReason: protocol.StopEndTurn}, nil
}

// askAgents offers the agent "ask", whose tool "t" needs approval.
type askAgents struct{}

func (askAgents) Agent(name, _, _ string) (*convo.Agent, bool) {
	run := func(context.Context, convo.ToolCall, func(convo.ToolProgress)) convo.ToolOutcome {
		return convo.ToolOutcome{Status: protocol.ResultOK, Output: json.RawMessage(`{"ok":true}`)}
	}
	return &convo.Agent{Name: name, Model: "m", Run: run, Tools: []convo.AgentTool{
		{ToolSpec: convo.ToolSpec{Name: "t"}, Kind: protocol.ToolKindHTTP, Approval: true, Timeout: time.Hour}}}, name == "ask"
}

func (askAgents) Allowed(context.Context, string) bool { return true }

func (askAgents) List(context.Context) []protocol.AgentInfo { return nil }

// callEvents is a subscriber that passes on the tool_call and turn_end
// events it gets.
type callEvents struct{ ch chan *protocol.Event }

func (c *callEvents) Send(f convo.Frame) bool {
	if !bytes.Contains(f.Data, []byte(`"type":"tool_call"`)) && !bytes.Contains(f.Data, []byte(`"type":"turn_end"`)) {
		return true
	}
	var ev protocol.Event
	if err := json.Unmarshal(f.Data, &ev); err != nil {
		panic(err)
	}
	c.ch <- &ev
	return true
}

func (c *callEvents) SendWait(_ context.Context, f convo.Frame) error { c.Send(f); return nil }

func (*callEvents) Gone(string) {}

// next returns the next event passed on.
func (c *callEvents) next(t *testing.T) *protocol.Event {
	t.Helper()
	return <-c.ch
}
