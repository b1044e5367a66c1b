package main

import (
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/chatgateway/gateway/internal/conn/conntest"
	"github.com/chatgateway/gateway/internal/metrics"
	"github.com/chatgateway/gateway/protocol"
)

// TestModelLabelsBounded creates more conversations than there may be
// model labels, each naming a model id of its own, and has a turn in each:
// the metrics labelled by model hold at most metrics.MaxModels of them
// and "other", however many ids clients name.
func TestModelLabelsBounded(t *testing.T) {
	t.Parallel()
	g := startRun(t, map[string]string{"GATEWAY_DB": filepath.Join(t.TempDir(), "gateway.db"), "GATEWAY_DEMO_WORD_DELAY": "-1ns"},
		"-addr", "127.0.0.1:0")
	ws := conntest.Dial(t, g.URL, "/v1/ws")
	const n = metrics.MaxModels + 10
	for i := range n {
		conv := fmt.Sprintf("c%d", i)
		if f := ws.Call(&protocol.Create{ID: "c", Conversation: conv, Model: fmt.Sprintf("model-%d", i)}); f.Type != protocol.ReplyCreated {
			t.Fatalf("create %s: %s %s", conv, f.Type, f.ErrorMessage())
		}
		ws.Request(&protocol.Send{ID: "s", Conversation: conv, Text: "hi"})
		ws.ReadUntil(func(f *protocol.ServerFrame) bool { return f.Type == protocol.EventTurnEnd && f.Conversation == conv })
	}
	code, body := conntest.Do(t, http.MethodGet, g.URL+"/metrics", "")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d", code)
	}
	for _, name := range []string{"gateway_first_token_seconds_count", "gateway_model_tokens_total"} {
		labels := map[string]bool{}
		for _, m := range regexp.MustCompile(`(?m)^`+name+`\{[^}]*model="([^"]*)"`).FindAllSubmatch(body, -1) {
			labels[string(m[1])] = true
		}
		if len(labels) > metrics.MaxModels+1 || !labels[metrics.OtherModel] {
			t.Errorf("%s has %d model labels (other among them: %v), want at most %d and other",
				name, len(labels), labels[metrics.OtherModel], metrics.MaxModels+1)
		}
	}
}
