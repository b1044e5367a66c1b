package demo

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

var demoTools = []convo.ToolSpec{{Name: "clock"}, {Name: "calc"}}

func TestToolCommand(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		text     string
		want     []convo.ToolUse // IDs ignored
		wantText string
	}{
		{"one call", `/tool clock {"tz": "UTC"}`, []convo.ToolUse{{Name: "clock", Input: json.RawMessage(`{"tz": "UTC"}`)}}, "Calling clock.\n\n"},
		{"no input is {}", "/tool clock", []convo.ToolUse{{Name: "clock", Input: json.RawMessage(`{}`)}}, "Calling clock."},
		{"calls of one step", "/tool clock\n/tool calc {\"expr\":\"1+2\"}\n", []convo.ToolUse{
			{Name: "clock", Input: json.RawMessage(`{}`)}, {Name: "calc", Input: json.RawMessage(`{"expr":"1+2"}`)}}, "Calling clock and calc."},
		{"unknown tool", "/tool weather {}", nil, `There is no tool "weather".`},
		{"no name", "/tool", nil, "Name a tool"},
		{"input not an object", "/tool calc [1]", nil, "not a JSON object"},
		{"not a command", "what /tool clock", nil, "You said"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := New(Options{WordDelay: -1})
			chunks, res := collect(t, m, convo.ModelRequest{Tools: demoTools, History: history(tc.text)})
			if got := text(chunks, convo.ChunkText); !strings.Contains(got, tc.wantText) {
				t.Errorf("text %q does not contain %q", got, tc.wantText)
			}
			ids := map[string]bool{}
			for i := range res.ToolUses {
				id := res.ToolUses[i].ID
				if !protocol.ValidName(id) || ids[id] {
					t.Errorf("tool use id %q is invalid or repeated", id)
				}
				ids[id] = true
				res.ToolUses[i].ID = ""
			}
			if !reflect.DeepEqual(res.ToolUses, tc.want) {
				t.Errorf("tool uses %+v, want %+v", res.ToolUses, tc.want)
			}
			wantStop := protocol.StopEndTurn
			if len(tc.want) > 0 {
				wantStop = protocol.StopToolUse
			}
			if res.StopReason != wantStop {
				t.Errorf("stop reason %q, want %q", res.StopReason, wantStop)
			}
		})
	}
}

func TestToolResultsSummary(t *testing.T) {
	t.Parallel()
	m := New(Options{WordDelay: -1})
	h := append(history("/tool clock\n/tool calc {}"),
		convo.HistoryMessage{Role: protocol.RoleAssistant, Text: "Calling clock and calc.", ToolUses: []convo.ToolUse{
			{ID: "a", Name: "clock", Input: json.RawMessage(`{}`)}, {ID: "b", Name: "calc", Input: json.RawMessage(`{}`)}}},
		convo.HistoryMessage{Role: protocol.RoleUser, ToolResults: []convo.ToolResult{
			{ID: "a", Output: json.RawMessage("{\"time\": \"09:30\"}\n")}, {ID: "b", Error: "no expression"}}})
	chunks, res := collect(t, m, convo.ModelRequest{Tools: demoTools, History: h})
	got := text(chunks, convo.ChunkText)
	for _, want := range []string{`The tool clock returned {"time":"09:30"}.`, "The tool calc failed: no expression."} {
		if !strings.Contains(got, want) {
			t.Errorf("summary %q does not contain %q", got, want)
		}
	}
	if res.StopReason != protocol.StopEndTurn || len(res.ToolUses) != 0 {
		t.Errorf("result %+v, want end_turn without tool uses", res)
	}
}
