package convo_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/convo/boltlog"
	"github.com/chatgateway/gateway/protocol"
)

// stepModel calls the tool "t" (calls times at once) in the first step of
// a turn and ends the turn when it gets the results. It measures the
// gateway's own time per tool step: from returning the tool uses to being
// called again, less the time the tool itself took.
type stepModel struct {
	calls int

	mu       sync.Mutex
	n        int
	stopped  time.Time     // when the last tool_use reply returned
	toolTime time.Duration // the longest call of the step, as the tool measured it
	gaps     []time.Duration
}

func (m *stepModel) Stream(_ context.Context, req convo.ModelRequest, emit func(convo.Chunk)) (convo.Result, error) {
	now := time.Now()
	if last := req.History[len(req.History)-1]; len(last.ToolResults) > 0 {
		m.mu.Lock()
		m.gaps = append(m.gaps, now.Sub(m.stopped)-m.toolTime)
		m.mu.Unlock()
		emit(convo.Chunk{Kind: convo.ChunkText, Text: "done"})
		return convo.Result{StopReason: protocol.StopEndTurn}, nil
	}
	emit(convo.Chunk{Kind: convo.ChunkText, Text: "calling "})
	m.mu.Lock()
	defer m.mu.Unlock()
	var uses []convo.ToolUse
	for range m.calls {
		m.n++
		uses = append(uses, convo.ToolUse{ID: fmt.Sprintf("t%d", m.n), Name: "t", Input: json.RawMessage(`{}`)})
	}
	m.toolTime = 0
	m.stopped = time.Now()
	return convo.Result{StopReason: protocol.StopToolUse, ToolUses: uses}, nil
}

// run is the tool: it answers at once, and records how long it took.
func (m *stepModel) run(context.Context, convo.ToolCall, func(convo.ToolProgress)) convo.ToolOutcome {
	start := time.Now()
	out := convo.ToolOutcome{Status: protocol.ResultOK, Output: json.RawMessage(`{"ok":true}`)}
	d := time.Since(start)
	m.mu.Lock()
	m.toolTime = max(m.toolTime, d)
	m.mu.Unlock()
	return out
}

// benchAgents offers one agent, "bench", with the tool "t", whose calls
// wait for approval if approval is set.
type benchAgents struct {
	run      func(context.Context, convo.ToolCall, func(convo.ToolProgress)) convo.ToolOutcome
	approval bool
}

func (a benchAgents) Agent(name, _, _ string) (*convo.Agent, bool) {
	return &convo.Agent{Name: name, Model: "bench", MaxSteps: 10, Run: a.run,
		Tools: []convo.AgentTool{{ToolSpec: convo.ToolSpec{Name: "t"}, Kind: protocol.ToolKindHTTP, Approval: a.approval, Timeout: time.Minute}}}, name == "bench"
}

func (benchAgents) Allowed(context.Context, string) bool { return true }

func (benchAgents) List(context.Context) []protocol.AgentInfo { return nil }

// turnEnds signals every turn_end it is sent.
type turnEnds chan struct{}

var turnEndType = []byte(`"type":"turn_end"`)

func (t turnEnds) Send(f convo.Frame) bool {
	if bytes.Contains(f.Data, turnEndType) {
		t <- struct{}{}
	}
	return true
}

func (t turnEnds) SendWait(_ context.Context, f convo.Frame) error { t.Send(f); return nil }

func (turnEnds) Gone(string) {}

// BenchmarkToolStep measures the gateway's own time per tool step of an
// agent's turn, on the bbolt log (fsync included): from the model's
// tool_use stop to the next model call, less the tool's own time. It
// stores the step's tool_call and tool_result events on the way. It
// reports the median and the 99th percentile (p50-µs, p99-µs). The step
// reads the conversation's history back from the log: with before=N,
// every turn runs in one conversation that held N such turns to begin
// with (and grows by one a turn), else each in a new one.
func BenchmarkToolStep(b *testing.B) {
	for _, bc := range []struct{ calls, before int }{{1, 0}, {4, 0}, {1, 100}} {
		name := fmt.Sprint("calls=", bc.calls)
		if bc.before > 0 {
			name += fmt.Sprint(",before=", bc.before)
		}
		b.Run(name, func(b *testing.B) {
			model := &stepModel{calls: bc.calls}
			_, turn, newConversation := benchService(b, model)
			long := ""
			if bc.before > 0 {
				long = newConversation("long")
				for range bc.before {
					turn(long)
				}
				model.mu.Lock()
				model.gaps = nil
				model.mu.Unlock()
			}
			b.ResetTimer()
			for i := range b.N {
				if long != "" {
					turn(long)
				} else {
					turn(newConversation(fmt.Sprint("c", i)))
				}
			}
			b.StopTimer()
			model.mu.Lock()
			gaps := slices.Clone(model.gaps)
			model.mu.Unlock()
			slices.Sort(gaps)
			if len(gaps) == 0 {
				b.Fatal("no tool step measured")
			}
			b.ReportMetric(float64(gaps[len(gaps)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(gaps[len(gaps)*99/100].Microseconds()), "p99-µs")
		})
	}
}

// benchService opens a Service on a bbolt log in b's temporary directory
// whose agent "bench" calls model, and returns it with turn, which runs
// a turn in a conversation and waits for its end, and newConversation,
// which creates a conversation with the agent (under id, if not empty).
func benchService(b *testing.B, model *stepModel) (svc *convo.Service, turn func(id string), newConversation func(id string) string) {
	svc, err := boltlog.OpenService(filepath.Join(b.TempDir(), "db"), boltlog.Options{}, model,
		convo.Config{Agents: benchAgents{run: model.run}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { svc.Close(context.Background()) })
	ctx := context.Background()
	ends := make(turnEnds, 1)
	turn = func(conversation string) {
		if _, err := svc.Send(ctx, "u", &protocol.Send{Conversation: conversation, Text: "go"}, ends); err != nil {
			b.Fatal(err)
		}
		<-ends
	}
	newConversation = func(id string) string {
		info, err := svc.Create(ctx, "u", &protocol.Create{Conversation: id, Agent: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		return info.ID
	}
	return svc, turn, newConversation
}

// BenchmarkToolHistory measures the read of an agent conversation's tool
// steps from the bbolt log, as an agent's step that finds no history
// kept reads it: 100 turns of two steps each, one tool call, one delta
// a step.
func BenchmarkToolHistory(b *testing.B) {
	model := &stepModel{calls: 1}
	svc, turn, newConversation := benchService(b, model)
	id := newConversation("")
	for range 100 {
		turn(id)
	}
	b.ResetTimer()
	for range b.N {
		if _, err := svc.ToolSteps(context.Background(), id, "", 8<<20); err != nil {
			b.Fatal(err)
		}
	}
}
