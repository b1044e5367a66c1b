package main

import (
	"net/http"
	"strings"
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
	awaitWaiting(t, g, fake)
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

// awaitWaiting returns once one turn of g waits for a model call
// (gateway_model_calls_waiting), failing the test if Bedrock gets more
// than the one call that holds.
func awaitWaiting(t *testing.T, g *gateway, fake *fakebedrock.Server) {
	t.Helper()
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
}

// TestRunMaxWaitingTurns runs the real program, on bbolt and in cluster
// mode, with -max-model-calls 1 and -max-waiting-turns 1 against the
// Bedrock fake, whose first reply holds: a second conversation's turn
// waits, and a third's, which would wait beside it, ends at once with
// error busy, Bedrock not called for it. Its message stays stored: the
// conversation's next turn, once the line has room, sends it to Bedrock.
func TestRunMaxWaitingTurns(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"bbolt", "cluster"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			hold := make(chan struct{})
			g, fake := startOnBedrock(t, mode, func(call int, _ fakebedrock.Request) fakebedrock.Reply {
				if call == 1 {
					return fakebedrock.Reply{Chunks: []string{"First ", "reply."}, Hold: hold, HoldAfter: 1}
				}
				return fakebedrock.Reply{Chunks: []string{"Later reply."}}
			}, "-max-model-calls", "1", "-max-waiting-turns", "1")
			c := conntest.Dial(t, g.URL, "/v1/ws")
			for _, id := range []string{"one", "two", "three"} {
				if f := c.Call(&protocol.Create{ID: "create-" + id, Conversation: id}); f.Type != protocol.ReplyCreated {
					t.Fatalf("create %s: %s %s", id, f.Code, f.ErrorMessage())
				}
			}
			c.Request(&protocol.Send{Conversation: "one", Text: "one"})
			c.ReadUntil(conntest.IsType(protocol.EventDelta))
			c.Request(&protocol.Send{Conversation: "two", Text: "two"})
			awaitWaiting(t, g, fake)
			c.Request(&protocol.Send{Conversation: "three", Text: "three"})
			frames := c.ReadUntil(func(f *protocol.ServerFrame) bool {
				return f.Type == protocol.EventTurnEnd && f.Conversation == "three"
			})
			end := frames[len(frames)-1]
			if end.StopReason != protocol.StopError || end.Error == nil || end.Error.Code != protocol.CodeBusy || fake.Calls() != 1 {
				t.Fatalf("the third turn ended %s %+v after %d Bedrock calls; want error busy, and 1 call", end.StopReason, end.Error, fake.Calls())
			}
			close(hold)
			for range 2 {
				frames := c.ReadUntil(conntest.IsType(protocol.EventTurnEnd))
				if end := frames[len(frames)-1]; end.StopReason != protocol.StopEndTurn || end.Conversation == "three" {
					t.Fatalf("turn_end of %s: %s, want end_turn of one and two", end.Conversation, end.StopReason)
				}
			}
			c.Request(&protocol.Send{Conversation: "three", Text: "again"})
			frames = c.ReadUntil(conntest.IsType(protocol.EventTurnEnd))
			if end := frames[len(frames)-1]; end.StopReason != protocol.StopEndTurn || end.StoredMessage().Text != "Later reply." {
				t.Fatalf("the third conversation's next turn_end %s %q, want end_turn", end.StopReason, end.StoredMessage().Text)
			}
			reqs := fake.Requests()
			var sent []string
			for _, m := range reqs[len(reqs)-1].Body.Messages {
				for _, b := range m.Content {
					sent = append(sent, b.Text)
				}
			}
			if got := strings.Join(sent, "|"); !strings.Contains(got, "three") || !strings.Contains(got, "again") {
				t.Errorf("Bedrock got the messages %q for the third conversation, want the refused one and the new one", got)
			}
		})
	}
}

// TestRunMaxHistoryBytes runs the real program, on bbolt and in cluster
// mode, with -max-history-bytes 4096 against the Bedrock fake: the turn
// whose conversation passes it ends at once with error too_large, and
// Bedrock is not called for it; the next conversation is answered.
func TestRunMaxHistoryBytes(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"bbolt", "cluster"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			g, fake := startOnBedrock(t, mode, func(int, fakebedrock.Request) fakebedrock.Reply {
				return fakebedrock.Reply{Chunks: []string{"ok"}}
			}, "-max-history-bytes", "4096")
			c := conntest.Dial(t, g.URL, "/v1/ws")
			if f := c.Call(&protocol.Create{ID: "create", Conversation: "long"}); f.Type != protocol.ReplyCreated {
				t.Fatalf("create: %s %s", f.Code, f.ErrorMessage())
			}
			text := strings.Repeat("x", 1500)
			for i, want := range []string{protocol.StopEndTurn, protocol.StopEndTurn, protocol.StopError} {
				c.Request(&protocol.Send{Conversation: "long", Text: text})
				frames := c.ReadUntil(conntest.IsType(protocol.EventTurnEnd))
				end := frames[len(frames)-1]
				if end.StopReason != want || want == protocol.StopError && (end.Error == nil || end.Error.Code != protocol.CodeTooLarge) {
					t.Fatalf("turn %d ended %s %+v, want %s (too_large for the third)", i+1, end.StopReason, end.Error, want)
				}
			}
			if n := fake.Calls(); n != 2 {
				t.Fatalf("Bedrock got %d calls, want 2: none for the history over the bound", n)
			}
			c.Request(&protocol.Send{Text: "short"})
			frames := c.ReadUntil(conntest.IsType(protocol.EventTurnEnd))
			if end := frames[len(frames)-1]; end.StopReason != protocol.StopEndTurn {
				t.Fatalf("a new conversation's turn ended %s, want end_turn", end.StopReason)
			}
		})
	}
}
