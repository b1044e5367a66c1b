package main

import (
	"net/http"
	"testing"

	"github.com/chatgateway/gateway/internal/bedrock/fakebedrock"
	"github.com/chatgateway/gateway/internal/conn/conntest"
	"github.com/chatgateway/gateway/protocol"
)

// TestRunMaxModelCalls runs the real program with -max-model-calls 1
// against the Bedrock fake, whose first reply holds after a chunk: a
// second conversation's turn does not call Bedrock while it holds (its
// wait shows in gateway_model_calls_waiting), and gets its whole reply
// once the first ends.
func TestRunMaxModelCalls(t *testing.T) {
	t.Parallel()
	hold := make(chan struct{})
	fake := fakebedrock.New(func(call int, _ fakebedrock.Request) fakebedrock.Reply {
		if call == 1 {
			return fakebedrock.Reply{Chunks: []string{"First ", "reply."}, Hold: hold, HoldAfter: 1}
		}
		return fakebedrock.Reply{Chunks: []string{"Second ", "reply."}}
	})
	defer fake.Close()
	g := startRun(t, map[string]string{"GATEWAY_DB": t.TempDir() + "/gateway.db"},
		"-addr", "127.0.0.1:0", "-provider", "bedrock", "-model", "anthropic.claude-3-5-haiku-20241022-v1:0",
		"-region", "us-east-1", "-bedrock-endpoint", fake.URL, "-max-model-calls", "1")
	c := conntest.Dial(t, g.URL, "/v1/ws")
	c.Request(&protocol.Send{Text: "one"})
	c.ReadUntil(conntest.IsType(protocol.EventDelta))
	c.Request(&protocol.Send{Text: "two"})
	for {
		code, body := conntest.Do(t, http.MethodGet, g.URL+"/metrics", "")
		if code != http.StatusOK {
			t.Fatalf("GET /metrics: %d", code)
		}
		if metricValue(string(body), "gateway_model_calls_waiting") == 1 {
			break
		}
		if n := fake.Calls(); n > 1 {
			t.Fatalf("Bedrock got %d calls while the first held, want 1", n)
		}
	}
	if n := fake.Calls(); n != 1 {
		t.Fatalf("Bedrock got %d calls while the first held, want 1", n)
	}
	close(hold)
	replies, convs := map[string]bool{}, map[string]bool{}
	for range 2 {
		frames := c.ReadUntil(conntest.IsType(protocol.EventTurnEnd))
		end := frames[len(frames)-1]
		if end.StopReason != protocol.StopEndTurn {
			t.Fatalf("turn_end %s, want end_turn", end.StopReason)
		}
		replies[end.StoredMessage().Text], convs[end.Conversation] = true, true
	}
	if !replies["First reply."] || !replies["Second reply."] || len(convs) != 2 || fake.Calls() != 2 {
		t.Errorf("replies %v in %d conversations after %d calls, want both whole, one each, two calls", replies, len(convs), fake.Calls())
	}
}
