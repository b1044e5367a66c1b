package bedrock_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/chatgateway/gateway/internal/bedrock"
	"github.com/chatgateway/gateway/internal/bedrock/fakebedrock"
	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

func TestStreamText(t *testing.T) {
	parts := []string{"Hel", "lo", ", ", "wor", "ld", "!"}
	srv := startFake(t, fakebedrock.Always(fakebedrock.Reply{
		Chunks: parts, Usage: fakebedrock.Usage{InputTokens: 12, OutputTokens: 6}, LatencyMS: 42,
	}))
	c := newClient(t, srv, bedrock.Options{})

	chunks, res, err := stream(t, c, ask("hi"))
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	if len(chunks) != len(parts) {
		t.Errorf("got %d chunks, want %d (one per delta)", len(chunks), len(parts))
	}
	if got, want := text(chunks), strings.Join(parts, ""); got != want {
		t.Errorf("text = %q, want %q", got, want)
	}
	want := convo.Result{StopReason: protocol.StopEndTurn, Usage: protocol.Usage{InputTokens: 12, OutputTokens: 6}}
	if !reflect.DeepEqual(res, want) {
		t.Errorf("result = %+v, want %+v", res, want)
	}
	// Turns reuse the client's connection. Without inMemoryBody (see
	// httpclient.go), a race in the SDK loses about 30 connections in 200
	// turns here, and now and then a stream.
	for range 200 {
		if _, _, err := stream(t, c, ask("again")); err != nil {
			t.Fatalf("Stream: %v", err)
		}
	}
	if n := srv.Conns(); n != 1 {
		t.Errorf("201 turns used %d connections, want 1", n)
	}
	// The request is signed for the service "bedrock" in the region.
	if auth := srv.Requests()[0].Header.Get("Authorization"); !strings.Contains(auth, "/us-east-1/bedrock/aws4_request") {
		t.Errorf("Authorization = %q, want a us-east-1 bedrock scope", auth)
	}
}

func TestStopReasons(t *testing.T) {
	for _, tc := range []struct{ bedrock, want string }{
		{"end_turn", protocol.StopEndTurn},
		{"max_tokens", protocol.StopMaxTokens},
		{"stop_sequence", protocol.StopStopSequence},
		{"tool_use", protocol.StopToolUse},
		{"guardrail_intervened", protocol.StopContentFiltered},
		{"content_filtered", protocol.StopContentFiltered},
		{"model_context_window_exceeded", protocol.StopMaxTokens},
		{"malformed_model_output", protocol.StopEndTurn},
		{"a_future_reason", protocol.StopEndTurn},
	} {
		t.Run(tc.bedrock, func(t *testing.T) {
			srv := startFake(t, fakebedrock.Always(fakebedrock.Reply{Chunks: []string{"x"}, StopReason: tc.bedrock}))
			_, res, err := stream(t, newClient(t, srv, bedrock.Options{}), ask("hi"))
			if err != nil {
				t.Fatalf("Stream: %v", err)
			}
			if res.StopReason != tc.want {
				t.Errorf("stop reason = %q, want %q", res.StopReason, tc.want)
			}
		})
	}
}

func TestReasoningAndToolUse(t *testing.T) {
	srv := startFake(t, fakebedrock.Always(fakebedrock.Reply{
		Reasoning: []string{"The user wants ", "the weather."},
		Chunks:    []string{"Let me ", "check."},
		ToolUses: []fakebedrock.ToolUse{
			{ID: "t1", Name: "get_weather", Input: []string{`{"city":`, ` "Paris", "units"`, `: "C"}`}},
			{ID: "t2", Name: "now"},
			{ID: "t3", Name: "broken", Input: []string{`{"a": `, `tru`}},
		},
		StopReason: "tool_use",
	}))
	chunks, res, err := stream(t, newClient(t, srv, bedrock.Options{}), ask("weather in Paris?"))
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	want := []convo.Chunk{
		{Kind: convo.ChunkThinking, Text: "The user wants "},
		{Kind: convo.ChunkThinking, Text: "the weather."},
		{Kind: convo.ChunkText, Text: "Let me "},
		{Kind: convo.ChunkText, Text: "check."},
	}
	if !reflect.DeepEqual(chunks, want) {
		t.Errorf("chunks:\n got %s\nwant %s", dump(chunks), dump(want))
	}
	if res.StopReason != protocol.StopToolUse {
		t.Errorf("stop reason = %q, want tool_use", res.StopReason)
	}
	// Assembled from their fragments; no fragment at all is {}; broken
	// JSON is kept as a string, for the tool to refuse.
	wantUses := []convo.ToolUse{
		{ID: "t1", Name: "get_weather", Input: json.RawMessage(`{"city": "Paris", "units": "C"}`)},
		{ID: "t2", Name: "now", Input: json.RawMessage(`{}`)},
		{ID: "t3", Name: "broken", Input: json.RawMessage(`"{\"a\": tru"`)},
	}
	if !reflect.DeepEqual(res.ToolUses, wantUses) {
		t.Errorf("tool uses = %+v, want %+v", res.ToolUses, wantUses)
	}
}

func dump(chunks []convo.Chunk) string {
	var b strings.Builder
	for _, ch := range chunks {
		b.WriteString("\n  ")
		b.WriteString(strings.TrimSpace(strings.ReplaceAll(
			strings.Join([]string{[]string{"text", "thinking", "action"}[ch.Kind], ch.Text}, " "), "  ", " ")))
	}
	return b.String()
}

func TestModelIDs(t *testing.T) {
	srv := startFake(t, fakebedrock.Always(fakebedrock.Reply{Chunks: []string{"ok"}}))
	c := newClient(t, srv, bedrock.Options{})
	for _, id := range []string{
		"anthropic.claude-3-5-haiku-20241022-v1:0",
		"us.anthropic.claude-sonnet-4-20250514-v1:0",
		"amazon.nova-lite-v1:0",
		"arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-lite-v1:0",
		"arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-5-haiku-20241022-v1:0",
		"arn:aws:bedrock:us-east-1:123456789012:provisioned-model/abc123 x",
	} {
		t.Run(id, func(t *testing.T) {
			req := ask("hi")
			req.Model = id
			if _, _, err := stream(t, c, req); err != nil {
				t.Fatalf("Stream: %v", err)
			}
			reqs := srv.Requests()
			if got := reqs[len(reqs)-1].ModelID; got != id {
				t.Errorf("fake got model id %q, want %q", got, id)
			}
		})
	}
}
