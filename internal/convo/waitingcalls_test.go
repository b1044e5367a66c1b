package convo_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/metrics"
	"github.com/chatgateway/gateway/protocol"
)

// TestWaitingCallsBounded lets one call at once wait for an answer
// (MaxWaitingCalls 1). While a call waits, the calls of other
// conversations that would wait, for an approval or a client's output,
// are stored running, never awaiting an answer; an answer to one is a
// bad_request; each ends at once with an error result that says why,
// counted as such, and its turn goes on to its end. However the waiting
// call's wait ends (answered, cancelled, its conversation deleted), its
// place comes back: another conversation's call waits again.
func TestWaitingCallsBounded(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		// agent is the agent of the conversation whose call waits.
		agent string
		// end ends the wait of conversation id's call.
		end func(s *convo.Service, agent, id string) error
	}{
		{"approved", "approving", answer},
		{"answered by the client", "client", answer},
		{"cancelled", "approving", func(s *convo.Service, _, id string) error { return s.Cancel(ctx, "u1", id) }},
		{"deleted", "client", func(s *convo.Service, _, id string) error { return s.Delete(ctx, "u1", id) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := metrics.New()
			s := openConfigured(t, filepath.Join(t.TempDir(), "gateway.db"), sameCallModel{}, func(l convo.Log) convo.Log { return l },
				convo.Config{Agents: callAgents{}, MaxWaitingCalls: 1, Metrics: reg})
			held := waitingCall(t, s.Service, tc.agent)
			refusedCall(t, s.Service, "approving")
			refusedCall(t, s.Service, "client")
			var refusals dto.Metric
			if err := reg.ToolCalls.WithLabelValues("t", protocol.ResultError).Write(&refusals); err != nil {
				t.Fatal(err)
			}
			if n := refusals.GetCounter().GetValue(); n != 2 {
				t.Errorf("gateway_tool_calls_total{tool=t,status=error} is %v, want the 2 refusals", n)
			}
			if err := tc.end(s.Service, tc.agent, held); err != nil {
				t.Fatal(err)
			}
			// The held turn ends (a deleted one stores no turn_end) once
			// its wait did.
			if err := s.WaitTurns(ctx); err != nil {
				t.Fatal(err)
			}
			waitingCall(t, s.Service, "approving")
		})
	}
}

// answer answers the call "call-1" of conversation id, whose agent is
// agent: approves it, or gives the client's output.
func answer(s *convo.Service, agent, id string) error {
	if agent == "client" {
		return s.ToolOutput(context.Background(), "u1", &protocol.ToolOutput{Conversation: id, Call: "call-1", Output: json.RawMessage(`{}`)})
	}
	return s.Approve(context.Background(), "u1", &protocol.Approve{Conversation: id, Call: "call-1", Approved: true})
}

// startCall creates a conversation with agent (of callAgents) and sends
// it a message: its turn calls the agent's tool. It returns the
// conversation's id, and a recorder of its events from its tool_call on,
// with that tool_call.
func startCall(t *testing.T, s *convo.Service, agent string) (string, *recorder, *protocol.Event) {
	t.Helper()
	c, err := s.Create(context.Background(), "u1", &protocol.Create{Agent: agent})
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder(100)
	send(t, s, c.ID, "go", rec)
	evs := rec.until(t, protocol.EventToolCall)
	return c.ID, rec, evs[len(evs)-1]
}

// waitingCall starts a call of agent's tool that waits for its answer,
// and returns its conversation's id.
func waitingCall(t *testing.T, s *convo.Service, agent string) string {
	t.Helper()
	id, _, call := startCall(t, s, agent)
	want := protocol.CallAwaitingApproval
	if agent == "client" {
		want = protocol.CallAwaitingClient
	}
	if call.Status != want {
		t.Fatalf("a call of agent %s has status %s, want %s", agent, call.Status, want)
	}
	return id
}

// refusedCall starts a call of agent's tool while another waits for its
// answer, and checks that it is refused that wait.
func refusedCall(t *testing.T, s *convo.Service, agent string) {
	t.Helper()
	id, rec, call := startCall(t, s, agent)
	if call.Status != protocol.CallRunning {
		t.Errorf("a refused call of agent %s has status %s, want %s", agent, call.Status, protocol.CallRunning)
	}
	// Refused whether its result is stored yet or not.
	if err := answer(s, agent, id); protocol.AsError(err).Code != protocol.CodeBadRequest {
		t.Errorf("an answer to a refused call: %v, want bad_request", err)
	}
	evs := rec.until(t, protocol.EventTurnEnd)
	results := toolResults(evs)
	if want := protocol.ResultError + ": " + convo.WaitRefusedError; len(results) != 1 || results[0] != want {
		t.Errorf("tool_results %q, want one %q", results, want)
	}
	if end := evs[len(evs)-1]; end.StopReason != protocol.StopEndTurn || end.Message.Text != "done" {
		t.Errorf("turn_end %s %q, want end_turn %q", end.StopReason, end.Message.Text, "done")
	}
}

// TestApprovedCallRunsWithoutItsPlace lets one call at once wait for an
// answer (MaxWaitingCalls 1): an approved call's wait is over once
// approved, so that while its tool runs, another conversation's call
// waits in its place.
func TestApprovedCallRunsWithoutItsPlace(t *testing.T) {
	t.Parallel()
	agents := heldAgents{started: make(chan struct{}, 1), release: make(chan struct{})}
	defer close(agents.release)
	s := openConfigured(t, filepath.Join(t.TempDir(), "gateway.db"), sameCallModel{}, func(l convo.Log) convo.Log { return l },
		convo.Config{Agents: agents, MaxWaitingCalls: 1})
	if err := answer(s.Service, "approving", waitingCall(t, s.Service, "approving")); err != nil {
		t.Fatal(err)
	}
	<-agents.started
	waitingCall(t, s.Service, "approving")
}

// heldAgents offers the agents "approving", whose HTTP tool "t" needs
// approval, and "running", whose HTTP tool "t" needs none. A run of
// either says so on started, and runs until release lets it go (a
// receive, or its close) or its call is cancelled.
type heldAgents struct{ started, release chan struct{} }

func (a heldAgents) Agent(name, _, _ string) (*convo.Agent, bool) {
	run := func(ctx context.Context, _ convo.ToolCall, _ func(convo.ToolProgress)) convo.ToolOutcome {
		a.started <- struct{}{}
		select {
		case <-a.release:
			return convo.ToolOutcome{Status: protocol.ResultOK, Output: json.RawMessage(`{}`)}
		case <-ctx.Done():
			return convo.ToolOutcome{Status: protocol.ResultCancelled, Error: convo.CancelledCallError}
		}
	}
	return &convo.Agent{Name: name, Model: "m", Run: run, Tools: []convo.AgentTool{
			{ToolSpec: convo.ToolSpec{Name: "t"}, Kind: protocol.ToolKindHTTP, Approval: name == "approving", Timeout: time.Hour}}},
		name == "approving" || name == "running"
}

func (heldAgents) Allowed(context.Context, string) bool { return true }

func (heldAgents) List(context.Context) []protocol.AgentInfo { return nil }
