package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// rawFrame holds the known fields of a client frame undecoded, so that each
// can be checked on its own and an error can name the field at fault.
type rawFrame struct {
	Type         json.RawMessage `json:"type"`
	ID           json.RawMessage `json:"id"`
	Conversation json.RawMessage `json:"conversation"`
	Text         json.RawMessage `json:"text"`
	ClientMsgID  json.RawMessage `json:"client_msg_id"`
	After        json.RawMessage `json:"after"`
	Before       json.RawMessage `json:"before"`
	Limit        json.RawMessage `json:"limit"`
	Title        json.RawMessage `json:"title"`
	System       json.RawMessage `json:"system"`
	Model        json.RawMessage `json:"model"`
	MaxTokens    json.RawMessage `json:"max_tokens"`
	Temperature  json.RawMessage `json:"temperature"`
}

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
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, "", Errorf(CodeBadRequest, "frame must be one JSON object")
	}
	var raw rawFrame
	if err := json.Unmarshal(trimmed, &raw); err != nil {
		return nil, "", Errorf(CodeBadRequest, "invalid JSON: %s", jsonProblem(err))
	}
	d := fieldDecoder{}
	id := d.str("id", raw.ID, false)
	if d.err == nil && len(id) > MaxRequestIDLen {
		d.fail("id", "longer than %d bytes", MaxRequestIDLen)
	}
	if d.err != nil {
		return nil, "", d.err
	}
	typ := d.str("type", raw.Type, true)
	if d.err != nil {
		return nil, id, d.err
	}
	req := d.request(typ, id, &raw)
	if d.err != nil {
		return nil, id, d.err
	}
	return req, id, nil
}

// request builds the Request of type typ from raw's fields.
func (d *fieldDecoder) request(typ, id string, raw *rawFrame) Request {
	switch typ {
	case TypeSend:
		r := &Send{ID: id}
		r.Conversation = d.conversation(raw.Conversation, false)
		r.Text = d.str("text", raw.Text, true)
		if d.err == nil && r.Text == "" {
			d.fail("text", "must not be empty")
		}
		r.ClientMsgID = d.str("client_msg_id", raw.ClientMsgID, false)
		if d.err == nil && len(r.ClientMsgID) > MaxRequestIDLen {
			d.fail("client_msg_id", "longer than %d bytes", MaxRequestIDLen)
		}
		return r
	case TypeSubscribe:
		r := &Subscribe{ID: id}
		r.Conversation = d.conversation(raw.Conversation, true)
		r.After = d.seq("after", raw.After)
		return r
	case TypeUnsubscribe:
		return &Unsubscribe{ID: id, Conversation: d.conversation(raw.Conversation, true)}
	case TypeCancel:
		return &Cancel{ID: id, Conversation: d.conversation(raw.Conversation, true)}
	case TypeHistory:
		r := &History{ID: id}
		r.Conversation = d.conversation(raw.Conversation, true)
		r.Before = d.seq("before", raw.Before)
		r.Limit = d.limit(raw.Limit)
		return r
	case TypeList:
		return &List{ID: id}
	case TypeCreate:
		r := &Create{ID: id}
		r.Conversation = d.conversation(raw.Conversation, false)
		r.Title = d.str("title", raw.Title, false)
		r.System = d.str("system", raw.System, false)
		r.Model = d.str("model", raw.Model, false)
		r.MaxTokens = d.maxTokens(raw.MaxTokens)
		r.Temperature = d.temperature(raw.Temperature)
		return r
	case TypeDelete:
		return &Delete{ID: id, Conversation: d.conversation(raw.Conversation, true)}
	case TypePing:
		return &Ping{ID: id}
	}
	d.err = Errorf(CodeUnknownType, "unknown frame type %q", truncate(typ, 64))
	return nil
}

// fieldDecoder decodes fields one by one and keeps the first error.
type fieldDecoder struct {
	err *Error
}

func (d *fieldDecoder) fail(field, format string, args ...any) {
	if d.err == nil {
		d.err = Errorf(CodeBadRequest, "%s: %s", field, fmt.Sprintf(format, args...))
	}
}

// present reports whether a field was given a value other than null.
func present(raw json.RawMessage) bool {
	return len(raw) > 0 && string(raw) != "null"
}

func (d *fieldDecoder) str(field string, raw json.RawMessage, required bool) string {
	if d.err != nil {
		return ""
	}
	if !present(raw) {
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

func (d *fieldDecoder) conversation(raw json.RawMessage, required bool) string {
	id := d.str("conversation", raw, required)
	if d.err == nil && id != "" && !ValidConversationID(id) {
		d.fail("conversation", "must be 1 to %d letters, digits, '-', '_' or '.'", MaxConversationIDLen)
	}
	return id
}

func (d *fieldDecoder) seq(field string, raw json.RawMessage) uint64 {
	if d.err != nil || !present(raw) {
		return 0
	}
	var n uint64
	if err := json.Unmarshal(raw, &n); err != nil {
		d.fail(field, "must be a non-negative integer")
	}
	return n
}

func (d *fieldDecoder) limit(raw json.RawMessage) int {
	if d.err != nil || !present(raw) {
		return DefaultHistoryLimit
	}
	var n int64
	if err := json.Unmarshal(raw, &n); err != nil || n < 0 {
		d.fail("limit", "must be an integer from 1 to %d", MaxHistoryLimit)
		return 0
	}
	switch {
	case n == 0:
		return DefaultHistoryLimit
	case n > MaxHistoryLimit:
		return MaxHistoryLimit
	}
	return int(n)
}

func (d *fieldDecoder) maxTokens(raw json.RawMessage) *int32 {
	if d.err != nil || !present(raw) {
		return nil
	}
	var n int32
	if err := json.Unmarshal(raw, &n); err != nil || n < 1 {
		d.fail("max_tokens", "must be a positive integer")
		return nil
	}
	return &n
}

func (d *fieldDecoder) temperature(raw json.RawMessage) *float32 {
	if d.err != nil || !present(raw) {
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
// MaxConversationIDLen bytes of ASCII letters, digits, '-', '_' and '.'.
func ValidConversationID(id string) bool {
	if id == "" || len(id) > MaxConversationIDLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '-' || c == '_' || c == '.'
		if !ok {
			return false
		}
	}
	return true
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
