package main

import (
	"bytes"
	"testing"

	"github.com/coder/websocket"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/chatgateway/gateway/internal/tracing/otlptest"
)

// TestRunTracing runs an agent's turn with a tool call in the real program
// with -otel-endpoint set, and finds its spans at the collector once the
// program has stopped (which flushes them): the send; the commit that made
// it durable, linked to it; the turn, with the model calls (GenAI
// attributes) and the tool call as its children.
func TestRunTracing(t *testing.T) {
	// Not parallel: the gateway sets the process's global tracer
	// provider, which the other gateways in this process would use.
	col := otlptest.Start(t)
	r := startAgentRig(t, "-otel-endpoint", col.URL)
	c := r.agentConv(t, "traced", "support")
	send(t, c, "traced", `/tool lookup_order {"id":"1234"}`)
	// A client that does not read would hold the gateway's closing
	// handshake for its 5 s timeout.
	_ = c.WS.Close(websocket.StatusNormalClosure, "")
	r.g.Stop(t)

	named := map[string][]*tracepb.Span{}
	for _, s := range col.Spans() {
		named[s.Name] = append(named[s.Name], s)
	}
	sends, turns, models, tools := named["send"], named["turn"], named["chat "+agentModel], named["execute_tool lookup_order"]
	if len(sends) != 1 || len(turns) != 1 || len(models) != 2 || len(tools) != 1 {
		t.Fatalf("spans: %d send, %d turn, %d model calls, %d tool calls; want 1, 1, 2, 1 (all: %v)", len(sends), len(turns), len(models), len(tools), col.Names())
	}
	linked := false
	for _, s := range named["commit"] {
		for _, l := range s.Links {
			linked = linked || bytes.Equal(l.SpanId, sends[0].SpanId)
		}
	}
	if !linked {
		t.Error("no commit span links to the send's span")
	}
	turn := turns[0].SpanId
	for _, s := range append(models, tools...) {
		if !bytes.Equal(s.ParentSpanId, turn) {
			t.Errorf("span %q is not the turn's child", s.Name)
		}
	}
	attrs := map[string]string{}
	for _, kv := range models[0].Attributes {
		attrs[kv.Key] = kv.Value.String()
	}
	if attrs["gen_ai.system"] == "" || attrs["gen_ai.request.model"] == "" || attrs["gen_ai.usage.input_tokens"] == "" {
		t.Errorf("model call attributes %v, want the GenAI ones", attrs)
	}
}
