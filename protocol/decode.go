package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/chatgateway/gateway/internal/jsonobj"
)

// DecodeClientFrame turns one client text frame into a typed Request.
//
// On failure it returns the request id when it could be read, and an *Error
// with code "unknown_type" for a type it does not know, or "bad_request"
// with a message that names the field at fault. It never panics, whatever
// the input.
func DecodeClientFrame(data []byte) (Request, string, error) {
	if !utf8.Valid(data) {
		return nil, "", Errorf(CodeBadRequest, "frame is not valid UTF-8")
	}
	// Only JSON's own whitespace may precede the object: bytes.TrimSpace
	// would also accept Unicode spaces that json.Unmarshal rejects.
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, "", Errorf(CodeBadRequest, "frame must be one JSON object")
	}
	// Into nothing, only to check the syntax: that allocates nothing.
	if err := json.Unmarshal(trimmed, new(struct{})); err != nil {
		return nil, "", Errorf(CodeBadRequest, "invalid JSON: %s", jsonProblem(err))
	}
	// The fields by their exact names, not a struct's: encoding/json
	// matches struct fields case-insensitively, so {"TEXT":…} would count
	// as "text", while the contract says field names are snake_case and
	// unknown fields are ignored.
	d := fieldDecoder{fields: jsonobj.Fields(trimmed, frameFields)}
	id := d.str("id", false)
	if d.err == nil && len(id) > MaxRequestIDLen {
		d.fail("id", "longer than %d bytes", MaxRequestIDLen)
	}
	if d.err != nil {
		return nil, "", d.err
	}
	typ := d.str("type", true)
	if d.err != nil {
		return nil, id, d.err
	}
	req := d.request(typ, id)
	if d.err != nil {
		return nil, id, d.err
	}
	return req, id, nil
}

// request builds the Request of type typ from the frame's fields.
func (d *fieldDecoder) request(typ, id string) Request {
	switch typ {
	case TypeSend:
		r := &Send{ID: id}
		r.Conversation = d.conversation(false)
		r.Text = d.str("text", true)
		if d.err == nil && strings.TrimSpace(r.Text) == "" {
			// The model request drops white space, so such a message
			// would start a turn about nothing.
			d.fail("text", "must not be empty or only white space")
		}
		r.ClientMsgID = d.str("client_msg_id", false)
		if d.err == nil && len(r.ClientMsgID) > MaxRequestIDLen {
			d.fail("client_msg_id", "longer than %d bytes", MaxRequestIDLen)
		}
		return r
	case TypeSubscribe:
		r := &Subscribe{ID: id}
		r.Conversation = d.conversation(true)
		r.After = d.seq("after")
		r.CreatedAt = d.timestamp("created_at")
		return r
	case TypeUnsubscribe:
		return &Unsubscribe{ID: id, Conversation: d.conversation(true)}
	case TypeCancel:
		return &Cancel{ID: id, Conversation: d.conversation(true)}
	case TypeHistory:
		r := &History{ID: id}
		r.Conversation = d.conversation(true)
		r.Before = d.seq("before")
		r.Limit = d.limit(DefaultHistoryLimit, MaxHistoryLimit)
		return r
	case TypeList:
		r := &List{ID: id}
		r.Before = d.str("before", false)
		if d.err == nil && len(r.Before) > MaxCursorLen {
			d.fail("before", "longer than %d bytes", MaxCursorLen)
		}
		r.Limit = d.limit(DefaultListLimit, MaxListLimit)
		return r
	case TypeCreate:
		r := &Create{ID: id}
		r.Conversation = d.conversation(false)
		r.Title = d.str("title", false)
		r.System = d.str("system", false)
		r.Model = d.str("model", false)
		r.MaxTokens = d.maxTokens()
		r.Temperature = d.temperature()
		r.Agent = d.name("agent", false)
		// An agent brings its own model and system prompt.
		if r.Agent != "" && r.Model != "" {
			d.fail("model", "not allowed with agent (the agent sets the model)")
		}
		if r.Agent != "" && r.System != "" {
			d.fail("system", "not allowed with agent (the agent sets the system prompt)")
		}
		return r
	case TypeDelete:
		return &Delete{ID: id, Conversation: d.conversation(true)}
	case TypePing:
		return &Ping{ID: id}
	case TypeAgents:
		return &Agents{ID: id}
	case TypeApprove:
		r := &Approve{ID: id}
		r.Conversation = d.conversation(true)
		r.Call = d.callID()
		r.Approved = d.boolean("approved")
		r.Reason = d.str("reason", false)
		if d.err == nil && len(r.Reason) > MaxReasonLen {
			d.fail("reason", "longer than %d bytes", MaxReasonLen)
		}
		return r
	case TypeToolOutput:
		r := &ToolOutput{ID: id}
		r.Conversation = d.conversation(true)
		r.Call = d.callID()
		r.Output = d.json("output")
		r.Error = d.str("error", false)
		switch {
		case d.err != nil:
		case r.Output != nil && d.value("error") != nil:
			d.fail("error", "not allowed with output")
		case r.Output == nil && d.value("error") == nil:
			d.fail("output", "required (or error, when the tool failed)")
		case r.Output == nil && r.Error == "":
			d.fail("error", "must not be empty")
		}
		return r
	}
	d.err = Errorf(CodeUnknownType, "unknown frame type %q", truncate(typ, 64))
	return nil
}

// frameFields names every field DecodeClientFrame reads. Only these are
// kept from a frame: the others, which the contract says are ignored,
// cost nothing however many a frame holds.
var frameFields = map[string]struct{}{
	"id": {}, "type": {}, "conversation": {}, "text": {}, "client_msg_id": {},
	"after": {}, "created_at": {}, "before": {}, "limit": {}, "title": {},
	"system": {}, "model": {}, "max_tokens": {}, "temperature": {}, "agent": {},
	"call": {}, "approved": {}, "reason": {}, "output": {}, "error": {},
}

// fieldDecoder decodes a frame's fields one by one, so that an error can
// name the field at fault, and keeps the first error.
type fieldDecoder struct {
	fields map[string]json.RawMessage
	err    *Error
}

func (d *fieldDecoder) fail(field, format string, args ...any) {
	if d.err == nil {
		d.err = Errorf(CodeBadRequest, "%s: %s", field, fmt.Sprintf(format, args...))
	}
}

// value returns the raw value of field, or nil when the field is absent or
// null: null counts as absent.
func (d *fieldDecoder) value(field string) json.RawMessage {
	if _, ok := frameFields[field]; !ok {
		panic("protocol: field " + field + " is read but not in frameFields")
	}
	raw := d.fields[field]
	if string(raw) == "null" {
		return nil
	}
	return raw
}

func (d *fieldDecoder) str(field string, required bool) string {
	raw := d.value(field)
	if d.err != nil {
		return ""
	}
	if raw == nil {
		if required {
			d.fail(field, "required")
		}
		return ""
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		d.fail(field, "must be a string")
	}
	return s
}

// conversation reads a conversation id; "" counts as absent, so a required
// one must be a valid id.
func (d *fieldDecoder) conversation(required bool) string {
	id := d.str("conversation", required)
	switch {
	case d.err != nil:
	case id == "" && required:
		d.fail("conversation", "required")
	case id != "" && !ValidConversationID(id):
		d.fail("conversation", "must be 1 to %d letters, digits, '-', '_' or '.', and not '.' or '..'", MaxConversationIDLen)
	}
	return id
}

// name reads an agent name or a call id; "" counts as absent.
func (d *fieldDecoder) name(field string, required bool) string {
	s := d.str(field, required)
	switch {
	case d.err != nil:
	case s == "" && required:
		d.fail(field, "required")
	case s != "" && !ValidName(s):
		d.fail(field, "must be 1 to %d letters, digits, '_' or '-'", MaxNameLen)
	}
	return s
}

// callID reads a request's required call id.
func (d *fieldDecoder) callID() string {
	s := d.str("call", true)
	switch {
	case d.err != nil:
	case s == "":
		d.fail("call", "required")
	case !ValidCallID(s):
		d.fail("call", "must be 1 to %d letters, digits, '_', '-', '.' or ':'", MaxNameLen)
	}
	return s
}

// boolean reads a required true or false.
func (d *fieldDecoder) boolean(field string) bool {
	raw := d.value(field)
	if d.err != nil {
		return false
	}
	var b bool
	if raw == nil {
		d.fail(field, "required (true or false)")
	} else if err := json.Unmarshal(raw, &b); err != nil {
		d.fail(field, "must be true or false")
	}
	return b
}

// json reads any JSON value other than null, as EncodeRequest writes it
// back (compact, with <, > and & escaped), so that it round-trips.
func (d *fieldDecoder) json(field string) json.RawMessage {
	raw := d.value(field)
	if d.err != nil || raw == nil {
		return nil
	}
	// raw is one valid JSON value, so marshaling it only normalises it.
	norm, _ := json.Marshal(raw)
	return norm
}

func (d *fieldDecoder) seq(field string) uint64 {
	raw := d.value(field)
	if d.err != nil || raw == nil {
		return 0
	}
	var n uint64
	if err := json.Unmarshal(raw, &n); err != nil {
		d.fail(field, "must be a non-negative integer")
	}
	return n
}

// timestamp reads an optional RFC 3339 time, in UTC.
func (d *fieldDecoder) timestamp(field string) time.Time {
	s := d.str(field, false)
	if d.err != nil || s == "" {
		return time.Time{}
	}
	t, err := ParseTimestamp(s)
	if err != nil {
		d.fail(field, "%v", err)
	}
	return t
}

// ParseTimestamp parses an RFC 3339 time such as a created_at, with or
// without a fraction of a second, and returns it in UTC. It refuses a time
// whose UTC year is outside 0000 to 9999, which RFC 3339 cannot write.
func ParseTimestamp(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, errors.New("must be an RFC 3339 time, e.g. 2026-11-26T09:30:00.123456789Z")
	}
	if t = t.UTC(); t.Year() < 0 || t.Year() > 9999 {
		return time.Time{}, errors.New("must be a time from year 0000 to 9999 in UTC")
	}
	return t, nil
}

// limit reads a page limit: absent or 0 means def, and any integer above
// max, however large, means max.
func (d *fieldDecoder) limit(def, max int) int {
	raw := d.value("limit")
	if d.err != nil || raw == nil {
		return def
	}
	// raw is one valid JSON value, so a JSON integer is exactly what
	// ParseInt accepts; a string, a fraction or an exponent fail here.
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if errors.Is(err, strconv.ErrRange) && raw[0] != '-' {
		return max
	}
	if err != nil || n < 0 {
		d.fail("limit", "must be a non-negative integer (0 means %d, above %d means %d)", def, max, max)
		return 0
	}
	switch {
	case n == 0:
		return def
	case n > int64(max):
		return max
	}
	return int(n)
}

func (d *fieldDecoder) maxTokens() *int32 {
	raw := d.value("max_tokens")
	if d.err != nil || raw == nil {
		return nil
	}
	var n int32
	if err := json.Unmarshal(raw, &n); err != nil || n < 1 {
		d.fail("max_tokens", "must be an integer from 1 to %d", math.MaxInt32)
		return nil
	}
	return &n
}

func (d *fieldDecoder) temperature() *float32 {
	raw := d.value("temperature")
	if d.err != nil || raw == nil {
		return nil
	}
	var f float32
	if err := json.Unmarshal(raw, &f); err != nil || f < 0 || f > 1 {
		d.fail("temperature", "must be a number from 0 to 1")
		return nil
	}
	return &f
}

// ValidConversationID reports whether id may name a conversation: 1 to
// MaxConversationIDLen bytes of ASCII letters, digits, '-', '_' and '.',
// other than "." and "..", which cannot be a path segment of the HTTP API.
func ValidConversationID(id string) bool {
	if id == "" || len(id) > MaxConversationIDLen || id == "." || id == ".." {
		return false
	}
	return idChars(id, ".")
}

// idChars reports whether s holds only ASCII letters, digits, '-' and '_',
// and the bytes of extra.
func idChars(s, extra string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '_' || strings.IndexByte(extra, c) >= 0
		if !ok {
			return false
		}
	}
	return true
}

// ValidName reports whether s may name an agent: 1 to MaxNameLen ASCII
// letters, digits, '_' and '-', the names Bedrock accepts for tools, and
// valid as a path segment of the HTTP API.
func ValidName(s string) bool {
	return s != "" && len(s) <= MaxNameLen && idChars(s, "")
}

// ValidCallID reports whether s may be a call's id: 1 to MaxNameLen ASCII
// letters, digits, '_', '-', '.' and ':', the tool-use ids Bedrock gives
// (some models number their calls "functions.NAME:N"), other than "." and
// "..", which cannot be a path segment of the HTTP API.
func ValidCallID(s string) bool {
	if s == "" || len(s) > MaxNameLen || s == "." || s == ".." {
		return false
	}
	return idChars(s, ".:")
}

// jsonProblem describes a JSON syntax error without echoing the input.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return fmt.Sprintf("%s (at byte %d)", syn.Error(), syn.Offset)
	}
	return "not a JSON object"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
