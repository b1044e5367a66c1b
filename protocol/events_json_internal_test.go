package protocol

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

// chunkFields are the fields appendChunk writes.
var chunkFields = map[string]bool{"Type": true, "Conversation": true, "Seq": true, "TS": true, "Turn": true, "Text": true}

// checkChunkEncoding fails unless MarshalJSON encodes e as encoding/json
// does.
func checkChunkEncoding(t *testing.T, e *Event) {
	t.Helper()
	got, err := e.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	want, err := json.Marshal((*plainEvent)(e))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("MarshalJSON:\n%s\nencoding/json:\n%s", got, want)
	}
}

// TestChunkEncoding checks the hand-written encoding of delta and thinking
// events against encoding/json: for awkward text and times, and with each
// other field of Event set in turn (MarshalJSON must then not take the
// short cut: a field added to Event that onlyChunkFields does not know
// fails here).
func TestChunkEncoding(t *testing.T) {
	ts := time.Date(2026, 12, 4, 13, 0, 0, 123456000, time.UTC)
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
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.e
			if tc.name == "year 10000" {
				// encoding/json refuses such a time: so must MarshalJSON.
				if _, err := e.MarshalJSON(); err == nil {
					t.Fatal("a year beyond 9999 encoded")
				}
				return
			}
			checkChunkEncoding(t, &e)
		})
	}
	typ := reflect.TypeOf(Event{})
	for i := range typ.NumField() {
		f := typ.Field(i)
		if chunkFields[f.Name] {
			continue
		}
		t.Run("with "+f.Name, func(t *testing.T) {
			e := Event{Type: EventDelta, Conversation: "c", Seq: 3, TS: ts, Turn: "t", Text: "x"}
			v := reflect.ValueOf(&e).Elem().Field(i)
			setNonZero(t, v)
			checkChunkEncoding(t, &e)
		})
	}
}

// setNonZero sets v to a value other than its zero value.
func setNonZero(t *testing.T, v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		v.SetString("s")
	case reflect.Int, reflect.Int64:
		v.SetInt(1)
	case reflect.Slice: // json.RawMessage
		v.SetBytes([]byte(`{"a":1}`))
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
	default:
		t.Fatalf("no non-zero value for a %s", v.Type())
	}
}

// FuzzChunkEncoding compares the hand-written encoding of delta events with
// encoding/json's for any strings, seq and time.
func FuzzChunkEncoding(f *testing.F) {
	f.Add("c_1", "t_1", "Hello <world> & \"you\"\n", uint64(12), int64(1796389200123456789), true)
	f.Add("c", "", "a\xffb\u2028", uint64(0), int64(0), false)
	f.Fuzz(func(t *testing.T, conv, turn, text string, seq uint64, ns int64, thinking bool) {
		e := &Event{Type: EventDelta, Conversation: conv, Seq: seq, TS: time.Unix(0, ns).UTC(), Turn: turn, Text: text}
		if thinking {
			e.Type = EventThinking
		}
		checkChunkEncoding(t, e)
	})
}
