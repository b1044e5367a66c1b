package demo

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

func history(texts ...string) []convo.HistoryMessage {
	var h []convo.HistoryMessage
	for i, t := range texts {
		role := protocol.RoleUser
		if i%2 == 1 {
			role = protocol.RoleAssistant
		}
		h = append(h, convo.HistoryMessage{Role: role, Text: t})
	}
	return h
}

// collect streams req and returns the chunks and result.
func collect(t *testing.T, m *Model, req convo.ModelRequest) ([]convo.Chunk, convo.Result) {
	t.Helper()
	var chunks []convo.Chunk
	res, err := m.Stream(context.Background(), req, func(c convo.Chunk) { chunks = append(chunks, c) })
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	return chunks, res
}

func text(chunks []convo.Chunk, kind convo.ChunkKind) string {
	var b strings.Builder
	for _, c := range chunks {
		if c.Kind == kind {
			b.WriteString(c.Text)
		}
	}
	return b.String()
}

func TestStreamReply(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		history    []convo.HistoryMessage
		wantSubstr []string
	}{
		{"first turn", history("hello there"), []string{"Demo model", "You said: “hello there”", "turn 1 "}},
		{"third turn", history("a", "b", "c", "d", "what now"), []string{"“what now”", "turn 3 "}},
		{"long echo is cut", history(strings.Repeat("x", 300)), []string{strings.Repeat("x", maxEcho) + "…”"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := New(Options{WordDelay: -1})
			chunks, res := collect(t, m, convo.ModelRequest{History: tt.history})
			got := text(chunks, convo.ChunkText)
			for _, s := range tt.wantSubstr {
				if !strings.Contains(got, s) {
					t.Errorf("reply %q does not contain %q", got, s)
				}
			}
			if len(chunks) < 10 {
				t.Errorf("reply came in %d chunks, want one per word", len(chunks))
			}
			if res.StopReason != protocol.StopEndTurn {
				t.Errorf("stop reason %q, want %q", res.StopReason, protocol.StopEndTurn)
			}
			if res.Usage.OutputTokens != int64(len(strings.Fields(got))) {
				t.Errorf("output tokens %d, want %d", res.Usage.OutputTokens, len(strings.Fields(got)))
			}
		})
	}
}

func TestStreamScriptedReplyAndUsage(t *testing.T) {
	t.Parallel()
	const reply = "one two  three "
	m := New(Options{WordDelay: -1, Reply: func(convo.ModelRequest) string { return reply }})
	req := convo.ModelRequest{System: "be brief", History: history("hi you", "hello", "again")}
	chunks, res := collect(t, m, req)
	if got := text(chunks, convo.ChunkText); got != reply {
		t.Errorf("concatenated chunks %q, want %q", got, reply)
	}
	for _, c := range chunks {
		if c.Text == "" {
			t.Errorf("empty chunk in %+v", chunks)
		}
	}
	want := protocol.Usage{InputTokens: 6, OutputTokens: 3}
	if res.Usage != want {
		t.Errorf("usage %+v, want %+v", res.Usage, want)
	}
}

func TestStreamCommands(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		text  string
		kinds []convo.ChunkKind // the kinds of the chunks before the text
	}{
		{"think", "/think about it", []convo.ChunkKind{convo.ChunkThinking, convo.ChunkThinking}},
		{"tool", "/tool what time is it", []convo.ChunkKind{convo.ChunkAction}},
		{"plain", "hello /think", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := New(Options{WordDelay: -1})
			chunks, _ := collect(t, m, convo.ModelRequest{History: history(tt.text)})
			for i, k := range tt.kinds {
				if chunks[i].Kind != k {
					t.Fatalf("chunk %d is kind %d, want %d", i, chunks[i].Kind, k)
				}
			}
			for _, c := range chunks[len(tt.kinds):] {
				if c.Kind != convo.ChunkText {
					t.Fatalf("chunk %+v after the prefix is not text", c)
				}
			}
			for _, c := range chunks[:len(tt.kinds)] {
				if c.Kind != convo.ChunkAction {
					continue
				}
				var out struct{ Time time.Time }
				if c.Name != "clock" || string(c.Input) != `{"tz":"UTC"}` || json.Unmarshal(c.Output, &out) != nil || out.Time.IsZero() {
					t.Errorf("action = %s %s %s, want clock {\"tz\":\"UTC\"} {\"time\":…}", c.Name, c.Input, c.Output)
				}
			}
		})
	}
}

func TestStreamPacing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := New(Options{FirstDelay: 2 * time.Second, Reply: func(convo.ModelRequest) string { return "a b c" }})
		start := time.Now()
		var at []time.Duration
		_, err := m.Stream(context.Background(), convo.ModelRequest{}, func(convo.Chunk) { at = append(at, time.Since(start)) })
		if err != nil {
			t.Fatal(err)
		}
		want := []time.Duration{2 * time.Second, 2*time.Second + DefaultWordDelay, 2*time.Second + 2*DefaultWordDelay}
		if len(at) != len(want) {
			t.Fatalf("emitted at %v, want %v", at, want)
		}
		for i := range want {
			if at[i] != want[i] {
				t.Errorf("chunk %d emitted at %v, want %v", i, at[i], want[i])
			}
		}
	})
}

func TestStreamCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := New(Options{Reply: func(convo.ModelRequest) string { return "a b c d e f" }})
		ctx, cancel := context.WithCancel(context.Background())
		var got int
		_, err := m.Stream(ctx, convo.ModelRequest{}, func(convo.Chunk) {
			got++
			if got == 2 {
				cancel()
			}
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Stream after cancel returned %v, want context.Canceled", err)
		}
		if got != 2 {
			t.Errorf("emitted %d chunks, want 2 (none after cancel)", got)
		}
	})
}
