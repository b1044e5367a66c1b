package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chatgateway/gateway/internal/conn/conntest"
	"github.com/chatgateway/gateway/internal/jetlog/natstest"
	"github.com/chatgateway/gateway/protocol"
)

// TestAgentsClusterErrorTooLarge: in cluster mode, a tool's error whose
// text, within -max-tool-output-bytes, grows past a NATS message once
// JSON escapes it (a service answering 500 with a binary body) still
// gives its call a tool_result: every call a turn opens gets exactly one,
// before the turn_end, as the log keeps them.
func TestAgentsClusterErrorTooLarge(t *testing.T) {
	t.Parallel()
	binary := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
		// Each byte is 6 once escaped (\u0001): 1.2 MiB in all.
		_, _ = w.Write([]byte(strings.Repeat("\x01", 200<<10)))
	}))
	t.Cleanup(binary.Close)
	file := filepath.Join(t.TempDir(), "agents.yaml")
	yaml := fmt.Sprintf("tools:\n  - name: blob\n    http: {url: %s}\nagents:\n  - name: a\n    tools: [blob]\n", binary.URL)
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := natstest.Start(t)
	g := startRun(t, map[string]string{"GATEWAY_NATS": srv.URL(), "GATEWAY_DEMO_WORD_DELAY": "-1ns"},
		"-addr", "127.0.0.1:0", "-node", "a", "-agents", file)
	c := lifeConv(t, g.URL, "big", "a")
	live := send(t, c, "big", "/tool blob {}")
	stored := c.Call(&protocol.Subscribe{ID: "s", Conversation: "big"})
	if stored.Type != protocol.ReplySubscribed {
		t.Fatalf("subscribe: %s %s", stored.Code, stored.ErrorMessage())
	}
	replay := c.ReadUntil(conntest.IsType(protocol.EventTurnEnd))
	for what, frames := range map[string][]protocol.ServerFrame{"live": live, "stored": replay} {
		calls, results := ofType(frames, protocol.EventToolCall), ofType(frames, protocol.EventToolResult)
		if len(calls) != 1 || len(results) != 1 || results[0].Call != calls[0].Call || results[0].Status != protocol.ResultError ||
			results[0].ToolError != "the tool's error is too large to store" {
			t.Errorf("%s: %d tool_calls, tool_results %.300v; want one error result for the call", what, len(calls), results)
		}
	}
	nextTurnWorks(t, c, "big")
}
