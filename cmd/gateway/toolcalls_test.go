package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/chatgateway/gateway/internal/conn/conntest"
	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

// TestRunMaxToolCalls runs the real program with -max-tool-calls 1 and an
// HTTP tool (hang) holding the one run: another conversation's call
// waits, its tool not called (the wait shows in
// gateway_tool_calls_waiting); a cancel ends a waiting turn at once; a
// call whose tool's timeout passes while it waits ends with status
// timeout, the gateway busy; and a waiting call runs once the held one
// ends.
func TestRunMaxToolCalls(t *testing.T) {
	t.Parallel()
	r := startAgentRig(t, "-max-tool-calls", "1")
	first := r.agentConv(t, "first", "support")
	first.Request(&protocol.Send{Conversation: "first", Text: "/tool hang {}"})
	held := <-r.tools.hanging

	t.Run("cancel while waiting", func(t *testing.T) {
		c := r.agentConv(t, "cancelled", "support")
		c.Request(&protocol.Send{Conversation: "cancelled", Text: `/tool lookup_order {"id":"1"}`})
		awaitToolWaiting(t, r, 1)
		c.Request(&protocol.Cancel{Conversation: "cancelled"})
		frames := c.ReadUntil(conntest.IsType(protocol.EventTurnEnd))
		res := ofType(frames, protocol.EventToolResult)
		if len(res) != 1 || res[0].Status != protocol.ResultCancelled || res[0].ToolError != convo.CancelledCallError {
			t.Errorf("tool_results %+v, want one cancelled", res)
		}
		if end := frames[len(frames)-1]; end.StopReason != protocol.StopCancelled {
			t.Errorf("turn_end %s, want cancelled", end.StopReason)
		}
		if n := toolCallsWaiting(t, r); n != 0 || r.tools.count("/lookup") != 0 {
			t.Errorf("%v calls waiting and %d lookups after the cancel, want none", n, r.tools.count("/lookup"))
		}
	})

	t.Run("timeout while waiting", func(t *testing.T) {
		// slow's timeout is 50ms: it passes while hang holds the run.
		c := r.agentConv(t, "busy", "support")
		frames := send(t, c, "busy", "/tool slow {}")
		res := ofType(frames, protocol.EventToolResult)
		if len(res) != 1 || res[0].Status != protocol.ResultTimeout || !strings.Contains(res[0].ToolError, "the gateway was busy") {
			t.Errorf("tool_results %+v, want one timeout saying the gateway was busy", res)
		}
		if n := r.tools.count("/hang"); n != 1 {
			t.Errorf("/hang got %d calls, want the held one only", n)
		}
	})

	c := lineCall(t, r, "second")
	runAfterHeld(t, r, first, held, c)
}

// TestRunMaxToolLine runs the real program with -max-tool-calls 1 and
// -max-waiting-calls 1: while an HTTP tool (hang) holds the one run and
// another conversation's call waits in line for it, a third
// conversation's call does not wait. It ends at once with an error
// result that says why, its tool not called, and its turn goes on to its
// end; the call in line still waits, and runs once the held one ends.
func TestRunMaxToolLine(t *testing.T) {
	t.Parallel()
	r := startAgentRig(t, "-max-tool-calls", "1", "-max-waiting-calls", "1")
	first := r.agentConv(t, "first", "support")
	first.Request(&protocol.Send{Conversation: "first", Text: "/tool hang {}"})
	held := <-r.tools.hanging
	c := lineCall(t, r, "second")

	third := r.agentConv(t, "third", "support")
	frames := send(t, third, "third", `/tool lookup_order {"id":"3"}`)
	if res := ofType(frames, protocol.EventToolResult); len(res) != 1 || res[0].Status != protocol.ResultError ||
		res[0].ToolError != convo.RunRefusedError {
		t.Errorf("tool_results %+v, want one error %q", res, convo.RunRefusedError)
	}
	if end := frames[len(frames)-1]; end.StopReason != protocol.StopEndTurn {
		t.Errorf("turn_end %s, want end_turn", end.StopReason)
	}
	if n := toolCallsWaiting(t, r); n != 1 || r.tools.count("/lookup") != 0 {
		t.Errorf("%v calls waiting and %d lookups after the refusal, want the one in line and none", n, r.tools.count("/lookup"))
	}
	runAfterHeld(t, r, first, held, c)
}

// lineCall creates conversation id with agent support and sends it a
// call of lookup_order while r's one tool run is held: it returns the
// conversation's client once the call waits in line.
func lineCall(t *testing.T, r *agentRig, id string) *conntest.Client {
	t.Helper()
	c := r.agentConv(t, id, "support")
	c.Request(&protocol.Send{Conversation: id, Text: `/tool lookup_order {"id":"2"}`})
	awaitToolWaiting(t, r, 1)
	return c
}

// runAfterHeld cancels conversation "first", whose call held (of /hang)
// holds r's one tool run, and checks that the call waiting in line over
// c runs then, once, and its turn ends.
func runAfterHeld(t *testing.T, r *agentRig, first *conntest.Client, held string, c *conntest.Client) {
	t.Helper()
	first.Request(&protocol.Cancel{Conversation: "first"})
	if got := <-r.tools.cancelled; got != held {
		t.Errorf("cancelled call %s, want %s", got, held)
	}
	frames := c.ReadUntil(conntest.IsType(protocol.EventTurnEnd))
	res := ofType(frames, protocol.EventToolResult)
	if len(res) != 1 || res[0].Status != protocol.ResultOK || r.tools.count("/lookup") != 1 {
		t.Errorf("tool_results %+v after %d lookups, want one ok", res, r.tools.count("/lookup"))
	}
	if end := frames[len(frames)-1]; end.StopReason != protocol.StopEndTurn {
		t.Errorf("turn_end %s, want end_turn", end.StopReason)
	}
}

// awaitToolWaiting returns once n tool calls of r's gateway wait for a run
// (gateway_tool_calls_waiting), failing the test if the lookup tool is
// called meanwhile.
func awaitToolWaiting(t *testing.T, r *agentRig, n float64) {
	t.Helper()
	for toolCallsWaiting(t, r) != n {
		if got := r.tools.count("/lookup"); got != 0 {
			t.Fatalf("the lookup tool got %d calls while it should wait", got)
		}
	}
}

// toolCallsWaiting is r's gateway's gateway_tool_calls_waiting.
func toolCallsWaiting(t *testing.T, r *agentRig) float64 {
	t.Helper()
	code, body := conntest.Do(t, http.MethodGet, r.g.URL+"/metrics", "")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d", code)
	}
	return metricValue(string(body), "gateway_tool_calls_waiting")
}

// TestRunMaxWaitingCalls runs the real program with -max-waiting-calls 1:
// while one conversation's call (refund) waits for its approval, another
// conversation's client tool call (confirm) is not waited for. It is
// stored running, ends at once with an error result that says why, and
// its turn goes on to its end; a tool_output for it is a bad_request. The
// waiting call, approved, runs.
func TestRunMaxWaitingCalls(t *testing.T) {
	t.Parallel()
	r := startAgentRig(t, "-max-waiting-calls", "1")
	first := r.agentConv(t, "first", "support")
	call := toolCall(t, first, "first", "/tool refund {}", protocol.CallAwaitingApproval)

	c := r.agentConv(t, "second", "support")
	refused := toolCall(t, c, "second", "/tool confirm {}", protocol.CallRunning)
	frames := c.ReadUntil(conntest.IsType(protocol.EventTurnEnd))
	if res := ofType(frames, protocol.EventToolResult); len(res) != 1 || res[0].Status != protocol.ResultError ||
		res[0].ToolError != convo.WaitRefusedError {
		t.Errorf("tool_results %+v, want one error %q", res, convo.WaitRefusedError)
	}
	if end := frames[len(frames)-1]; end.StopReason != protocol.StopEndTurn {
		t.Errorf("turn_end %s, want end_turn", end.StopReason)
	}
	out := &protocol.ToolOutput{ID: "o", Conversation: "second", Call: refused.Call, Output: json.RawMessage(`{}`)}
	if f := c.Call(out); f.Type != protocol.ReplyError || f.Code != protocol.CodeBadRequest {
		t.Errorf("tool_output for the refused call: %s %s, want bad_request", f.Type, f.Code)
	}

	if f := first.Call(&protocol.Approve{ID: "p", Conversation: "first", Call: call.Call, Approved: true}); f.Type != protocol.ReplyAccepted {
		t.Fatalf("approve: %s %s %s", f.Type, f.Code, f.ErrorMessage())
	}
	frames = first.ReadUntil(conntest.IsType(protocol.EventTurnEnd))
	if res := ofType(frames, protocol.EventToolResult); len(res) != 1 || res[0].Status != protocol.ResultOK {
		t.Errorf("refund's tool_results %+v, want one ok", res)
	}
}

// toolCall sends text to conversation over c, reads up to the turn's
// first tool_call, and returns it, failing the test unless it has status.
func toolCall(t *testing.T, c *conntest.Client, conversation, text, status string) protocol.ServerFrame {
	t.Helper()
	c.Request(&protocol.Send{Conversation: conversation, Text: text})
	frames := c.ReadUntil(conntest.IsType(protocol.EventToolCall))
	call := frames[len(frames)-1]
	if call.Status != status {
		t.Fatalf("%s: tool_call %s has status %s, want %s", conversation, call.Name, call.Status, status)
	}
	return call
}
