package bedrock_test

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/chatgateway/gateway/internal/bedrock"
	"github.com/chatgateway/gateway/internal/bedrock/fakebedrock"
	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

var lookupSpec = convo.ToolSpec{Name: "lookup_order", Description: "Look up an order",
	InputSchema: json.RawMessage(`{"type":"object","properties":{"id":{"type":"string"},"max":{"type":"integer","maximum":12345678901234567890}},"required":["id"]}`)}

func asked(text string, uses ...convo.ToolUse) convo.HistoryMessage {
	return convo.HistoryMessage{Role: protocol.RoleAssistant, Text: text, ToolUses: uses}
}

func answered(results ...convo.ToolResult) convo.HistoryMessage {
	return convo.HistoryMessage{Role: protocol.RoleUser, ToolResults: results}
}

// compact returns raw in a canonical form for comparisons: no spaces,
// object keys sorted, numbers as written.
func compact(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("not JSON: %s", raw)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// lastBody streams req against srv and returns the body Bedrock got; the
// fake refuses what the service would, so success means a valid request.
func lastBody(t *testing.T, srv *fakebedrock.Server, c *bedrock.Client, req convo.ModelRequest) fakebedrock.Body {
	t.Helper()
	if _, _, err := stream(t, c, req); err != nil {
		t.Fatalf("Stream: %v", err)
	}
	reqs := srv.Requests()
	return reqs[len(reqs)-1].Body
}

func TestToolConfig(t *testing.T) {
	srv := startFake(t, fakebedrock.Always(fakebedrock.Reply{Chunks: []string{"ok"}}))
	c := newClient(t, srv, bedrock.Options{})

	req := ask("where is my order?")
	req.Tools = []convo.ToolSpec{lookupSpec, {Name: "now", Description: "The time"}}
	body := lastBody(t, srv, c, req)
	if body.ToolConfig == nil || len(body.ToolConfig.Tools) != 2 {
		t.Fatalf("toolConfig = %+v, want two tools", body.ToolConfig)
	}
	got := body.ToolConfig.Tools[0].ToolSpec
	if got.Name != lookupSpec.Name || got.Description != lookupSpec.Description {
		t.Errorf("tool 0 = %+v", got)
	}
	// The schema goes out as the same JSON object, numbers exact. (This
	// fails when the schema is passed to the SDK as a json.RawMessage,
	// which it sends as an array of bytes.)
	if g, w := compact(t, got.InputSchema.JSON), compact(t, lookupSpec.InputSchema); g != w {
		t.Errorf("schema = %s, want %s", g, w)
	}
	if g := compact(t, body.ToolConfig.Tools[1].ToolSpec.InputSchema.JSON); g != `{"type":"object"}` {
		t.Errorf("a tool without a schema gets %s, want an open object schema", g)
	}

	if body := lastBody(t, srv, c, ask("hi")); body.ToolConfig != nil {
		t.Errorf("toolConfig = %+v without tools, want none", body.ToolConfig)
	}
}

// TestToolExchangeReplayed sends a history holding an agent's tool
// exchange, as later steps and turns do, and checks the blocks Bedrock
// gets.
func TestToolExchangeReplayed(t *testing.T) {
	srv := startFake(t, fakebedrock.Always(fakebedrock.Reply{Chunks: []string{"ok"}}))
	c := newClient(t, srv, bedrock.Options{})

	use1 := convo.ToolUse{ID: "t1", Name: "lookup_order", Input: json.RawMessage(`{"id":"1234","n":12345678901234567890}`)}
	use2 := convo.ToolUse{ID: "t2", Name: "now", Input: json.RawMessage(`{}`)}
	use3 := convo.ToolUse{ID: "t3", Name: "now", Input: json.RawMessage(`"{\"broken"`)}
	use4 := convo.ToolUse{ID: "t4", Name: "lookup_order", Input: json.RawMessage(`{"id":"1","":2}`)}
	ok := json.RawMessage(`{"status":"shipped","weight":0.25}`)
	for _, tc := range []struct {
		name    string
		tools   []convo.ToolSpec
		history []convo.HistoryMessage
		want    []fakebedrock.Message
	}{
		{
			name:  "one step, results in order of the uses",
			tools: []convo.ToolSpec{lookupSpec},
			history: []convo.HistoryMessage{user("where is 1234?"), asked("Let me look.", use1, use2),
				answered(convo.ToolResult{ID: "t2", Output: json.RawMessage(`"09:30"`)}, convo.ToolResult{ID: "t1", Output: ok})},
			want: []fakebedrock.Message{msg("user", "where is 1234?"),
				{Role: "assistant", Content: []fakebedrock.ContentBlock{{Text: "Let me look."}, useOf(use1), useOf(use2)}},
				{Role: "user", Content: []fakebedrock.ContentBlock{jsonResult("t1", ok), textResult("t2", "09:30", "")}}},
		},
		{
			name: "a later turn, with the tool gone from the agent",
			history: []convo.HistoryMessage{user("q"), asked("", use1),
				answered(convo.ToolResult{ID: "t1", Error: "denied by the user"}), assistant("Denied."), user("ok")},
			want: []fakebedrock.Message{msg("user", "q"),
				{Role: "assistant", Content: []fakebedrock.ContentBlock{useOf(use1)}},
				{Role: "user", Content: []fakebedrock.ContentBlock{textResult("t1", "denied by the user", "error")}},
				msg("assistant", "Denied."), msg("user", "ok")},
		},
		{
			name:  "a message queued during the turn follows the results",
			tools: []convo.ToolSpec{lookupSpec},
			history: []convo.HistoryMessage{user("q"), asked("", use1), answered(convo.ToolResult{ID: "t1", Output: ok}),
				user("and my other order?")},
			want: []fakebedrock.Message{msg("user", "q"),
				{Role: "assistant", Content: []fakebedrock.ContentBlock{useOf(use1)}},
				{Role: "user", Content: []fakebedrock.ContentBlock{jsonResult("t1", ok), {Text: "and my other order?"}}}},
		},
		{
			name:  "outputs that are not objects, a missing result, broken input",
			tools: []convo.ToolSpec{lookupSpec},
			history: []convo.HistoryMessage{user("q"), asked("", use1, use2, use3),
				answered(convo.ToolResult{ID: "t1", Output: json.RawMessage(`""`)}, convo.ToolResult{ID: "t3", Output: json.RawMessage(`[1, 2]`)})},
			want: []fakebedrock.Message{msg("user", "q"),
				{Role: "assistant", Content: []fakebedrock.ContentBlock{useOf(use1), useOf(use2),
					{ToolUse: &fakebedrock.ToolUseBlock{ToolUseID: "t3", Name: "now", Input: json.RawMessage(`{}`)}}}},
				{Role: "user", Content: []fakebedrock.ContentBlock{textResult("t1", "(empty output)", ""),
					textResult("t2", "no result was recorded for this call", "error"), textResult("t3", "[1, 2]", "")}}},
		},
		{
			// A blank text block is refused: sent as it was, it failed
			// this request and every later one of the conversation.
			name:  "a blank error",
			tools: []convo.ToolSpec{lookupSpec},
			history: []convo.HistoryMessage{user("q"), asked("", use1),
				answered(convo.ToolResult{ID: "t1", Error: " \n"})},
			want: []fakebedrock.Message{msg("user", "q"),
				{Role: "assistant", Content: []fakebedrock.ContentBlock{useOf(use1)}},
				{Role: "user", Content: []fakebedrock.ContentBlock{textResult("t1", "(the tool failed without a message)", "error")}}},
		},
		{
			// The SDK refuses to encode an empty key: sent as they are,
			// they failed this request and every later one of the
			// conversation.
			name:  "an input and an output with an empty key",
			tools: []convo.ToolSpec{lookupSpec},
			history: []convo.HistoryMessage{user("q"), asked("", use4),
				answered(convo.ToolResult{ID: "t4", Output: json.RawMessage(`{"":"x","ok":{"":1}}`)})},
			want: []fakebedrock.Message{msg("user", "q"),
				{Role: "assistant", Content: []fakebedrock.ContentBlock{
					{ToolUse: &fakebedrock.ToolUseBlock{ToolUseID: "t4", Name: "lookup_order", Input: json.RawMessage(`{}`)}}}},
				{Role: "user", Content: []fakebedrock.ContentBlock{textResult("t4", `{"":"x","ok":{"":1}}`, "")}}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := lastBody(t, srv, c, convo.ModelRequest{Model: testModel, History: tc.history, Tools: tc.tools})
			if len(body.Messages) != len(tc.want) {
				t.Fatalf("got %d messages, want %d: %s", len(body.Messages), len(tc.want), srv.Requests()[srv.Calls()-1].Raw)
			}
			for i := range tc.want {
				normalise(t, &body.Messages[i])
				normalise(t, &tc.want[i])
				if !reflect.DeepEqual(body.Messages[i], tc.want[i]) {
					t.Errorf("message %d:\n got %+v\nwant %+v", i, show(body.Messages[i]), show(tc.want[i]))
				}
			}
			if body.ToolConfig == nil {
				t.Error("no toolConfig with tool blocks in the history")
			}
		})
	}
}

// TestToolStepRoundTrip makes the tool uses of one reply the history of
// the next call, as the agent loop does: a tool without arguments streams
// no input, and is replayed as {}.
func TestToolStepRoundTrip(t *testing.T) {
	srv := startFake(t, func(call int, _ fakebedrock.Request) fakebedrock.Reply {
		if call == 1 {
			return fakebedrock.Reply{Chunks: []string{"Checking."}, StopReason: "tool_use", ToolUses: []fakebedrock.ToolUse{
				{ID: "tooluse_a", Name: "now"},
				{ID: "tooluse_b", Name: "lookup_order", Input: []string{`{"id":`, `"1234"}`}}}}
		}
		return fakebedrock.Reply{Chunks: []string{"Done."}}
	})
	c := newClient(t, srv, bedrock.Options{})
	req := ask("go")
	req.Tools = []convo.ToolSpec{lookupSpec, {Name: "now"}}
	chunks, res, err := stream(t, c, req)
	if err != nil {
		t.Fatalf("step 1: %v", err)
	}
	req.History = append(req.History, asked(text(chunks), res.ToolUses...),
		answered(convo.ToolResult{ID: "tooluse_a", Output: json.RawMessage(`{"time":"09:30"}`)},
			convo.ToolResult{ID: "tooluse_b", Error: "order service down"}))
	if _, _, err := stream(t, c, req); err != nil {
		t.Fatalf("step 2: %v", err)
	}
	body := srv.Requests()[1].Body
	if got := compact(t, body.Messages[1].Content[1].ToolUse.Input); got != `{}` {
		t.Errorf("input of a tool without arguments replayed as %s, want {}", got)
	}
}

func useOf(u convo.ToolUse) fakebedrock.ContentBlock {
	return fakebedrock.ContentBlock{ToolUse: &fakebedrock.ToolUseBlock{ToolUseID: u.ID, Name: u.Name, Input: u.Input}}
}

func jsonResult(id string, out json.RawMessage) fakebedrock.ContentBlock {
	return fakebedrock.ContentBlock{ToolResult: &fakebedrock.ToolResultBlock{ToolUseID: id,
		Content: []fakebedrock.ToolResultContent{{JSON: out}}}}
}

func textResult(id, text, status string) fakebedrock.ContentBlock {
	return fakebedrock.ContentBlock{ToolResult: &fakebedrock.ToolResultBlock{ToolUseID: id, Status: status,
		Content: []fakebedrock.ToolResultContent{{Text: text}}}}
}

// normalise compacts the raw JSON inside m's blocks, so that equal values
// compare equal.
func normalise(t *testing.T, m *fakebedrock.Message) {
	t.Helper()
	for i := range m.Content {
		if u := m.Content[i].ToolUse; u != nil {
			u.Input = json.RawMessage(compact(t, u.Input))
		}
		if r := m.Content[i].ToolResult; r != nil {
			for j := range r.Content {
				if r.Content[j].JSON != nil {
					r.Content[j].JSON = json.RawMessage(compact(t, r.Content[j].JSON))
				}
			}
		}
	}
}

// show renders a message for failure output.
func show(m fakebedrock.Message) string {
	b, _ := json.Marshal(m)
	return string(b)
}

// TestToolResultStatusOnlyWhereTaken sends a failed call's result to
// models of several families: the service documents the result's status
// for Claude 3 and later and Nova only, and refuses it from any other
// model (the fake does too), so the others get the error as text alone.
func TestToolResultStatusOnlyWhereTaken(t *testing.T) {
	srv := startFake(t, fakebedrock.Always(fakebedrock.Reply{Chunks: []string{"ok"}}))
	c := newClient(t, srv, bedrock.Options{})
	use := convo.ToolUse{ID: "t1", Name: "lookup_order", Input: json.RawMessage(`{}`)}
	history := []convo.HistoryMessage{user("q"), asked("", use), answered(convo.ToolResult{ID: "t1", Error: "order service down"})}
	for model, status := range map[string]string{
		"anthropic.claude-3-5-haiku-20241022-v1:0":                                           "error",
		"us.anthropic.claude-sonnet-4-20250514-v1:0":                                         "error",
		"arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-3-haiku-20240307-v1:0": "error",
		"amazon.nova-pro-v1:0":                                                               "error",
		"eu.amazon.nova-lite-v1:0":                                                           "error",
		"mistral.mistral-large-2407-v1:0":                                                    "",
		"us.meta.llama3-1-70b-instruct-v1:0":                                                 "",
		"cohere.command-r-plus-v1:0":                                                         "",
		"arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6":  "",
	} {
		t.Run(model, func(t *testing.T) {
			body := lastBody(t, srv, c, convo.ModelRequest{Model: model, History: history, Tools: []convo.ToolSpec{lookupSpec}})
			got := body.Messages[2].Content[0]
			want := textResult("t1", "order service down", status)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("result = %+v, want %+v", show(fakebedrock.Message{Content: []fakebedrock.ContentBlock{got}}), show(fakebedrock.Message{Content: []fakebedrock.ContentBlock{want}}))
			}
		})
	}
}

// TestToolUseNameOutsidePattern: a tool use whose name the service would
// refuse (a model may call a tool it was not given, by any name) is
// replayed, and declared, under a name made to fit the pattern, so that
// the turn's next step and the conversation's later turns are not
// refused.
func TestToolUseNameOutsidePattern(t *testing.T) {
	srv := startFake(t, fakebedrock.Always(fakebedrock.Reply{Chunks: []string{"ok"}}))
	c := newClient(t, srv, bedrock.Options{})
	for _, name := range []string{"orders.lookup", "", "x" + strings.Repeat("é", 40)} {
		use := convo.ToolUse{ID: "t1", Name: name, Input: json.RawMessage(`{}`)}
		req := convo.ModelRequest{Model: testModel, Tools: []convo.ToolSpec{lookupSpec}, History: []convo.HistoryMessage{
			user("where is my order?"), asked("", use), answered(convo.ToolResult{ID: "t1", Error: "no such tool"}), user("and?")}}
		body := lastBody(t, srv, c, req)
		got := body.Messages[1].Content[0].ToolUse
		if got == nil || len(body.ToolConfig.Tools) != 2 || body.ToolConfig.Tools[1].ToolSpec.Name != got.Name {
			t.Errorf("%q: got use %+v and tools %+v; want the use's name declared", name, got, body.ToolConfig.Tools)
		}
	}
}
