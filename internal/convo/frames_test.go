package convo_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

// TestMessageOf reads the message of frames as the log stores them: the
// message of message and turn_end events, and nothing from others, even
// where they have a message key.
func TestMessageOf(t *testing.T) {
	ts := time.Date(2026, 12, 4, 16, 0, 0, 0, time.UTC)
	user := &protocol.Message{ID: "m1", Role: protocol.RoleUser, Text: `a "quoted" <question>`, Turn: "t1", Seq: 4, CreatedAt: ts}
	reply := &protocol.Message{ID: "m2", Role: protocol.RoleAssistant, Text: "an answer\n", Turn: "t1", Seq: 9, CreatedAt: ts}
	progress := "50% done"
	for _, tc := range []struct {
		name string
		ev   *protocol.Event
		want *protocol.Message
	}{
		{"message", &protocol.Event{Type: protocol.EventMessage, Message: user}, user},
		{"turn_end", &protocol.Event{Type: protocol.EventTurnEnd, Turn: "t1", StopReason: protocol.StopEndTurn,
			Usage: &protocol.Usage{InputTokens: 3}, Message: reply}, reply},
		{"turn_end without a message", &protocol.Event{Type: protocol.EventTurnEnd, Turn: "t1"}, nil},
		{"delta", &protocol.Event{Type: protocol.EventDelta, Turn: "t1", Text: `"message":{`}, nil},
		{"tool_progress", &protocol.Event{Type: protocol.EventToolProgress, Call: "c1", ProgressMessage: progress}, nil},
		// Its message key holds a string, and another one an object.
		{"tool_progress with a message key in its output", &protocol.Event{Type: protocol.EventToolProgress, Call: "c1",
			ProgressMessage: progress, Output: json.RawMessage(`{"message":{"role":"user"}}`)}, nil},
		{"action with a message key in its input", &protocol.Event{Type: protocol.EventAction, Turn: "t1", Name: "tool",
			Input: json.RawMessage(`{"message":{"role":"user"}}`)}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.ev.Conversation, tc.ev.Seq, tc.ev.TS = "c", 9, ts
			frame, err := tc.ev.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			got, err := convo.MessageOf(frame)
			if err != nil {
				t.Fatalf("%s: %v", frame, err)
			}
			if (got == nil) != (tc.want == nil) || got != nil && *got != *tc.want {
				t.Fatalf("%s: message %+v, want %+v", frame, got, tc.want)
			}
		})
	}
}

// FuzzMessageOf checks that MessageOf finds the message a stored event's
// frame carries at its top level exactly as decoding the whole frame
// does, for any event a Log stores (encoded as bbolt does, with
// MarshalJSON, and as jetlog does, with json.Marshal), with message keys
// in texts, in raw JSON values and as a tool_progress's string.
func FuzzMessageOf(f *testing.F) {
	types := []string{protocol.EventMessage, protocol.EventTurnEnd, protocol.EventDelta, protocol.EventThinking,
		protocol.EventTurnStart, protocol.EventToolCall, protocol.EventToolResult, protocol.EventToolProgress, protocol.EventAction}
	f.Add(uint8(0), true, "a \"quoted\" <question>\u2028", `{"message":{"role":"user"}}`)
	f.Add(uint8(1), false, `"message":{`, `null`)
	f.Add(uint8(2), false, `"message":{"id":"x"}`, ``)
	f.Add(uint8(7), false, "50% done", `{"message":{"text":"no"}}`)
	f.Add(uint8(1), true, "bad \xff utf-8", `[1,{"message":{}}]`)
	f.Fuzz(func(t *testing.T, kind uint8, withMessage bool, text, raw string) {
		ev := &protocol.Event{Type: types[int(kind)%len(types)], Conversation: "c", Seq: 9, TS: time.Unix(1e9, 0).UTC(),
			Turn: "t1", Text: text}
		if json.Valid([]byte(raw)) {
			ev.Input, ev.Output = json.RawMessage(raw), json.RawMessage(raw)
		}
		switch ev.Type {
		case protocol.EventMessage, protocol.EventTurnEnd:
			if withMessage {
				ev.Message = &protocol.Message{ID: "m", Seq: 9, Role: protocol.RoleUser, Text: text, Turn: "t1", CreatedAt: ev.TS}
			}
		case protocol.EventToolProgress:
			ev.ProgressMessage = text
		}
		convo.EachStoredFrame(t, ev, func(frame []byte) {
			var whole struct {
				Message json.RawMessage `json:"message"`
			}
			if err := json.Unmarshal(frame, &whole); err != nil {
				t.Fatalf("%s: %v", frame, err)
			}
			var want *protocol.Message
			if len(whole.Message) > 0 && whole.Message[0] == '{' {
				want = new(protocol.Message)
				if err := json.Unmarshal(whole.Message, want); err != nil {
					t.Fatalf("%s: %v", frame, err)
				}
			}
			got, err := convo.MessageOf(frame)
			if err != nil {
				t.Fatalf("MessageOf(%s): %v", frame, err)
			}
			if (got == nil) != (want == nil) || got != nil && *got != *want {
				t.Fatalf("MessageOf(%s) = %+v, want %+v", frame, got, want)
			}
		})
	})
}

// FuzzFrameType checks that FrameType reads a stored event's type as
// decoding the whole frame does, for frames encoded both ways the Logs
// encode them, types with escapes, invalid UTF-8 and U+2028 included.
func FuzzFrameType(f *testing.F) {
	f.Add(protocol.EventDelta, "hello")
	f.Add(`ty"pe\`, "<b>")
	f.Add("bad \xff utf-8\u2028", "")
	f.Add("", "x")
	f.Fuzz(func(t *testing.T, typ, text string) {
		ev := &protocol.Event{Type: typ, Conversation: "c", Seq: 9, TS: time.Unix(1e9, 0).UTC(), Turn: "t1", Text: text}
		convo.EachStoredFrame(t, ev, func(frame []byte) {
			var whole struct {
				Type string `json:"type"`
			}
			if err := json.Unmarshal(frame, &whole); err != nil {
				t.Fatalf("%s: %v", frame, err)
			}
			if got := convo.FrameType(frame); got != whole.Type {
				t.Fatalf("FrameType(%s) = %q, want %q", frame, got, whole.Type)
			}
		})
	})
}
