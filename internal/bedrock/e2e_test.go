package bedrock_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatgateway/gateway/internal/bedrock"
	"github.com/chatgateway/gateway/internal/bedrock/fakebedrock"
	"github.com/chatgateway/gateway/internal/conn"
	"github.com/chatgateway/gateway/internal/conn/conntest"
	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/httpapi"
	"github.com/chatgateway/gateway/internal/loadtest"
	"github.com/chatgateway/gateway/protocol"
)

// startGateway runs the whole gateway (WebSocket, convo, bbolt) on the
// Bedrock client c, logging to log (the test's log when nil).
func startGateway(t testing.TB, c *bedrock.Client, log *slog.Logger) *conntest.Server {
	return conntest.Start(t, conntest.Config{
		Model: c,
		Convo: convo.Config{DefaultModel: testModel, Logger: log},
		Conn:  conn.Options{Logger: log},
		API:   httpapi.Options{Logger: log},
	})
}

// turn sends text in conversation and reads until the turn ends; it returns
// the concatenated deltas and the turn_end frame.
func turn(t testing.TB, ws *conntest.Client, conversation, text string) (string, protocol.ServerFrame) {
	t.Helper()
	ws.Request(&protocol.Send{Conversation: conversation, Text: text})
	return readTurn(t, ws)
}

func readTurn(t testing.TB, ws *conntest.Client) (string, protocol.ServerFrame) {
	t.Helper()
	frames := ws.ReadUntil(conntest.IsType(protocol.EventTurnEnd))
	var b strings.Builder
	for _, f := range frames {
		if f.Type == protocol.EventDelta {
			b.WriteString(f.Text)
		}
	}
	return b.String(), frames[len(frames)-1]
}

// TestGateway runs conversations through the whole gateway against the
// fake: WebSocket → convo → bedrock → SDK → fake.
func TestGateway(t *testing.T) {
	const arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-haiku-20241022-v1:0"
	gone := make(chan struct{})
	replies := map[int]fakebedrock.Reply{
		1: {Chunks: []string{"Hello", " there", "!"}, Usage: fakebedrock.Usage{InputTokens: 5, OutputTokens: 3}},
		2: {Error: &fakebedrock.HTTPError{Status: 429, Type: "ThrottlingException", Message: "Too many requests"}},
		3: {Chunks: []string{"Second ", "answer."}},
		4: {Chunks: []string{"Part", "ial", " more"}, Fail: &fakebedrock.Failure{After: 2, Exception: "modelStreamErrorException", Message: "model hiccup"}},
		5: {Chunks: []string{"Recovered."}},
		6: {Chunks: []string{"x", "y", "z"}, Hold: make(chan struct{}), HoldAfter: 1, Gone: gone},
		7: {Chunks: []string{"via ARN"}},
		8: {Chunks: []string{"tuned"}},
	}
	srv := startFake(t, func(call int, _ fakebedrock.Request) fakebedrock.Reply { return replies[call] })
	gw := startGateway(t, newClient(t, srv, bedrock.Options{}), nil)
	ws := gw.Dial(t, "")
	ws.Call(&protocol.Create{ID: "c", Conversation: "c1", System: "Be brief."})

	t.Run("text streams and ends the turn", func(t *testing.T) {
		text, end := turn(t, ws, "c1", "hi")
		if text != "Hello there!" || end.StoredMessage().Text != text {
			t.Errorf("deltas %q, stored %q; want %q for both", text, end.StoredMessage().Text, "Hello there!")
		}
		if end.StopReason != protocol.StopEndTurn || end.Usage == nil || *end.Usage != (protocol.Usage{InputTokens: 5, OutputTokens: 3}) {
			t.Errorf("turn_end stop %q usage %+v, want end_turn and 5/3 tokens", end.StopReason, end.Usage)
		}
	})
	t.Run("throttled call is retried; the history and system prompt are sent", func(t *testing.T) {
		if text, end := turn(t, ws, "c1", "again"); text != "Second answer." || end.StopReason != protocol.StopEndTurn {
			t.Errorf("turn 2: %q, %s", text, end.StopReason)
		}
		checkRequest(t, srv, 3, "Be brief.", "user:hi", "assistant:Hello there!", "user:again")
	})
	t.Run("mid-stream exception ends the turn with an error, keeping the partial text", func(t *testing.T) {
		text, end := turn(t, ws, "c1", "fail")
		if text != "Partial" || end.StoredMessage().Text != "Partial" || end.StopReason != protocol.StopError {
			t.Errorf("deltas %q, stored %q, stop %q; want Partial, Partial, error", text, end.StoredMessage().Text, end.StopReason)
		}
		if want := (protocol.Error{Code: protocol.CodeModelError, Message: "ModelStreamErrorException: model hiccup"}); end.Error == nil || *end.Error != want {
			t.Errorf("turn_end error = %+v, want %+v", end.Error, want)
		}
	})
	t.Run("the conversation is still usable and remembers the partial text", func(t *testing.T) {
		if text, _ := turn(t, ws, "c1", "recover"); text != "Recovered." {
			t.Errorf("turn 4: %q", text)
		}
		checkRequest(t, srv, 5, "Be brief.", "user:hi", "assistant:Hello there!", "user:again",
			"assistant:Second answer.", "user:fail", "assistant:Partial", "user:recover")
	})
	t.Run("cancel closes the request at the fake", func(t *testing.T) {
		ws.Request(&protocol.Send{Conversation: "c1", Text: "stop me"})
		ws.ReadUntil(conntest.IsType(protocol.EventDelta))
		ws.Request(&protocol.Cancel{Conversation: "c1"})
		_, end := readTurn(t, ws)
		if end.StopReason != protocol.StopCancelled || end.StoredMessage().Text != "x" {
			t.Errorf("turn_end stop %q text %q, want cancelled and x", end.StopReason, end.StoredMessage().Text)
		}
		closed(t, gone, "the fake to see the request closed")
	})
	t.Run("a conversation's own model id reaches Bedrock", func(t *testing.T) {
		ws.Call(&protocol.Create{ID: "c2", Conversation: "c2", Model: arn})
		if text, _ := turn(t, ws, "c2", "hi"); text != "via ARN" {
			t.Errorf("turn: %q", text)
		}
		if got := srv.Requests()[6].ModelID; got != arn {
			t.Errorf("model id at the fake = %q, want %q", got, arn)
		}
	})
	t.Run("a conversation's max tokens and temperature reach Bedrock", func(t *testing.T) {
		ws.Call(&protocol.Create{ID: "c3", Conversation: "c3", MaxTokens: i32(77), Temperature: f32(0.25)})
		if text, _ := turn(t, ws, "c3", "hi"); text != "tuned" {
			t.Errorf("turn: %q", text)
		}
		want := &fakebedrock.InferenceConfig{MaxTokens: i32(77), Temperature: f32(0.25)}
		if got := srv.Requests()[7]; !reflect.DeepEqual(got.Body.InferenceConfig, want) {
			t.Errorf("request = %s, want inferenceConfig %+v", got.Raw, want)
		}
	})
}

// checkRequest checks the system prompt and the "role:text" messages of
// the fake's request number call (from 1).
func checkRequest(t *testing.T, srv *fakebedrock.Server, call int, system string, msgs ...string) {
	t.Helper()
	req := srv.Requests()[call-1]
	var got []string
	for _, m := range req.Body.Messages {
		got = append(got, m.Role+":"+m.Content[0].Text)
	}
	if !reflect.DeepEqual(got, msgs) {
		t.Errorf("request %d messages:\n got %q\nwant %q", call, got, msgs)
	}
	if len(req.Body.System) != 1 || req.Body.System[0].Text != system {
		t.Errorf("request %d system = %+v, want %q", call, req.Body.System, system)
	}
}

// BenchmarkFirstDelta measures the time to the first chunk of a reply
// called directly with the SDK client, then to the first delta frame of a
// turn (a new conversation each time) through the whole gateway:
// WebSocket, convo with its durable appends, bedrock, against the same
// fake. The difference is what the gateway adds. The two run one after the
// other, so that the gateway's background work (commits, fsyncs) does not
// slow the direct calls. Last it times bare bbolt commits on the same
// disk (a small put each, opened as the gateway opens its file): two of
// them, the send's and the first delta's, come before every first delta.
func BenchmarkFirstDelta(b *testing.B) {
	srv := startFake(b, fakebedrock.Always(fakebedrock.Reply{Chunks: []string{"first", " second", " third"}}))
	// Logging to b.Log would weigh on both paths: discard it.
	log := slog.New(slog.DiscardHandler)
	c := newClient(b, srv, bedrock.Options{Logger: log})
	ws := startGateway(b, c, log).Dial(b, "")
	b.ReportAllocs()
	b.ResetTimer()
	direct := make([]time.Duration, 0, b.N)
	for range b.N {
		start := time.Now()
		var first time.Duration
		_, err := c.Stream(context.Background(), ask("hi"), func(convo.Chunk) {
			if first == 0 {
				first = time.Since(start)
			}
		})
		if err != nil {
			b.Fatal(err)
		}
		direct = append(direct, first)
	}
	gateway := make([]time.Duration, 0, b.N)
	for range b.N {
		start := time.Now()
		ws.Request(&protocol.Send{Text: "hi"})
		ws.ReadUntil(conntest.IsType(protocol.EventDelta))
		gateway = append(gateway, time.Since(start))
		ws.ReadUntil(conntest.IsType(protocol.EventTurnEnd))
	}
	mean := func(d []time.Duration) float64 {
		var sum time.Duration
		for _, x := range d {
			sum += x
		}
		return float64(sum.Microseconds()) / float64(len(d))
	}
	median := func(d []time.Duration) float64 {
		slices.Sort(d)
		return float64(d[len(d)/2].Microseconds())
	}
	bare, err := loadtest.BareCommits(context.Background(), filepath.Join(b.TempDir(), "bare.db"), b.N, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(median(bare), "bare-commit-p50-µs")
	b.ReportMetric(mean(direct), "direct-µs/first-delta")
	b.ReportMetric(mean(gateway), "gateway-µs/first-delta")
	// The median of what the gateway adds, which the docs quote.
	b.ReportMetric(median(gateway)-median(direct), "added-p50-µs")
}
