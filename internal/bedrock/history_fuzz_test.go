package bedrock_test

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/chatgateway/gateway/internal/bedrock"
	"github.com/chatgateway/gateway/internal/bedrock/fakebedrock"
	"github.com/chatgateway/gateway/internal/convo"
)

// FuzzToolHistory sends histories of a tool exchange made of any texts,
// tool input and output or error, as the gateway stores them (text is
// UTF-8; an output is JSON, else the call failed with an error that is
// not empty), to the fake, which refuses what the service would. Every
// one must be accepted: a history the service refuses fails its turn and
// every later turn of the conversation, which replays it.
func FuzzToolHistory(f *testing.F) {
	for _, seed := range []struct {
		ask, said string
		input     []byte
		output    []byte
		err, next string
	}{
		{"where is 1234?", "Let me look.", []byte(`{"id":"1234"}`), []byte(`{"status":"shipped"}`), "", "thanks"},
		{"q", "", []byte(`{"id":`), []byte(`"09:30"`), "", ""},
		{" ", "\n", []byte(`{"":1}`), []byte(`{"":{"a":[1e400]}}`), "", " "},
		{"q", "a", []byte(`[1]`), nil, " \n", "b"},
		{"q", "a", nil, []byte(`""`), "", "b"},
		{"q", "a", []byte(`{}`), []byte(`{} {}`), "boom", "b"},
	} {
		f.Add(seed.ask, seed.said, seed.input, seed.output, seed.err, seed.next)
	}
	srv := startFake(f, fakebedrock.Always(fakebedrock.Reply{Chunks: []string{"ok"}}))
	// Not the test's log: the fuzzer refuses f.Log from its inputs.
	c := newClient(f, srv, bedrock.Options{Logger: slog.New(slog.DiscardHandler)})
	f.Fuzz(func(t *testing.T, ask, said string, input, output []byte, errText, next string) {
		result := convo.ToolResult{ID: "t1", Output: output}
		if !json.Valid(output) {
			result = convo.ToolResult{ID: "t1", Error: strings.ToValidUTF8(errText, "?")}
			if result.Error == "" {
				result.Error = "failed"
			}
		}
		history := []convo.HistoryMessage{user(strings.ToValidUTF8(ask, "?")),
			asked(strings.ToValidUTF8(said, "?"), convo.ToolUse{ID: "t1", Name: lookupSpec.Name, Input: input}),
			answered(result), user(strings.ToValidUTF8(next, "?"))}
		req := convo.ModelRequest{Model: testModel, History: history, Tools: []convo.ToolSpec{lookupSpec}}
		if _, _, err := stream(t, c, req); err != nil {
			t.Fatalf("refused: %v", err)
		}
	})
}
