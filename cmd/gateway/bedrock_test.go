package main

import (
	"strings"
	"testing"

	"github.com/chatgateway/gateway/internal/bedrock/fakebedrock"
	"github.com/chatgateway/gateway/internal/conn/conntest"
	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/jetlog/natstest"
	"github.com/chatgateway/gateway/protocol"
)

// TestRunBedrock runs the real program with -provider bedrock against the
// local eventstream fake, through the flags a user would give: the reply
// streams from the fake, and the model id and inference defaults reach it.
func TestRunBedrock(t *testing.T) {
	t.Parallel()
	fake := fakebedrock.New(fakebedrock.Always(fakebedrock.Reply{Chunks: []string{"Hello ", "from ", "Bedrock."},
		StopReason: "end_turn", Usage: fakebedrock.Usage{InputTokens: 7, OutputTokens: 3}}))
	defer fake.Close()

	const model = "anthropic.claude-3-5-haiku-20241022-v1:0"
	g := startRun(t, map[string]string{"GATEWAY_DB": t.TempDir() + "/gateway.db"},
		"-addr", "127.0.0.1:0", "-provider", "bedrock", "-model", model, "-region", "us-east-1",
		"-bedrock-endpoint", fake.URL, "-max-tokens", "256", "-temperature", "0.3")
	var info struct {
		Provider     string `json:"provider"`
		DefaultModel string `json:"default_model"`
	}
	get(t, g.URL+"/v1/info", &info)
	if info.Provider != "bedrock" || info.DefaultModel != model {
		t.Errorf("info %+v", info)
	}
	c := conntest.Dial(t, g.URL, "/v1/ws")
	c.Request(&protocol.Send{ID: "s", Text: "hi"})
	frames := c.ReadUntil(conntest.IsType(protocol.EventTurnEnd))
	end := frames[len(frames)-1]
	if end.StopReason != protocol.StopEndTurn || end.StoredMessage().Text != "Hello from Bedrock." ||
		end.Usage == nil || end.Usage.OutputTokens != 3 {
		t.Fatalf("turn_end %+v text %q", end, end.StoredMessage().Text)
	}
	reqs := fake.Requests()
	if len(reqs) != 1 || reqs[0].ModelID != model {
		t.Fatalf("fake got %d requests (model %q)", len(reqs), reqs[0].ModelID)
	}
	ic := reqs[0].Body.InferenceConfig
	if ic == nil || ic.MaxTokens == nil || *ic.MaxTokens != 256 || ic.Temperature == nil || *ic.Temperature != 0.3 {
		t.Errorf("inference config %+v", ic)
	}
}

// TestRunBedrockStall runs the real program with -bedrock-idle-timeout
// against a fake whose first reply stops after two chunks without closing
// the stream: the turn ends model_error after the idle timeout, keeping
// the text streamed so far, and the message queued behind it gets its
// reply.
func TestRunBedrockStall(t *testing.T) {
	t.Parallel()
	hold := make(chan struct{}) // never released
	defer close(hold)
	fake := fakebedrock.New(func(call int, _ fakebedrock.Request) fakebedrock.Reply {
		if call == 1 {
			return fakebedrock.Reply{Chunks: []string{"Hello ", "from ", "nowhere"}, Hold: hold, HoldAfter: 2}
		}
		return fakebedrock.Reply{Chunks: []string{"Back."}}
	})
	defer fake.Close()

	g := startRun(t, map[string]string{"GATEWAY_DB": t.TempDir() + "/gateway.db"},
		"-addr", "127.0.0.1:0", "-provider", "bedrock", "-model", "anthropic.claude-3-5-haiku-20241022-v1:0",
		"-region", "us-east-1", "-bedrock-endpoint", fake.URL, "-bedrock-idle-timeout", "1s")
	c := conntest.Dial(t, g.URL, "/v1/ws")
	if f := c.Call(&protocol.Create{ID: "create", Conversation: "stall"}); f.Type != protocol.ReplyCreated {
		t.Fatalf("create: %s %s", f.Code, f.ErrorMessage())
	}
	c.Request(&protocol.Send{Conversation: "stall", Text: "hi"})
	var streamed string // deltas may be coalesced
	c.ReadUntil(func(f *protocol.ServerFrame) bool {
		if f.Type == protocol.EventDelta {
			streamed += f.Text
		}
		return streamed == "Hello from "
	})
	// Queued behind the stalled turn (unless the stall already ended it).
	c.Request(&protocol.Send{Conversation: "stall", Text: "still there?"})
	frames := c.ReadUntil(conntest.IsType(protocol.EventTurnEnd))
	end := frames[len(frames)-1]
	want := protocol.Error{Code: protocol.CodeModelError, Message: "the stream stalled: Bedrock sent nothing for 1s"}
	if end.StopReason != protocol.StopError || end.Error == nil || *end.Error != want || end.StoredMessage().Text != "Hello from " {
		t.Fatalf("turn_end stop %q error %+v text %q; want error, %+v, %q", end.StopReason, end.Error, end.StoredMessage().Text, want, "Hello from ")
	}
	frames = c.ReadUntil(conntest.IsType(protocol.EventTurnEnd))
	if end := frames[len(frames)-1]; end.StopReason != protocol.StopEndTurn || end.StoredMessage().Text != "Back." {
		t.Fatalf("second turn_end stop %q text %q; want end_turn, Back.", end.StopReason, end.StoredMessage().Text)
	}
}

// TestRunBedrockReasoningOverLimit runs the real program, on bbolt and in
// cluster mode, against a Bedrock fake that reasons for more than the
// gateway's reply limit (HTML, whose '<', '>' and '&' take six bytes each
// in a thinking event): the reasoning shares the reply's bound, so the
// turn ends max_tokens with its thinking cut at convo.MaxReplyBytes, each
// thinking event stored (in cluster mode, within a NATS message), and the
// conversation's next turn gets its reply.
func TestRunBedrockReasoningOverLimit(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{"bbolt", "cluster"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			reasoning := make([]string, 400) // 1,400,000 bytes in events
			for i := range reasoning {
				reasoning[i] = strings.Repeat("<b>x&y</b>", 100)
			}
			g, _ := startOnBedrock(t, mode, func(call int, _ fakebedrock.Request) fakebedrock.Reply {
				if call == 1 {
					return fakebedrock.Reply{Reasoning: reasoning, Chunks: []string{"never shown"}}
				}
				return fakebedrock.Reply{Chunks: []string{"Back."}}
			})
			c := conntest.Dial(t, g.URL, "/v1/ws")
			if f := c.Call(&protocol.Create{ID: "create", Conversation: "deep"}); f.Type != protocol.ReplyCreated {
				t.Fatalf("create: %s %s", f.Code, f.ErrorMessage())
			}
			c.Request(&protocol.Send{Conversation: "deep", Text: "think hard"})
			frames := c.ReadUntil(conntest.IsType(protocol.EventTurnEnd))
			var thinking string
			for _, f := range ofType(frames, protocol.EventThinking) {
				thinking += f.Text
			}
			end := frames[len(frames)-1]
			if n := protocol.TextLen(thinking); end.StopReason != protocol.StopMaxTokens || end.StoredMessage().Text != "" ||
				n > convo.MaxReplyBytes || n <= convo.MaxReplyBytes-6 {
				t.Fatalf("turn_end %s (%+v) with %q after %d bytes of thinking; want max_tokens, no text, and between %d and %d bytes",
					end.StopReason, end.Error, end.StoredMessage().Text, n, convo.MaxReplyBytes-5, convo.MaxReplyBytes)
			}
			c.Request(&protocol.Send{Conversation: "deep", Text: "and now?"})
			frames = c.ReadUntil(conntest.IsType(protocol.EventTurnEnd))
			if end := frames[len(frames)-1]; end.StopReason != protocol.StopEndTurn || end.StoredMessage().Text != "Back." {
				t.Fatalf("next turn_end %s %q, want end_turn %q", end.StopReason, end.StoredMessage().Text, "Back.")
			}
		})
	}
}

// startOnBedrock runs the real program with args against a Bedrock fake
// that answers with script, keeping its conversations in mode: "bbolt"
// (a file in t.TempDir()) or "cluster" (an embedded NATS server).
func startOnBedrock(t *testing.T, mode string, script fakebedrock.Script, args ...string) (*gateway, *fakebedrock.Server) {
	t.Helper()
	fake := fakebedrock.New(script)
	t.Cleanup(fake.Close)
	env := map[string]string{"GATEWAY_DB": t.TempDir() + "/gateway.db"}
	if mode == "cluster" {
		env = map[string]string{"GATEWAY_NATS": natstest.Start(t).URL()}
	}
	args = append([]string{"-addr", "127.0.0.1:0", "-provider", "bedrock", "-model", "anthropic.claude-3-5-haiku-20241022-v1:0",
		"-region", "us-east-1", "-bedrock-endpoint", fake.URL}, args...)
	return startRun(t, env, args...), fake
}
