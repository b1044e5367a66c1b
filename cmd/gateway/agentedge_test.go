package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"unicode/utf8"

	"github.com/chatgateway/gateway/internal/conn/conntest"
	"github.com/chatgateway/gateway/protocol"
)

// startAgentsGateway runs the gateway with the demo model and the agents
// file yaml.
func startAgentsGateway(t *testing.T, yaml string) *gateway {
	t.Helper()
	file := filepath.Join(t.TempDir(), "agents.yaml")
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return startRun(t, map[string]string{"GATEWAY_DB": filepath.Join(t.TempDir(), "gateway.db"), "GATEWAY_DEMO_WORD_DELAY": "-1ns"},
		"-addr", "127.0.0.1:0", "-agents", file, "-send-rate", "0")
}

// readRawUntil reads c's frames as sent until one of type typ, and
// returns them undecoded.
func readRawUntil(t *testing.T, c *conntest.Client, typ string) [][]byte {
	t.Helper()
	var frames [][]byte
	for {
		ctx, cancel := context.WithTimeout(context.Background(), conntest.Timeout)
		_, data, err := c.WS.Read(ctx)
		cancel()
		if err != nil {
			t.Fatalf("read after %d frames: %v", len(frames), err)
		}
		frames = append(frames, data)
		var f protocol.ServerFrame
		if json.Unmarshal(data, &f) == nil && f.Type == typ {
			return frames
		}
	}
}

// TestAgentsToolOutputNotUTF8: an HTTP tool whose JSON body is not UTF-8
// (a legacy service answering in Latin-1) gives a tool_result that is
// still a valid WebSocket text frame, live and on resume, the bytes that
// are not UTF-8 replaced; a browser fails a connection that gets a text
// frame that is not UTF-8, and would again on every resume.
func TestAgentsToolOutputNotUTF8(t *testing.T) {
	t.Parallel()
	legacy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=iso-8859-1")
		_, _ = io.WriteString(w, "{\"name\":\"Jos\xe9\"}")
	}))
	t.Cleanup(legacy.Close)
	g := startAgentsGateway(t, fmt.Sprintf("tools:\n  - name: legacy\n    http: {url: %s}\nagents:\n  - name: a\n    tools: [legacy]\n", legacy.URL))

	c := conntest.Dial(t, g.URL, "/v1/ws")
	if f := c.Call(&protocol.Create{ID: "create", Conversation: "latin1", Agent: "a"}); f.Type != protocol.ReplyCreated {
		t.Fatalf("create: %s %s", f.Type, f.ErrorMessage())
	}
	c.Request(&protocol.Send{Conversation: "latin1", Text: "/tool legacy {}"})
	live := readRawUntil(t, c, protocol.EventTurnEnd)
	resumed := readRawUntil(t, conntest.Dial(t, g.URL, "/v1/ws?conversation=latin1&after=0"), protocol.EventTurnEnd)
	for name, frames := range map[string][][]byte{"live": live, "resumed": resumed} {
		var result *protocol.ServerFrame
		for _, data := range frames {
			if !utf8.Valid(data) {
				t.Errorf("%s: a text frame that is not UTF-8: %q", name, data)
			}
			var f protocol.ServerFrame
			if json.Unmarshal(data, &f) == nil && f.Type == protocol.EventToolResult {
				result = &f
			}
		}
		if result == nil || result.Status != protocol.ResultOK || string(result.Output) != `{"name":"Jos`+"\uFFFD"+`"}` {
			t.Errorf("%s: tool_result %+v", name, result)
		}
	}
}
