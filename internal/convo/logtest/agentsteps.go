package logtest

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

// testAgentStepHistory runs two agent turns of three steps each on the
// Log, and checks every request the model gets, byte for byte: at each
// step the conversation so far (the earlier turn's steps, in order) and
// the turn's own steps, each step's text and tool uses followed by their
// results in the order of the uses (an error result included), with the
// tool-use ids of the first turn used again in the second. Tool inputs
// and outputs with spaces and HTML characters are sent as the log gives
// them back, but for the results of the step just ended.
func testAgentStepHistory(t *testing.T, storage Storage) {
	model := &scripted{}
	svc, c := serve(t, storage, model, &stepTools{})
	sub := turnEnds{ch: make(chan *protocol.Event, 1)}
	for _, text := range []string{"First.", "Second."} {
		if _, err := svc.Send(ctx, "alice", &protocol.Send{Conversation: c.ID, Text: text}, sub); err != nil {
			t.Fatal(err)
		}
		if end := sub.next(t); end.StopReason != protocol.StopEndTurn || end.Message.Text != "Looking up. Again.Done." {
			t.Fatalf("turn %q ended %s with %q", text, end.StopReason, end.Message.Text)
		}
	}
	// Tool inputs and outputs as the log gives them back: compact, with
	// HTML characters escaped.
	turn1 := []string{
		`assistant "Looking up. " uses [u1 t {"q":"\u003ca\u003e"}] [u2 t {"q":"b"}]`,
		`user results [u1 {"r":"\u003ca\u003e"}] [u2 {"r":"b"}]`,
		`assistant "Again." uses [u3 t {"q":"fail"}]`,
		`user results [u3 error "no such thing"]`,
	}
	first := append([]string{`user "First."`}, turn1...)
	second := append(append(append([]string{}, first...), `assistant "Done."`, `user "Second."`), turn1...)
	// The results of the step just ended come from the calls, as the
	// tool gave them.
	fresh := func(lines []string) []string {
		return append(lines[:len(lines)-1:len(lines)-1], `user results [u1 {"r": "<a>"}] [u2 {"r": "b"}]`)
	}
	want := [][]string{first[:1], fresh(first[:3]), first, second[:len(first)+2], fresh(second[:len(first)+4]), second}
	model.mu.Lock()
	defer model.mu.Unlock()
	if len(model.seen) != len(want) {
		t.Fatalf("the model got %d requests, want %d", len(model.seen), len(want))
	}
	for i, w := range want {
		if got := strings.Join(model.seen[i], "\n"); got != strings.Join(w, "\n") {
			t.Errorf("request %d: history\n%s\nwant\n%s", i+1, got, strings.Join(w, "\n"))
		}
	}
}

// scripted is a model that answers a user's text in three steps: "Looking
// up. " (in two chunks) with two calls of "t", then "Again." with one
// that fails, then "Done.". It keeps each request's history, written out.
type scripted struct {
	mu   sync.Mutex
	seen [][]string
}

func (m *scripted) Stream(_ context.Context, req convo.ModelRequest, emit func(convo.Chunk)) (convo.Result, error) {
	var lines []string
	step := 1
	for _, h := range req.History {
		lines = append(lines, historyLine(h))
		switch {
		case h.Role == protocol.RoleUser && len(h.ToolResults) == 0:
			step = 1
		case h.Role == protocol.RoleUser:
			step++
		}
	}
	m.mu.Lock()
	m.seen = append(m.seen, lines)
	m.mu.Unlock()
	use := func(id, q string) convo.ToolUse {
		return convo.ToolUse{ID: id, Name: "t", Input: json.RawMessage(`{ "q": "` + q + `" }`)}
	}
	switch step {
	case 1:
		emit(convo.Chunk{Kind: convo.ChunkText, Text: "Looking "})
		emit(convo.Chunk{Kind: convo.ChunkText, Text: "up. "})
		return convo.Result{StopReason: protocol.StopToolUse, ToolUses: []convo.ToolUse{use("u1", "<a>"), use("u2", "b")}}, nil
	case 2:
		emit(convo.Chunk{Kind: convo.ChunkText, Text: "Again."})
		return convo.Result{StopReason: protocol.StopToolUse, ToolUses: []convo.ToolUse{use("u3", "fail")}}, nil
	}
	emit(convo.Chunk{Kind: convo.ChunkText, Text: "Done."})
	return convo.Result{StopReason: protocol.StopEndTurn}, nil
}

// historyLine writes h out with its JSON values as they are.
func historyLine(h convo.HistoryMessage) string {
	var b strings.Builder
	b.WriteString(h.Role)
	if h.Text != "" || len(h.ToolResults) == 0 {
		fmt.Fprintf(&b, " %q", h.Text)
	}
	if len(h.ToolUses) > 0 {
		b.WriteString(" uses")
	}
	for _, u := range h.ToolUses {
		fmt.Fprintf(&b, " [%s %s %s]", u.ID, u.Name, u.Input)
	}
	if len(h.ToolResults) > 0 {
		b.WriteString(" results")
	}
	for _, r := range h.ToolResults {
		if r.Error != "" {
			fmt.Fprintf(&b, " [%s error %q]", r.ID, r.Error)
		} else {
			fmt.Fprintf(&b, " [%s %s]", r.ID, r.Output)
		}
	}
	return b.String()
}

// stepTools offers the agent "a", whose tool "t" answers {"q":X} with
// {"r": X}, and fails for X "fail".
type stepTools struct{}

func (stepTools) Agent(name, _, _ string) (*convo.Agent, bool) {
	run := func(_ context.Context, call convo.ToolCall, _ func(convo.ToolProgress)) convo.ToolOutcome {
		var in struct{ Q string }
		if err := json.Unmarshal(call.Input, &in); err != nil || in.Q == "fail" {
			return convo.ToolOutcome{Status: protocol.ResultError, Error: "no such thing"}
		}
		return convo.ToolOutcome{Status: protocol.ResultOK, Output: json.RawMessage(`{"r": "` + in.Q + `"}`)}
	}
	return &convo.Agent{Name: name, Model: "m", MaxSteps: 4, Run: run,
		Tools: []convo.AgentTool{{ToolSpec: convo.ToolSpec{Name: "t"}, Kind: protocol.ToolKindHTTP, Timeout: time.Minute}}}, name == "a"
}

func (stepTools) Allowed(context.Context, string) bool { return true }

func (stepTools) List(context.Context) []protocol.AgentInfo { return nil }
