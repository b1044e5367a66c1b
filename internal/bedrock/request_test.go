package bedrock_test

import (
	"reflect"
	"testing"

	"github.com/chatgateway/gateway/internal/bedrock"
	"github.com/chatgateway/gateway/internal/bedrock/fakebedrock"
	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

func user(text string) convo.HistoryMessage {
	return convo.HistoryMessage{Role: protocol.RoleUser, Text: text}
}

func assistant(text string) convo.HistoryMessage {
	return convo.HistoryMessage{Role: protocol.RoleAssistant, Text: text}
}

func msg(role, text string) fakebedrock.Message {
	return fakebedrock.Message{Role: role, Content: []fakebedrock.ContentBlock{{Text: text}}}
}

func TestHistory(t *testing.T) {
	srv := startFake(t, fakebedrock.Always(fakebedrock.Reply{Chunks: []string{"ok"}}))
	c := newClient(t, srv, bedrock.Options{})
	for _, tc := range []struct {
		name    string
		history []convo.HistoryMessage
		want    []fakebedrock.Message
	}{
		{
			name:    "turn 1",
			history: []convo.HistoryMessage{user("hi")},
			want:    []fakebedrock.Message{msg("user", "hi")},
		},
		{
			name:    "turn 2",
			history: []convo.HistoryMessage{user("hi"), assistant("Hello!"), user("how are you?")},
			want:    []fakebedrock.Message{msg("user", "hi"), msg("assistant", "Hello!"), msg("user", "how are you?")},
		},
		{
			name: "turn 3",
			history: []convo.HistoryMessage{
				user("a"), assistant("b"), user("c"), assistant("d"), user("e"),
			},
			want: []fakebedrock.Message{
				msg("user", "a"), msg("assistant", "b"), msg("user", "c"), msg("assistant", "d"), msg("user", "e"),
			},
		},
		{
			name:    "message queued during a turn is merged",
			history: []convo.HistoryMessage{user("a"), user("b"), assistant("c"), user("d"), user("e")},
			want: []fakebedrock.Message{
				msg("user", "a\n\nb"), msg("assistant", "c"), msg("user", "d\n\ne"),
			},
		},
		{
			name: "empty replies of failed and cancelled turns are skipped",
			history: []convo.HistoryMessage{
				user("a"), assistant(""), user("b"), assistant(" \n"), user("c"),
			},
			want: []fakebedrock.Message{msg("user", "a\n\nb\n\nc")},
		},
		{
			name: "partial replies are kept",
			history: []convo.HistoryMessage{
				user("a"), assistant("half an ans"), user("b"), assistant("cut"), user("c"),
			},
			want: []fakebedrock.Message{
				msg("user", "a"), msg("assistant", "half an ans"), msg("user", "b"), msg("assistant", "cut"), msg("user", "c"),
			},
		},
		{
			name:    "leading assistant messages are dropped",
			history: []convo.HistoryMessage{assistant("welcome"), user("hi")},
			want:    []fakebedrock.Message{msg("user", "hi")},
		},
		{
			name:    "a trailing assistant message is dropped",
			history: []convo.HistoryMessage{user("hi"), assistant("hello")},
			want:    []fakebedrock.Message{msg("user", "hi")},
		},
		{
			name:    "blank user messages are skipped",
			history: []convo.HistoryMessage{user("a"), assistant("b"), user("  "), user("c")},
			want:    []fakebedrock.Message{msg("user", "a"), msg("assistant", "b"), msg("user", "c")},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := convo.ModelRequest{Model: testModel, System: "Be brief.", History: tc.history}
			if _, _, err := stream(t, c, req); err != nil {
				t.Fatalf("Stream: %v", err)
			}
			reqs := srv.Requests()
			body := reqs[len(reqs)-1].Body
			if !reflect.DeepEqual(body.Messages, tc.want) {
				t.Errorf("messages:\n got %+v\nwant %+v", body.Messages, tc.want)
			}
			if want := []fakebedrock.TextBlock{{Text: "Be brief."}}; !reflect.DeepEqual(body.System, want) {
				t.Errorf("system = %+v, want %+v", body.System, want)
			}
		})
	}
}

func TestNothingToSend(t *testing.T) {
	srv := startFake(t, fakebedrock.Always(fakebedrock.Reply{Chunks: []string{"ok"}}))
	c := newClient(t, srv, bedrock.Options{})
	for _, tc := range []struct {
		name string
		req  convo.ModelRequest
	}{
		{"no model", convo.ModelRequest{History: []convo.HistoryMessage{user("hi")}}},
		{"no user text", convo.ModelRequest{Model: testModel, History: []convo.HistoryMessage{user(" "), assistant("x")}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := stream(t, c, tc.req)
			t.Log(modelError(t, err))
		})
	}
	wantCalls(t, srv, 0)
}

func f32(v float32) *float32 { return &v }
func i32(v int32) *int32     { return &v }

func TestInferenceConfig(t *testing.T) {
	srv := startFake(t, fakebedrock.Always(fakebedrock.Reply{Chunks: []string{"ok"}}))
	for _, tc := range []struct {
		name string
		opts bedrock.Options
		req  convo.ModelRequest
		want *fakebedrock.InferenceConfig
	}{
		{"none", bedrock.Options{}, ask("hi"), nil},
		{"defaults", bedrock.Options{MaxTokens: 512, Temperature: f32(0.5)}, ask("hi"),
			&fakebedrock.InferenceConfig{MaxTokens: i32(512), Temperature: f32(0.5)}},
		{"zero temperature is sent", bedrock.Options{Temperature: f32(0)}, ask("hi"),
			&fakebedrock.InferenceConfig{Temperature: f32(0)}},
		{"overrides", bedrock.Options{MaxTokens: 512, Temperature: f32(0.5)},
			convo.ModelRequest{Model: testModel, History: ask("hi").History, MaxTokens: i32(64), Temperature: f32(1)},
			&fakebedrock.InferenceConfig{MaxTokens: i32(64), Temperature: f32(1)}},
		{"one override", bedrock.Options{Temperature: f32(0.5)},
			convo.ModelRequest{Model: testModel, History: ask("hi").History, MaxTokens: i32(64)},
			&fakebedrock.InferenceConfig{MaxTokens: i32(64), Temperature: f32(0.5)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newClient(t, srv, tc.opts)
			if _, _, err := stream(t, c, tc.req); err != nil {
				t.Fatalf("Stream: %v", err)
			}
			reqs := srv.Requests()
			got := reqs[len(reqs)-1]
			if !reflect.DeepEqual(got.Body.InferenceConfig, tc.want) {
				t.Errorf("inferenceConfig = %s, want %+v", got.Raw, tc.want)
			}
			if got.Body.System != nil {
				t.Errorf("system = %+v, want none for an empty system prompt", got.Body.System)
			}
		})
	}
}
