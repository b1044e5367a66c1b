package protocol

import (
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// plainEvent is Event without its JSON methods.
type plainEvent Event

// MarshalJSON encodes e with the fields its Type uses. A tool_progress's
// "message" and a tool_result's "error" are strings (ProgressMessage and
// ToolError), where other events carry a message object and an error
// object under those names. It has a pointer receiver so that encoding the
// most frequent events copies nothing; encode a *Event, or an Event that
// is addressable (a variable, a slice element, a struct field).
func (e *Event) MarshalJSON() ([]byte, error) {
	switch e.Type {
	case EventToolProgress:
		return json.Marshal(struct {
			plainEvent
			Message string `json:"message,omitempty"`
		}{plainEvent(*e), e.ProgressMessage})
	case EventToolResult:
		return json.Marshal(struct {
			plainEvent
			Error string `json:"error,omitempty"`
		}{plainEvent(*e), e.ToolError})
	case EventDelta, EventThinking:
		if e.onlyChunkFields() {
			return e.appendChunk(make([]byte, 0, 112+len(e.Conversation)+len(e.Turn)+len(e.Text))), nil
		}
	}
	return json.Marshal((*plainEvent)(e))
}

// onlyChunkFields reports whether e sets no field but those a delta or
// thinking event has, which appendChunk writes (TestChunkEncoding sets
// every other field in turn, so that a field added to Event and not here
// fails it), and has a time that encoding/json encodes as appendChunk
// does.
func (e *Event) onlyChunkFields() bool {
	_, offset := e.TS.Zone()
	return e.Message == nil && e.Model == "" && e.Agent == "" && e.Name == "" && len(e.Input) == 0 && len(e.Output) == 0 &&
		e.Call == "" && e.Step == 0 && e.Status == "" && e.Approved == nil && e.By == "" && e.Reason == "" &&
		e.Progress == nil && e.Total == nil && e.DurationMS == nil && e.Steps == 0 &&
		e.StopReason == "" && e.Usage == nil && e.LatencyMS == nil && e.Error == nil &&
		offset == 0 && e.TS.Year() >= 0 && e.TS.Year() <= 9999
}

// appendChunk appends e's JSON as encoding/json writes it, for an event
// with only the fields of a delta or thinking (see onlyChunkFields): the
// bulk of what a gateway stores, encoded in its commit loop, where the
// reflective encoder took about a tenth of the loop's CPU at 1,000
// streams (docs/PERFORMANCE.md).
func (e *Event) appendChunk(b []byte) []byte {
	b = append(b, `{"type":`...)
	b = appendString(b, e.Type)
	b = append(b, `,"conversation":`...)
	b = appendString(b, e.Conversation)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, e.Seq, 10)
	b = append(b, `,"ts":"`...)
	b = e.TS.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	if e.Turn != "" {
		b = append(b, `,"turn":`...)
		b = appendString(b, e.Turn)
	}
	if e.Text != "" {
		b = append(b, `,"text":`...)
		b = appendString(b, e.Text)
	}
	return append(b, '}')
}

// appendString appends s as a JSON string the way encoding/json does by
// default: HTML characters, control characters, U+2028 and U+2029
// escaped, invalid UTF-8 replaced by U+FFFD.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// UnmarshalJSON decodes an event that MarshalJSON encoded, reading
// "message" and "error" as strings or objects by the event's type.
func (e *Event) UnmarshalJSON(data []byte) error {
	w := struct {
		*plainEvent
		Message json.RawMessage `json:"message"`
		Error   json.RawMessage `json:"error"`
	}{plainEvent: (*plainEvent)(e)}
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	if present(w.Message) {
		if e.Type == EventToolProgress {
			if err := json.Unmarshal(w.Message, &e.ProgressMessage); err != nil {
				return err
			}
		} else if err := json.Unmarshal(w.Message, &e.Message); err != nil {
			return err
		}
	}
	if present(w.Error) {
		return unmarshalError(w.Error, &e.Error, &e.ToolError)
	}
	return nil
}

// unmarshalError decodes an "error" field: a string (a tool_result's) into
// text, an object (a turn_end's or an error reply's) into obj.
func unmarshalError(raw json.RawMessage, obj **Error, text *string) error {
	if raw[0] == '"' {
		return json.Unmarshal(raw, text)
	}
	return json.Unmarshal(raw, obj)
}

// present reports whether a raw field was set to something other than null.
func present(raw json.RawMessage) bool {
	return len(raw) > 0 && string(raw) != "null"
}
