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
	}
	if e.appendable() {
		return e.appendJSON(make([]byte, 0, e.sizeHint())), nil
	}
	return json.Marshal((*plainEvent)(e))
}

// appendable reports whether appendJSON encodes e as encoding/json
// does: whether e sets none of the fields it leaves to encoding/json
// (raw JSON, which encoding/json compacts, and floats, which it formats
// its own way), and has times that it encodes as appendJSON does.
// TestEventEncoding sets every field of Event and of the structs it
// points to in turn, so that a field added and not written here fails
// it.
func (e *Event) appendable() bool {
	return len(e.Input) == 0 && len(e.Output) == 0 && e.Progress == nil && e.Total == nil &&
		plainTime(e.TS) && (e.Message == nil || plainTime(e.Message.CreatedAt))
}

// plainTime reports whether encoding/json encodes t as appendTime does:
// a UTC time of a four-digit year (encoding/json refuses other years).
func plainTime(t time.Time) bool {
	_, offset := t.Zone()
	return offset == 0 && t.Year() >= 0 && t.Year() <= 9999
}

// sizeHint is about as many bytes as appendJSON writes for e, or more,
// unless its strings need escapes: a buffer that had to grow would cost
// an allocation more, and copying.
func (e *Event) sizeHint() int {
	// The field names, quotes and punctuation, with room for the
	// numbers and times.
	n := 128 + len(e.Type) + len(e.Conversation) + len(e.Turn) + len(e.Text) + len(e.Model) + len(e.Agent)
	if m := e.Message; m != nil {
		n += 128 + len(m.ID) + len(m.Role) + len(m.Text) + len(m.Turn)
	}
	if e.StopReason != "" || e.Usage != nil || e.Error != nil || e.LatencyMS != nil {
		n += 224 + len(e.StopReason)
		if e.Error != nil {
			n += len(e.Error.Code) + len(e.Error.Message)
		}
	}
	return n + len(e.Name) + len(e.Call) + len(e.Status) + len(e.By) + len(e.Reason)
}

// appendJSON appends e's JSON as encoding/json writes it, for an event
// that is appendable, and not a tool_progress or tool_result: every
// event a gateway stores in a conversation's log but those, encoded in
// its commit loop, where the reflective encoder took about a tenth of
// the loop's CPU at 1,000 streams (docs/PERFORMANCE.md). The fields are
// in the order of Event's, those with omitempty only when set.
func (e *Event) appendJSON(b []byte) []byte {
	b = append(b, `{"type":`...)
	b = appendString(b, e.Type)
	b = append(b, `,"conversation":`...)
	b = appendString(b, e.Conversation)
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, e.Seq, 10)
	b = append(b, `,"ts":`...)
	b = appendTime(b, e.TS)
	if m := e.Message; m != nil {
		b = append(b, `,"message":{"id":`...)
		b = appendString(b, m.ID)
		b = append(b, `,"seq":`...)
		b = strconv.AppendUint(b, m.Seq, 10)
		b = append(b, `,"role":`...)
		b = appendString(b, m.Role)
		b = append(b, `,"text":`...)
		b = appendString(b, m.Text)
		b = appendOmitEmpty(b, `,"turn":`, m.Turn)
		b = append(b, `,"created_at":`...)
		b = appendTime(b, m.CreatedAt)
		b = append(b, '}')
	}
	b = appendOmitEmpty(b, `,"turn":`, e.Turn)
	b = appendOmitEmpty(b, `,"model":`, e.Model)
	b = appendOmitEmpty(b, `,"agent":`, e.Agent)
	b = appendOmitEmpty(b, `,"text":`, e.Text)
	b = appendOmitEmpty(b, `,"name":`, e.Name)
	b = appendOmitEmpty(b, `,"call":`, e.Call)
	b = appendIntOmitZero(b, `,"step":`, int64(e.Step))
	b = appendOmitEmpty(b, `,"status":`, e.Status)
	if e.Approved != nil {
		b = append(b, `,"approved":`...)
		b = strconv.AppendBool(b, *e.Approved)
	}
	b = appendOmitEmpty(b, `,"by":`, e.By)
	b = appendOmitEmpty(b, `,"reason":`, e.Reason)
	if e.DurationMS != nil {
		b = appendInt(b, `,"duration_ms":`, *e.DurationMS)
	}
	b = appendIntOmitZero(b, `,"steps":`, int64(e.Steps))
	b = appendOmitEmpty(b, `,"stop_reason":`, e.StopReason)
	if u := e.Usage; u != nil {
		b = appendInt(b, `,"usage":{"input_tokens":`, u.InputTokens)
		b = appendInt(b, `,"output_tokens":`, u.OutputTokens)
		b = append(b, '}')
	}
	if e.LatencyMS != nil {
		b = appendInt(b, `,"latency_ms":`, *e.LatencyMS)
	}
	if err := e.Error; err != nil {
		b = append(b, `,"error":{"code":`...)
		b = appendString(b, err.Code)
		b = append(b, `,"message":`...)
		b = appendString(b, err.Message)
		b = appendIntOmitZero(b, `,"retry_after_ms":`, err.RetryAfterMS)
		b = append(b, '}')
	}
	return append(b, '}')
}

// appendOmitEmpty appends key and s as a JSON string, unless s is empty.
func appendOmitEmpty(b []byte, key, s string) []byte {
	if s == "" {
		return b
	}
	return appendString(append(b, key...), s)
}

// appendInt appends key and n.
func appendInt(b []byte, key string, n int64) []byte {
	return strconv.AppendInt(append(b, key...), n, 10)
}

// appendIntOmitZero appends key and n, unless n is 0.
func appendIntOmitZero(b []byte, key string, n int64) []byte {
	if n == 0 {
		return b
	}
	return appendInt(b, key, n)
}

// appendTime appends t as encoding/json does, for a plainTime.
func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
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
			if plainASCII(c) {
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

// plainASCII reports whether appendString writes ASCII byte c as it is:
// the rest is escaped (quote, backslash, control characters, and '<',
// '>' and '&' as encoding/json escapes them).
func plainASCII(c byte) bool {
	return c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
}

// TextLen returns how many bytes s takes in an event's JSON as the
// gateway encodes it: escaped as appendString escapes it, without the
// quotes. The text of a string split in two takes at most the sum of
// its parts' (a character cut in two takes more), so the gateway adds
// up the parts of a reply to bound the turn_end that holds it whole.
func TextLen(s string) int {
	n := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case plainASCII(c):
				n++
			case c == '"', c == '\\', c == '\b', c == '\f', c == '\n', c == '\r', c == '\t':
				n += 2
			default:
				n += 6 // \u00XX
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || r == '\u2028' || r == '\u2029' {
			n += 6 // \ufffd, \u2028, \u2029
		} else {
			n += size
		}
		i += size
	}
	return n
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
