package protocol

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// checkEncoding fails unless MarshalJSON encodes e as encoding/json does
// (both refusing it, or both writing the same bytes).
func checkEncoding(t *testing.T, e *Event) {
	t.Helper()
	got, err := e.MarshalJSON()
	want, wantErr := json.Marshal((*plainEvent)(e))
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("MarshalJSON: %v; encoding/json: %v", err, wantErr)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("MarshalJSON:\n%s\nencoding/json:\n%s", got, want)
	}
}

// plainTypes are the event types MarshalJSON encodes as encoding/json
// encodes Event's fields (tool_progress and tool_result rename two).
var plainTypes = []string{EventMessage, EventTurnStart, EventDelta, EventThinking, EventAction, EventTurnEnd, EventToolCall, EventToolApproval}

// TestEventEncoding checks the hand-written encoding of events against
// encoding/json: for awkward strings and times, for every event type
// with each field of Event, and of the structs it points to, set in
// turn (a field added to Event that appendJSON does not write, or that
// appendable does not leave to encoding/json, fails here), and with
// the fields a turn_end sets together.
func TestEventEncoding(t *testing.T) {
	ts := time.Date(2026, 12, 4, 13, 0, 0, 123456000, time.UTC)
	latency, approved := int64(1234), false
	for _, tc := range []struct {
		name string
		e    Event
	}{
		{"delta", Event{Type: EventDelta, Conversation: "c_1", Seq: 12, TS: ts, Turn: "t_1", Text: "Hello"}},
		{"thinking", Event{Type: EventThinking, Conversation: "c_1", Seq: 1 << 62, TS: ts, Turn: "t_1", Text: "hmm"}},
		{"no turn, no text", Event{Type: EventDelta, Conversation: "c", TS: ts}},
		{"zero time", Event{Type: EventDelta, Conversation: "c", Text: "x"}},
		{"whole seconds", Event{Type: EventDelta, Conversation: "c", TS: ts.Truncate(time.Second), Text: "x"}},
		{"escapes", Event{Type: EventDelta, Conversation: "c\"\\", TS: ts, Turn: "<t>", Text: "a\"b\\c\nd\re\tf\bg\fh\x00i\x1fj<k>l&m\u2028n\u2029o\x7fp"}},
		{"invalid UTF-8", Event{Type: EventDelta, Conversation: "c", TS: ts, Text: "a\xffb\xe2\x82c\xc0"}},
		{"multibyte", Event{Type: EventDelta, Conversation: "c", TS: ts, Text: "héllo, 世界 😀"}},
		{"offset time", Event{Type: EventDelta, Conversation: "c", TS: ts.In(time.FixedZone("x", 3600)), Text: "x"}},
		{"year 10000", Event{Type: EventDelta, Conversation: "c", TS: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), Text: "x"}},
		{"message", Event{Type: EventMessage, Conversation: "c", Seq: 3, TS: ts,
			Message: &Message{ID: "m_1", Seq: 3, Role: RoleUser, Text: "a <question>\n", Turn: "t_2", CreatedAt: ts}}},
		{"message of year 10000", Event{Type: EventMessage, Conversation: "c", Seq: 3, TS: ts,
			Message: &Message{ID: "m_1", Seq: 3, Role: RoleUser, CreatedAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}}},
		{"turn_start", Event{Type: EventTurnStart, Conversation: "c", Seq: 4, TS: ts, Turn: "t_2", Model: "m", Agent: "a"}},
		{"turn_end", Event{Type: EventTurnEnd, Conversation: "c", Seq: 9, TS: ts, Turn: "t_2", Steps: 3, StopReason: StopError,
			Usage: &Usage{InputTokens: 100, OutputTokens: 200}, LatencyMS: &latency,
			Error:   &Error{Code: CodeRateLimited, Message: "slow down", RetryAfterMS: 500},
			Message: &Message{ID: "m_2", Seq: 9, Role: RoleAssistant, Text: "the reply", Turn: "t_2", CreatedAt: ts}}},
		{"tool_approval", Event{Type: EventToolApproval, Conversation: "c", Seq: 5, TS: ts, Turn: "t", Call: "k", Approved: &approved, By: "u", Reason: "no"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.e
			checkEncoding(t, &e)
		})
	}
	typ := reflect.TypeOf(Event{})
	for _, et := range plainTypes {
		for i := range typ.NumField() {
			f := typ.Field(i)
			for _, set := range setters(t, f.Type) {
				t.Run(et+" with "+f.Name+set.name, func(t *testing.T) {
					e := Event{Type: et, Conversation: "c", Seq: 3, TS: ts}
					set.set(reflect.ValueOf(&e).Elem().Field(i))
					checkEncoding(t, &e)
				})
			}
		}
	}
}

// setter sets a value of some type to one that is not its zero value.
type setter struct {
	name string
	set  func(v reflect.Value)
}

// setters returns ways to set a value of type typ to something other than
// its zero value: for a pointer to a struct, one for each of the
// struct's fields set in turn.
func setters(t *testing.T, typ reflect.Type) []setter {
	switch typ.Kind() {
	case reflect.String:
		return []setter{{"", func(v reflect.Value) { v.SetString("s<\u2028") }}}
	case reflect.Int, reflect.Int64:
		return []setter{{"", func(v reflect.Value) { v.SetInt(-7) }}}
	case reflect.Uint64:
		return []setter{{"", func(v reflect.Value) { v.SetUint(7) }}}
	case reflect.Bool:
		return []setter{{"", func(v reflect.Value) { v.SetBool(true) }}}
	case reflect.Float32, reflect.Float64:
		return []setter{{"", func(v reflect.Value) { v.SetFloat(1e-7) }}}
	case reflect.Slice: // json.RawMessage
		return []setter{{"", func(v reflect.Value) { v.SetBytes([]byte(`{"a": "<b>"}`)) }}}
	case reflect.Struct:
		if typ == reflect.TypeOf(time.Time{}) {
			return []setter{{"", func(v reflect.Value) { v.Set(reflect.ValueOf(time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC))) }}}
		}
	case reflect.Pointer:
		out := []setter{{"", func(v reflect.Value) { v.Set(reflect.New(typ.Elem())) }}}
		if typ.Elem().Kind() != reflect.Struct {
			for _, s := range setters(t, typ.Elem()) {
				out = append(out, setter{"", func(v reflect.Value) { v.Set(reflect.New(typ.Elem())); s.set(v.Elem()) }})
			}
			return out
		}
		for i := range typ.Elem().NumField() {
			f := typ.Elem().Field(i)
			for _, s := range setters(t, f.Type) {
				out = append(out, setter{"." + f.Name + s.name, func(v reflect.Value) { v.Set(reflect.New(typ.Elem())); s.set(v.Elem().Field(i)) }})
			}
		}
		return out
	}
	t.Fatalf("no non-zero value for a %s", typ)
	return nil
}

// FuzzEventEncoding compares the hand-written encoding of events with
// encoding/json's for any strings, numbers and times, with or without a
// message, usage and error.
func FuzzEventEncoding(f *testing.F) {
	f.Add(uint8(2), "c_1", "t_1", "Hello <world> & \"you\"\n", uint64(12), int64(1796389200123456789), "", int64(0), false)
	f.Add(uint8(3), "c", "", "a\xffb\u2028", uint64(0), int64(0), "x", int64(-1), true)
	f.Add(uint8(0), "c_1", "t_1", "a question", uint64(3), int64(1796389200000000000), "m_1", int64(5), true)
	f.Add(uint8(5), "c_1", "t_1", "the reply", uint64(9), int64(-1<<62), "end_turn", int64(1<<40), true)
	f.Fuzz(func(t *testing.T, typ uint8, conv, turn, text string, seq uint64, ns int64, s string, n int64, more bool) {
		ts := time.Unix(0, ns).UTC()
		e := &Event{Type: plainTypes[int(typ)%len(plainTypes)], Conversation: conv, Seq: seq, TS: ts, Turn: turn, Text: text}
		if more {
			e.Message = &Message{ID: s, Seq: seq, Role: RoleUser, Text: text, Turn: turn, CreatedAt: ts.Add(time.Duration(n))}
			e.Model, e.StopReason, e.Steps = s, s, int(n)
			e.Usage = &Usage{InputTokens: n, OutputTokens: -n}
			e.LatencyMS = &n
			e.Error = &Error{Code: s, Message: text, RetryAfterMS: n}
		}
		checkEncoding(t, e)
	})
}

// TestEventSizeHint checks that the buffer MarshalJSON starts with holds
// the events a gateway stores most without growing.
func TestEventSizeHint(t *testing.T) {
	ts := time.Date(2026, 12, 4, 13, 0, 0, 123456789, time.UTC)
	seq := uint64(1<<64 - 1)
	latency := int64(-1 << 63)
	for _, e := range []*Event{
		{Type: EventThinking, Conversation: "c_0123456789abcdef", Seq: seq, TS: ts, Turn: "t_0123456789abcdef", Text: "x"},
		{Type: EventMessage, Conversation: "c_0123456789abcdef", Seq: seq, TS: ts,
			Message: &Message{ID: "m_0123456789abcdef", Seq: seq, Role: RoleAssistant, Text: "a question", Turn: "t_0123456789abcdef", CreatedAt: ts}},
		{Type: EventTurnStart, Conversation: "c_0123456789abcdef", Seq: seq, TS: ts, Turn: "t_0123456789abcdef", Model: "a model", Agent: "an agent"},
		{Type: EventTurnEnd, Conversation: "c_0123456789abcdef", Seq: seq, TS: ts, Turn: "t_0123456789abcdef", Steps: -1 << 62,
			StopReason: StopContentFiltered, Usage: &Usage{InputTokens: -1 << 63, OutputTokens: -1 << 63}, LatencyMS: &latency,
			Error:   &Error{Code: CodeRateLimited, Message: "slow down", RetryAfterMS: -1 << 63},
			Message: &Message{ID: "m_0123456789abcdef", Seq: seq, Role: RoleAssistant, Text: "the reply", Turn: "t_0123456789abcdef", CreatedAt: ts}},
	} {
		if n, hint := len(e.appendJSON(nil)), e.sizeHint(); n > hint {
			t.Errorf("%s: %d bytes, hint %d", e.Type, n, hint)
		}
	}
}

// FuzzTextLen checks TextLen against the encoder: the length of any
// string as appendString writes it, and no more for a string than for
// its two halves, cut anywhere (a reply's deltas bound its turn_end).
func FuzzTextLen(f *testing.F) {
	f.Add("Hello <world> & \"you\"\n\t\b\f\r\x01", 7)
	f.Add("a\xffb\u2028\u2029é€😀", 4)
	f.Add("", 0)
	f.Fuzz(func(t *testing.T, s string, cut int) {
		if got, want := TextLen(s), len(appendString(nil, s))-2; got != want {
			t.Fatalf("TextLen(%q) = %d, encoded %d", s, got, want)
		}
		if len(s) > 0 {
			i := min(max(cut, 0), len(s))
			if whole, parts := TextLen(s), TextLen(s[:i])+TextLen(s[i:]); whole > parts {
				t.Fatalf("TextLen(%q) = %d, its parts at %d take %d", s, whole, i, parts)
			}
		}
	})
}
