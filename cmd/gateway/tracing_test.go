package main

import (
	"slices"
	"testing"

	"github.com/chatgateway/gateway/internal/conn/conntest"
	"github.com/chatgateway/gateway/internal/tracing/otlptest"
	"github.com/chatgateway/gateway/protocol"
)

// TestRunTracing sends a message to the real program with -otel-endpoint
// set and finds the send's span at the collector once the program has
// stopped (which flushes the spans).
func TestRunTracing(t *testing.T) {
	col := otlptest.Start(t)
	g := startRun(t, map[string]string{"GATEWAY_DEMO_WORD_DELAY": "-1ns"},
		"-addr", "127.0.0.1:0", "-db", t.TempDir()+"/gateway.db", "-otel-endpoint", col.URL)
	c := conntest.Dial(t, g.URL, "/v1/ws")
	c.Request(&protocol.Send{ID: "s", Text: "hello"})
	c.ReadUntil(conntest.IsType(protocol.EventTurnEnd))
	g.Stop(t)
	if names := col.Names(); !slices.Contains(names, "send") {
		t.Errorf("the collector received spans %v, want a send", names)
	}
}
