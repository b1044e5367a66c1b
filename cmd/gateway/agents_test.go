package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chatgateway/gateway/internal/conn/conntest"
	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

// TestAgents drives agents' tool loops through the whole gateway: real
// WebSockets and HTTP, the real AWS SDK against the fake Bedrock (which
// refuses any request the service would), httptest HTTP tools and an MCP
// server over streamable HTTP.
func TestAgents(t *testing.T) {
	// Not parallel: a subtest sends SIGHUP to this process, which every
	// gateway running in it would take.
	r := startAgentRig(t)

	t.Run("one tool, seen by a second subscriber, and the next turn", func(t *testing.T) {
		c := r.agentConv(t, "one", "support")
		watcher := conntest.Dial(t, r.g.URL, "/v1/ws?conversation=one")
		frames := send(t, c, "one", `/tool lookup_order {"id":"1234"}`)
		seen := watcher.ReadUntil(conntest.IsType(protocol.EventTurnEnd))

		start := ofType(frames, protocol.EventTurnStart)
		if len(start) != 1 || start[0].Agent != "support" {
			t.Errorf("turn_start %+v, want agent support", start)
		}
		calls, results := ofType(frames, protocol.EventToolCall), ofType(frames, protocol.EventToolResult)
		if len(calls) != 1 || calls[0].Name != "lookup_order" || calls[0].Status != protocol.CallRunning || calls[0].Step != 1 ||
			string(calls[0].Input) != `{"id":"1234"}` {
			t.Fatalf("tool_calls %+v", calls)
		}
		if len(results) != 1 || results[0].Call != calls[0].Call || results[0].Status != protocol.ResultOK ||
			string(results[0].Output) != `{"id":"1234","status":"shipped"}` || results[0].DurationMS == nil {
			t.Fatalf("tool_results %+v", results)
		}
		end := frames[len(frames)-1]
		want := `Let me check. Results: {"id":"1234","status":"shipped"}`
		if end.StopReason != protocol.StopEndTurn || end.Steps != 2 || end.StoredMessage().Text != want ||
			end.Usage == nil || end.Usage.InputTokens != 20 || end.Usage.OutputTokens != 6 {
			t.Errorf("turn_end %+v text %q, want end_turn after 2 steps, text %q, usage summed", end, end.StoredMessage().Text, want)
		}
		// The watcher saw every event of the turn, the same.
		if got, want := seqs(seen), seqs(frames); got != want {
			t.Errorf("the second subscriber saw seqs %s, the sender %s", got, want)
		}
		// The HTTP tool got who calls, from where.
		h := r.tools.lastHeader()
		if h.Get("X-Gateway-User") != "local" || h.Get("X-Gateway-Conversation") != "one" || h.Get("X-Gateway-Call") != calls[0].Call {
			t.Errorf("tool request headers %v", h)
		}
		// The next turn replays the exchange; the fake refuses it if it
		// is not exactly what Bedrock wants.
		next := send(t, c, "one", "thanks")
		if end := next[len(next)-1]; end.StopReason != protocol.StopEndTurn || end.StoredMessage().Text != "Hello." {
			t.Errorf("next turn ended %s %q %+v", end.StopReason, end.StoredMessage().Text, end.Error)
		}
		reqs := r.fake.Requests()
		body := reqs[len(reqs)-1].Body
		if body.ToolConfig == nil || len(body.Messages) != 5 || body.Messages[1].Content[1].ToolUse == nil ||
			body.Messages[2].Content[0].ToolResult == nil || !strings.Contains(body.System[0].Text, "in one.") {
			b, _ := json.Marshal(body)
			t.Errorf("the next turn's request %s", b)
		}
	})

	t.Run("parallel calls and an MCP tool", func(t *testing.T) {
		c := r.agentConv(t, "parallel", "support")
		frames := send(t, c, "parallel", "/tool pair {}\n/tool pair\n/tool files__echo {\"text\":\"hi\"}")
		results := ofType(frames, protocol.EventToolResult)
		if len(results) != 3 {
			t.Fatalf("got %d tool_results, want 3", len(results))
		}
		for _, res := range results {
			if res.Status != protocol.ResultOK {
				t.Errorf("%s: %s %s", res.Name, res.Status, res.ToolError)
			}
		}
		end := frames[len(frames)-1]
		// The results go back in the order of the calls.
		want := `Let me check. Results: {"together":true}; {"together":true}; {"echo":"hi"}`
		if got := end.StoredMessage().Text; got != want {
			t.Errorf("reply %q, want %q", got, want)
		}
	})

	t.Run("tool error", func(t *testing.T) {
		c := r.agentConv(t, "failing", "support")
		frames := send(t, c, "failing", "/tool fail {}\n/tool nosuch {}")
		// Results come as the calls end, in any order.
		results := map[string]protocol.ServerFrame{}
		for _, f := range ofType(frames, protocol.EventToolResult) {
			results[f.Name] = f
		}
		if f := results["fail"]; f.Status != protocol.ResultError || !strings.Contains(f.ToolError, "500") {
			t.Errorf("fail: %s %q, want an error with the HTTP status", f.Status, f.ToolError)
		}
		if f := results["nosuch"]; f.Status != protocol.ResultError || !strings.Contains(f.ToolError, `unknown tool "nosuch"`) {
			t.Errorf("nosuch: %s %q, want an error naming the unknown tool", f.Status, f.ToolError)
		}
		if got := frames[len(frames)-1].StoredMessage().Text; !strings.Contains(got, "error") {
			t.Errorf("reply %q, want the error results", got)
		}
	})

	t.Run("timeout", func(t *testing.T) {
		c := r.agentConv(t, "timeout", "support")
		frames := send(t, c, "timeout", "/tool slow {}")
		<-r.tools.hanging
		results := ofType(frames, protocol.EventToolResult)
		if len(results) != 1 || results[0].Status != protocol.ResultTimeout {
			t.Fatalf("tool_results %+v", results)
		}
		if id := <-r.tools.cancelled; id != results[0].Call {
			t.Errorf("cancelled call %s, want %s", id, results[0].Call)
		}
	})

	for _, approved := range []bool{true, false} {
		t.Run(fmt.Sprintf("approval %v", approved), func(t *testing.T) {
			id := fmt.Sprintf("approval-%v", approved)
			c := r.agentConv(t, id, "support")
			before := r.tools.count("/lookup")
			c.Request(&protocol.Send{Conversation: id, Text: `/tool refund {"id":"9"}`})
			call := c.ReadUntil(conntest.IsType(protocol.EventToolCall))
			f := call[len(call)-1]
			if f.Status != protocol.CallAwaitingApproval {
				t.Fatalf("tool_call status %s", f.Status)
			}
			// An answer of the wrong kind is refused.
			if e := c.Call(&protocol.ToolOutput{ID: "wrong", Conversation: id, Call: f.Call, Output: json.RawMessage(`1`)}); e.Code != protocol.CodeBadRequest {
				t.Errorf("tool_output for a call awaiting approval: %s %s", e.Type, e.Code)
			}
			all := call
			ok, frames := callKeep(c, &protocol.Approve{ID: "ok", Conversation: id, Call: f.Call, Approved: approved, Reason: "checked"})
			all = append(all, frames...)
			if ok.Type != protocol.ReplyAccepted || ok.Call != f.Call {
				t.Fatalf("approve: %s %s %s", ok.Type, ok.Code, ok.ErrorMessage())
			}
			again, frames := callKeep(c, &protocol.Approve{ID: "again", Conversation: id, Call: f.Call, Approved: true})
			all = append(all, frames...)
			if again.Code != protocol.CodeBadRequest {
				t.Errorf("a second approve: %s %s, want bad_request", again.Type, again.Code)
			}
			if !slices.ContainsFunc(all, func(f protocol.ServerFrame) bool { return f.Type == protocol.EventTurnEnd }) {
				all = append(all, c.ReadUntil(conntest.IsType(protocol.EventTurnEnd))...)
			}
			approval := ofType(all, protocol.EventToolApproval)
			if len(approval) != 1 || *approval[0].Approved != approved || approval[0].By != "local" || approval[0].Reason != "checked" {
				t.Errorf("tool_approval %+v", approval)
			}
			res := ofType(all, protocol.EventToolResult)
			wantStatus, wantCalls := protocol.ResultOK, before+1
			if !approved {
				wantStatus, wantCalls = protocol.ResultDenied, before
			}
			if len(res) != 1 || res[0].Status != wantStatus {
				t.Errorf("tool_result %+v, want %s", res, wantStatus)
			}
			if got := r.tools.count("/lookup"); got != wantCalls {
				t.Errorf("the tool was called %d times, want %d", got, wantCalls)
			}
		})
	}

	t.Run("client tool over WebSocket and HTTP", func(t *testing.T) {
		c := r.agentConv(t, "client", "support")
		other := conntest.Dial(t, r.g.URL, "/v1/ws")
		c.Request(&protocol.Send{Conversation: "client", Text: "/tool confirm {\"question\":\"sure?\"}\n/tool confirm {}"})
		calls := ofType(c.ReadUntil(func(f *protocol.ServerFrame) bool {
			return f.Type == protocol.EventToolCall && f.Step == 1 && strings.HasSuffix(f.Call, "_1")
		}), protocol.EventToolCall)
		if len(calls) != 2 || calls[0].Status != protocol.CallAwaitingClient {
			t.Fatalf("tool_calls %+v", calls)
		}
		// One answer from another connection of the user, one over HTTP.
		if a := other.Call(&protocol.ToolOutput{ID: "o", Conversation: "client", Call: calls[0].Call,
			Output: json.RawMessage(`{"confirmed":true}`)}); a.Type != protocol.ReplyAccepted {
			t.Fatalf("tool_output: %s %s %s", a.Type, a.Code, a.ErrorMessage())
		}
		status, body := conntest.Do(t, "POST", r.g.URL+"/v1/conversations/client/calls/"+calls[1].Call+"/output", `{"error":"closed the dialog"}`)
		if status != 200 || !strings.Contains(string(body), `"type":"accepted"`) {
			t.Fatalf("POST output: %d %s", status, body)
		}
		status, _ = conntest.Do(t, "POST", r.g.URL+"/v1/conversations/client/calls/"+calls[1].Call+"/output", `{"output":1}`)
		if status != 400 {
			t.Errorf("a second answer over HTTP: %d, want 400", status)
		}
		frames := c.ReadUntil(conntest.IsType(protocol.EventTurnEnd))
		res := ofType(frames, protocol.EventToolResult)
		if len(res) != 2 || res[0].Status != protocol.ResultOK || string(res[0].Output) != `{"confirmed":true}` ||
			res[1].Status != protocol.ResultError || res[1].ToolError != "closed the dialog" {
			t.Errorf("tool_results %+v", res)
		}
	})

	t.Run("client tool output over the cap", func(t *testing.T) {
		c := r.agentConv(t, "client-big", "support")
		other := conntest.Dial(t, r.g.URL, "/v1/ws")
		c.Request(&protocol.Send{Conversation: "client-big", Text: "/tool confirm {}\n/tool confirm {}"})
		calls := ofType(c.ReadUntil(func(f *protocol.ServerFrame) bool {
			return f.Type == protocol.EventToolCall && strings.HasSuffix(f.Call, "_1")
		}), protocol.EventToolCall)
		// Over the default 256 KiB, within the frame and body limits: cut
		// and marked, as an HTTP or MCP tool's output is, not refused.
		big := strings.Repeat("é", 150<<10)
		output, _ := json.Marshal(map[string]string{"text": big})
		if a := other.Call(&protocol.ToolOutput{ID: "o", Conversation: "client-big", Call: calls[0].Call, Output: output}); a.Type != protocol.ReplyAccepted {
			t.Fatalf("tool_output over the cap: %s %s %s", a.Type, a.Code, a.ErrorMessage())
		}
		body, _ := json.Marshal(map[string]string{"error": big})
		if status, b := conntest.Do(t, "POST", r.g.URL+"/v1/conversations/client-big/calls/"+calls[1].Call+"/output", string(body)); status != 200 {
			t.Fatalf("POST output over the cap: %d %s", status, b)
		}
		res := ofType(c.ReadUntil(conntest.IsType(protocol.EventTurnEnd)), protocol.EventToolResult)
		if len(res) != 2 {
			t.Fatalf("%d tool_results, want 2", len(res))
		}
		var cut struct {
			Truncated bool
			Text      string
		}
		if err := json.Unmarshal(res[0].Output, &cut); err != nil || res[0].Status != protocol.ResultOK || len(res[0].Output) > 256<<10 ||
			!cut.Truncated || !strings.HasPrefix(string(output), cut.Text) || len(cut.Text) < 200<<10 {
			t.Errorf("the output's tool_result: %s, %d bytes, %v", res[0].Status, len(res[0].Output), err)
		}
		if e := res[1].ToolError; res[1].Status != protocol.ResultError || len(e) > 256<<10 || !strings.HasSuffix(e, "…(cut)") ||
			!strings.HasPrefix(big, strings.TrimSuffix(e, " …(cut)")) {
			t.Errorf("the error's tool_result: %s, %d bytes", res[1].Status, len(e))
		}
	})

	t.Run("approval over HTTP", func(t *testing.T) {
		c := r.agentConv(t, "http-approval", "support")
		c.Request(&protocol.Send{Conversation: "http-approval", Text: `/tool refund {"id":"1"}`})
		calls := ofType(c.ReadUntil(conntest.IsType(protocol.EventToolCall)), protocol.EventToolCall)
		url := r.g.URL + "/v1/conversations/http-approval/calls/" + calls[0].Call + "/approval"
		if status, body := conntest.Do(t, "POST", url, `{"approved":"yes"}`); status != 400 || !strings.Contains(string(body), "approved") {
			t.Errorf("approved not a boolean: %d %s", status, body)
		}
		if status, body := conntest.Do(t, "POST", url, `{"approved":false}`); status != 200 {
			t.Fatalf("POST approval: %d %s", status, body)
		}
		res := ofType(c.ReadUntil(conntest.IsType(protocol.EventTurnEnd)), protocol.EventToolResult)
		if len(res) != 1 || res[0].Status != protocol.ResultDenied || res[0].ToolError != "denied by the user" {
			t.Errorf("tool_result %+v", res)
		}
	})

	t.Run("cancel mid-call", func(t *testing.T) {
		c := r.agentConv(t, "cancel", "support")
		c.Request(&protocol.Send{Conversation: "cancel", Text: "/tool hang {}"})
		call := <-r.tools.hanging
		c.Request(&protocol.Cancel{Conversation: "cancel"})
		frames := c.ReadUntil(conntest.IsType(protocol.EventTurnEnd))
		if got := <-r.tools.cancelled; got != call {
			t.Errorf("the tool's request %s was not cancelled (%s was)", call, got)
		}
		// The tool's run ended as a call cancelled while it waits does.
		res := ofType(frames, protocol.EventToolResult)
		if len(res) != 1 || res[0].Call != call || res[0].Status != protocol.ResultCancelled || res[0].ToolError != convo.CancelledCallError {
			t.Errorf("tool_result %+v", res)
		}
		if end := frames[len(frames)-1]; end.StopReason != protocol.StopCancelled || end.Steps != 1 {
			t.Errorf("turn_end %s after %d steps", end.StopReason, end.Steps)
		}
		// The conversation goes on, with the cancelled call replayed.
		if next := send(t, c, "cancel", "and now?"); next[len(next)-1].StopReason != protocol.StopEndTurn {
			t.Errorf("the next turn ended %s %+v", next[len(next)-1].StopReason, next[len(next)-1].Error)
		}
	})

	t.Run("max_steps", func(t *testing.T) {
		c := r.agentConv(t, "loop", "tight")
		frames := send(t, c, "loop", `/loop lookup_order {"id":"1"}`)
		calls, res := ofType(frames, protocol.EventToolCall), ofType(frames, protocol.EventToolResult)
		if len(calls) != 2 || len(res) != 2 || res[0].Status != protocol.ResultOK ||
			res[1].Status != protocol.ResultError || res[1].ToolError != "max_steps reached" || calls[1].Step != 2 {
			t.Fatalf("tool_calls %+v\ntool_results %+v", calls, res)
		}
		if end := frames[len(frames)-1]; end.StopReason != protocol.StopMaxSteps || end.Steps != 2 {
			t.Errorf("turn_end %s after %d steps, want max_steps after 2", end.StopReason, end.Steps)
		}
		if r.tools.count("/lookup") == 0 {
			t.Error("the first step's call did not run")
		}
	})

	t.Run("SIGHUP reloads the agents file, and keeps it when invalid", func(t *testing.T) {
		c := r.agentConv(t, "reload", "tight")
		var before protocol.AgentsReply
		get(t, r.g.URL+"/v1/agents", &before)
		data, err := os.ReadFile(r.file)
		if err != nil {
			t.Fatal(err)
		}
		add := "  - name: added\n    tools: [lookup_order]\n"
		if err := os.WriteFile(r.file, append(data, add...), 0o600); err != nil {
			t.Fatal(err)
		}
		agentsAfterHangup(t, r.g.URL, len(before.Agents)+1)
		// An invalid file is refused: the agents stay.
		if err := os.WriteFile(r.file, []byte("agents: [{name: broken, tools: [nosuch]}]\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		// The conversation's agent still answers, after the reload.
		if frames := send(t, c, "reload", `/tool lookup_order {"id":"7"}`); frames[len(frames)-1].StopReason != protocol.StopEndTurn {
			t.Errorf("a turn after a failed reload ended %s", frames[len(frames)-1].StopReason)
		}
		var after protocol.AgentsReply
		get(t, r.g.URL+"/v1/agents", &after)
		if len(after.Agents) != len(before.Agents)+1 {
			t.Errorf("after an invalid file, %d agents, want %d", len(after.Agents), len(before.Agents)+1)
		}
	})

	t.Run("agents list and create", func(t *testing.T) {
		c := conntest.Dial(t, r.g.URL, "/v1/ws")
		list := c.Call(&protocol.Agents{ID: "a"})
		if list.Type != protocol.ReplyAgents || len(list.Agents) < 2 || list.Agents[0].Name != "support" {
			t.Fatalf("agents %+v", list)
		}
		var kinds []string
		for _, tool := range list.Agents[0].Tools {
			kinds = append(kinds, tool.Name+":"+tool.Kind)
		}
		if got := strings.Join(kinds, " "); !strings.Contains(got, "lookup_order:http") || !strings.Contains(got, "confirm:client") ||
			!strings.Contains(got, "files__echo:mcp") {
			t.Errorf("tools %s", got)
		}
		var reply protocol.AgentsReply
		get(t, r.g.URL+"/v1/agents", &reply)
		if len(reply.Agents) != len(list.Agents) {
			t.Errorf("GET /v1/agents: %+v", reply)
		}
		if e := c.Call(&protocol.Create{ID: "bad", Agent: "nosuch"}); e.Code != protocol.CodeBadRequest || !strings.Contains(e.ErrorMessage(), "nosuch") {
			t.Errorf("create with an unknown agent: %s %s", e.Code, e.ErrorMessage())
		}
		created := c.Call(&protocol.Create{ID: "ok", Agent: "support"})
		if created.Info == nil || created.Info.Agent != "support" || created.Info.Model != agentModel {
			t.Errorf("created %+v", created.Info)
		}
	})

	// Every call above was counted by tool and status, whether the
	// gateway ran it (an HTTP tool) or not (denied, a client's), timed,
	// and every turn's steps.
	t.Run("metrics", func(t *testing.T) {
		code, body := authDo(t, http.Header{}, http.MethodGet, r.g.URL+"/metrics", "")
		if code != http.StatusOK {
			t.Fatalf("GET /metrics: %d", code)
		}
		for _, series := range []string{
			`gateway_tool_calls_total{status="ok",tool="lookup_order"}`,
			`gateway_tool_calls_total{status="timeout",tool="slow"}`,
			`gateway_tool_calls_total{status="denied",tool="refund"}`,
			`gateway_tool_calls_total{status="ok",tool="confirm"}`,
			`gateway_tool_calls_total{status="error",tool="unknown"}`,
			`gateway_tool_call_seconds_count{tool="lookup_order"}`,
			`gateway_turn_steps_count`,
		} {
			if v := metricValue(string(body), series); v <= 0 {
				t.Errorf("%s = %v, want more than 0", series, v)
			}
		}
	})
}

// TestAgentsBuiltin: with no agents file and the demo model, the built-in
// example agent runs its in-process MCP tools on "/tool NAME {json}",
// progress included, and the demo model sums their results up.
func TestAgentsBuiltin(t *testing.T) {
	t.Parallel()
	g := startRun(t, map[string]string{"GATEWAY_DB": t.TempDir() + "/gateway.db"}, "-addr", "127.0.0.1:0", "-demo-word-delay", "-1")
	c := conntest.Dial(t, g.URL, "/v1/ws")
	if f := c.Call(&protocol.Create{ID: "c", Conversation: "demo", Agent: "demo"}); f.Type != protocol.ReplyCreated {
		t.Fatalf("create with agent demo: %s %s", f.Code, f.ErrorMessage())
	}
	frames := send(t, c, "demo", "/tool example__calc {\"a\":2,\"b\":3,\"op\":\"*\"}\n/tool example__countdown {\"seconds\":1}")
	res := map[string]protocol.ServerFrame{}
	for _, f := range ofType(frames, protocol.EventToolResult) {
		res[f.Name] = f
	}
	if f := res["example__calc"]; f.Status != protocol.ResultOK || !strings.Contains(string(f.Output), "6") {
		t.Errorf("calc: %s %s %s", f.Status, f.Output, f.ToolError)
	}
	if f := res["example__countdown"]; f.Status != protocol.ResultOK {
		t.Errorf("countdown: %s %s", f.Status, f.ToolError)
	}
	if p := ofType(frames, protocol.EventToolProgress); len(p) == 0 || p[0].Total == nil || *p[0].Total != 1 {
		t.Errorf("tool_progress %+v, want the countdown's", p)
	}
	end := frames[len(frames)-1]
	if end.StopReason != protocol.StopEndTurn || end.Steps != 2 || !strings.Contains(end.StoredMessage().Text, "The tool example__calc returned") {
		t.Errorf("turn_end %s after %d steps: %q", end.StopReason, end.Steps, end.StoredMessage().Text)
	}
}

// callKeep sends req and reads until its reply, which it returns with
// every frame read before it.
func callKeep(c *conntest.Client, req protocol.Request) (protocol.ServerFrame, []protocol.ServerFrame) {
	c.Request(req)
	frames := c.ReadUntil(func(f *protocol.ServerFrame) bool { return f.ID == req.RequestID() })
	return frames[len(frames)-1], frames[:len(frames)-1]
}

// seqs lists the seqs and types of the events among frames, for
// comparisons.
func seqs(frames []protocol.ServerFrame) string {
	var b strings.Builder
	for _, f := range frames {
		if !f.TS.IsZero() {
			fmt.Fprintf(&b, "%d:%s ", f.Seq, f.Type)
		}
	}
	return b.String()
}

// TestAgentsFileInvalid: a gateway with an invalid agents file does not
// start, and says which entry is wrong.
func TestAgentsFileInvalid(t *testing.T) {
	t.Parallel()
	path := t.TempDir() + "/agents.yaml"
	if err := os.WriteFile(path, []byte("agents:\n  - name: ok\n  - name: broken\n    tools: [nosuch]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := run(t.Context(), []string{"-addr", "127.0.0.1:0", "-db", t.TempDir() + "/g.db", "-agents", path},
		func(string) string { return "" }, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "broken") || !strings.Contains(err.Error(), "nosuch") {
		t.Fatalf("run returned %v, want an error naming the entry and the tool", err)
	}
}

// agentsAfterHangup sends SIGHUP to the process (the gateways in it
// reload their agents files) and waits until the agents list of the
// gateway at url has want agents. Signals are asynchronous: it polls.
func agentsAfterHangup(t *testing.T, url string, want int) {
	t.Helper()
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for wait := time.Millisecond; ; wait *= 2 {
		var reply protocol.AgentsReply
		get(t, url+"/v1/agents", &reply)
		if len(reply.Agents) == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after SIGHUP: %d agents, want %d", len(reply.Agents), want)
		}
		time.Sleep(min(wait, 100*time.Millisecond))
	}
}

// metricValue is the value of series in the Prometheus text exposition,
// or -1 when it has none.
func metricValue(text, series string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}
