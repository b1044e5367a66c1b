package convo_test

import (
	"context"
	"path/filepath"
	"runtime"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/metrics"
	"github.com/chatgateway/gateway/protocol"
)

// TestRunLineBounded runs one tool call at once (MaxToolCalls 1) and
// lets one call at once wait in line for a run (MaxWaitingCalls 1).
// While a call runs and another waits in line, a third conversation's
// call does not wait: it ends at once with an error result that says
// why, counted as such, and its turn goes on to its end. However a wait
// in line ends (its run starts, it is cancelled), its place comes back:
// another conversation's call waits in line again.
func TestRunLineBounded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	agents := heldAgents{started: make(chan struct{}, 1), release: make(chan struct{})}
	defer close(agents.release)
	reg := metrics.New()
	s := openConfigured(t, filepath.Join(t.TempDir(), "gateway.db"), sameCallModel{}, func(l convo.Log) convo.Log { return l },
		convo.Config{Agents: agents, MaxToolCalls: 1, MaxWaitingCalls: 1, Metrics: reg})
	startCall(t, s.Service, "running")
	<-agents.started
	lineCall(t, s.Service, reg)

	_, rec, _ := startCall(t, s.Service, "running")
	evs := rec.until(t, protocol.EventTurnEnd)
	if res := toolResults(evs); len(res) != 1 || res[0] != protocol.ResultError+": "+convo.RunRefusedError {
		t.Errorf("tool_results %q, want one error %q", res, convo.RunRefusedError)
	}
	if end := evs[len(evs)-1]; end.StopReason != protocol.StopEndTurn || end.Message.Text != "done" {
		t.Errorf("turn_end %s %q, want end_turn %q", end.StopReason, end.Message.Text, "done")
	}
	var refusals dto.Metric
	if err := reg.ToolCalls.WithLabelValues("t", protocol.ResultError).Write(&refusals); err != nil {
		t.Fatal(err)
	}
	if n := refusals.GetCounter().GetValue(); n != 1 {
		t.Errorf("gateway_tool_calls_total{tool=t,status=error} is %v, want the refusal", n)
	}

	// The first run ends: the call in line runs, and gives its place back.
	agents.release <- struct{}{}
	<-agents.started
	cancelled, rec := lineCall(t, s.Service, reg)
	if err := s.Cancel(ctx, "u1", cancelled); err != nil {
		t.Fatal(err)
	}
	if res := toolResults(rec.until(t, protocol.EventTurnEnd)); len(res) != 1 ||
		res[0] != protocol.ResultCancelled+": "+convo.CancelledCallError {
		t.Errorf("tool_results of the call cancelled in line %q, want one cancelled", res)
	}
	lineCall(t, s.Service, reg)
}

// lineCall starts a call of agent "running" (of heldAgents) while another
// runs, and returns its conversation's id and its events from its
// tool_call on, once it waits in line for a run (the only call that
// does); it fails the test if the call ends instead.
func lineCall(t *testing.T, s *convo.Service, reg *metrics.Metrics) (string, *recorder) {
	t.Helper()
	id, rec, call := startCall(t, s, "running")
	if call.Status != protocol.CallRunning {
		t.Fatalf("a call of agent running has status %s, want %s", call.Status, protocol.CallRunning)
	}
	for {
		var waiting dto.Metric
		if err := reg.ToolCallsWaiting.Write(&waiting); err != nil {
			t.Fatal(err)
		}
		if n := waiting.GetGauge().GetValue(); n == 1 {
			return id, rec
		}
		select {
		case f := <-rec.ch:
			t.Fatalf("a call that should wait in line for a run: %s", f)
		default:
			runtime.Gosched()
		}
	}
}

// toolResults is the "status: error" of each tool_result among evs.
func toolResults(evs []*protocol.Event) []string {
	var out []string
	for _, ev := range evs {
		if ev.Type == protocol.EventToolResult {
			out = append(out, ev.Status+": "+ev.ToolError)
		}
	}
	return out
}
