package convo

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/chatgateway/gateway/protocol"
)

// FuzzDecodeStepEvent checks that decodeStepEvent reads the fields
// toolSteps uses exactly as decodeEvent does, for any event a Log stores
// (encoded as bbolt does, with MarshalJSON, and as jetlog does, with
// json.Marshal): texts with escapes, invalid UTF-8 and U+2028, raw JSON
// values with spaces and HTML characters, and a tool_result's string
// error beside a turn_end's object.
func FuzzDecodeStepEvent(f *testing.F) {
	types := []string{protocol.EventDelta, protocol.EventToolCall, protocol.EventToolResult, protocol.EventTurnEnd,
		protocol.EventMessage, protocol.EventThinking, protocol.EventToolProgress, protocol.EventAction}
	f.Add(uint8(0), "t_1", "Hello, \"world\" <b>\u2028", "", "", "", "", "", 0)
	f.Add(uint8(1), "t_1", "", "functions.t:0", "t", `{ "q" : "a<b" }`, "", protocol.CallAwaitingApproval, 3)
	f.Add(uint8(2), "t_2", "", "c1", "t", "", `[1, 2,{"x":"\u00e9"}]`, protocol.ResultOK, 0)
	f.Add(uint8(2), "t_2", "", "c1", "t", "", "", protocol.ResultError, 0)
	f.Add(uint8(3), "t\xff", "bad \xff utf-8", "", "", "", "", "", 0)
	f.Add(uint8(7), "", "", "", "search", `"just text"`, `null`, "", 0)
	f.Fuzz(func(t *testing.T, kind uint8, turn, text, call, name, input, output, status string, step int) {
		ev := &protocol.Event{Type: types[int(kind)%len(types)], Conversation: "c", Seq: uint64(step) + 7,
			TS: time.Unix(1e9, 0).UTC(), Turn: turn, Text: text, Call: call, Name: name, Status: status, Step: step}
		if json.Valid([]byte(input)) {
			ev.Input = json.RawMessage(input)
		}
		if json.Valid([]byte(output)) {
			ev.Output = json.RawMessage(output)
		}
		switch ev.Type {
		case protocol.EventToolResult:
			ev.ToolError = text
		case protocol.EventTurnEnd:
			ev.Error = &protocol.Error{Code: "internal", Message: text}
			ev.Message = &protocol.Message{ID: "m", Role: protocol.RoleAssistant, Text: text, Turn: turn}
		case protocol.EventToolProgress:
			ev.ProgressMessage = text
		}
		EachStoredFrame(t, ev, func(frame []byte) {
			want, err := decodeEvent(frame)
			if err != nil {
				t.Fatalf("decodeEvent(%s): %v", frame, err)
			}
			got, err := decodeStepEvent(frame)
			if err != nil {
				t.Fatalf("decodeStepEvent(%s): %v", frame, err)
			}
			var seq uint64
			if err := json.Unmarshal([]byte(got.seq), &seq); err != nil || seq != want.Seq {
				t.Errorf("%s: seq %q, want %d", frame, got.seq, want.Seq)
			}
			wantError := ""
			if ev.Type == protocol.EventToolResult {
				wantError = want.ToolError
			}
			if got.typ != want.Type || got.turn != want.Turn || got.text != want.Text || got.name != want.Name ||
				got.call != want.Call || got.status != want.Status || got.step != want.Step || got.toolError != wantError ||
				string(rawJSON(got.input)) != string(want.Input) || (rawJSON(got.input) == nil) != (want.Input == nil) ||
				string(rawJSON(got.output)) != string(want.Output) || (rawJSON(got.output) == nil) != (want.Output == nil) {
				t.Errorf("decodeStepEvent(%s) = %+v, decodeEvent: %+v", frame, got, want)
			}
		})
	})
}

// TestDecodeStepEventRefuses checks that a frame decodeEvent refuses for
// a field toolSteps reads fails decodeStepEvent too.
func TestDecodeStepEventRefuses(t *testing.T) {
	for name, frame := range map[string]string{
		"empty":         ``,
		"not object":    `["delta"]`,
		"cut off":       `{"type":"delta","seq":3,"text":"abc`,
		"text a number": `{"type":"delta","seq":3,"text":5}`,
		"bad escape":    `{"type":"delta","seq":3,"text":"a\x"}`,
		"step a string": `{"type":"tool_call","seq":3,"step":"1"}`,
		"control char":  "{\"type\":\"delta\",\"seq\":3,\"text\":\"a\nb\"}",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := decodeEvent([]byte(frame)); err == nil {
				t.Fatalf("decodeEvent takes %q", frame)
			}
			if _, err := decodeStepEvent([]byte(frame)); err == nil || !strings.Contains(err.Error(), "corrupt event") {
				t.Errorf("decodeStepEvent(%q): %v, want a corrupt event", frame, err)
			}
		})
	}
}
