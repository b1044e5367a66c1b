package loadtest

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/chatgateway/gateway/internal/jsonobj"
	"github.com/chatgateway/gateway/protocol"
)

// frame holds the fields of a server frame that the load generator reads.
// Decoding only these, instead of a whole protocol.ServerFrame with
// encoding/json, keeps the in-process clients from taking the CPU whose
// use by the gateway they measure (see decodeFrame).
type frame struct {
	typ          string
	conversation string
	text         string
	stopReason   string
	// code and message are an error reply's (message is also a
	// tool_progress's, which the load generator does not use).
	code, message string
	// err is a turn_end's error, when it has one.
	err *protocol.Error
}

// errFrameSyntax is what decodeFrame returns for a frame that is not a
// JSON object.
var errFrameSyntax = errors.New("loadtest: malformed frame")

// decodeFrame decodes the fields of f from data, a frame as the gateway
// writes it: a JSON object. It walks the top-level keys once, copies the
// few string values it keeps and skips every other value without decoding
// or fully validating it. Keys match exactly (encoding/json would also
// match them case-insensitively, which the gateway never needs). f holds
// no reference to data afterwards.
func decodeFrame(data []byte, f *frame) error {
	*f = frame{}
	s := frameScanner{data: data}
	if !s.consume('{') {
		return errFrameSyntax
	}
	if s.consume('}') {
		return s.end()
	}
	for {
		key, ok := s.stringValue()
		if !ok || !s.consume(':') {
			return errFrameSyntax
		}
		s.space()
		start := s.i
		if !s.skipValue() {
			return errFrameSyntax
		}
		if err := f.set(key, data[start:s.i]); err != nil {
			return err
		}
		if s.consume('}') {
			return s.end()
		}
		if !s.consume(',') {
			return errFrameSyntax
		}
	}
}

// set stores the raw JSON value v of the top-level key, if f keeps it.
// Like encoding/json, it leaves a field as it is for null.
func (f *frame) set(key, v []byte) error {
	if string(v) == "null" {
		return nil
	}
	var dst *string
	switch string(key) {
	case "type":
		dst = &f.typ
	case "conversation":
		dst = &f.conversation
	case "text":
		dst = &f.text
	case "stop_reason":
		dst = &f.stopReason
	case "code":
		dst = &f.code
	case "message":
		// An error reply's message is a string; an event's is an object
		// the load generator does not read.
		if v[0] != '"' {
			return nil
		}
		dst = &f.message
	case "error":
		if v[0] == '"' {
			return nil // a tool_result's error, which the load generator does not read
		}
		f.err = new(protocol.Error)
		if err := json.Unmarshal(v, f.err); err != nil {
			return fmt.Errorf("loadtest: decode %q: %w", key, err)
		}
		return nil
	default:
		return nil
	}
	s, err := unquote(v)
	if err != nil {
		return fmt.Errorf("loadtest: decode %q: %w", key, err)
	}
	*dst = s
	return nil
}

// errNotString is what decodeFrame returns for a kept field whose value
// is not a string.
var errNotString = errors.New("loadtest: not a string")

// unquote returns the JSON string v, as jsonobj.String decodes it
// (without encoding/json for the strings that need no unescaping, such
// as every stamp).
func unquote(v []byte) (string, error) {
	if v[0] != '"' {
		return "", errNotString
	}
	return jsonobj.String(string(v))
}

// frameScanner walks a JSON text from data[i].
type frameScanner struct {
	data []byte
	i    int
}

func (s *frameScanner) space() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// consume skips white space, then b if it comes next, and reports whether
// it did.
func (s *frameScanner) consume(b byte) bool {
	s.space()
	if s.i < len(s.data) && s.data[s.i] == b {
		s.i++
		return true
	}
	return false
}

// end reports whether only white space follows.
func (s *frameScanner) end() error {
	s.space()
	if s.i != len(s.data) {
		return errFrameSyntax
	}
	return nil
}

// stringValue skips white space and a string, and returns its raw inner
// bytes (escapes left as they are).
func (s *frameScanner) stringValue() ([]byte, bool) {
	s.space()
	start := s.i
	if !s.skipString() {
		return nil, false
	}
	return s.data[start+1 : s.i-1], true
}

// skipString skips the string that starts at data[i].
func (s *frameScanner) skipString() bool {
	if s.i >= len(s.data) || s.data[s.i] != '"' {
		return false
	}
	for s.i++; s.i < len(s.data); s.i++ {
		switch s.data[s.i] {
		case '\\':
			s.i++
		case '"':
			s.i++
			return true
		}
	}
	return false
}

// skipValue skips the value that starts at data[i]: a string, an object
// or array (with the strings in it), or a number or literal.
func (s *frameScanner) skipValue() bool {
	if s.i >= len(s.data) {
		return false
	}
	switch s.data[s.i] {
	case '"':
		return s.skipString()
	case '{', '[':
		depth := 0
		for s.i < len(s.data) {
			switch s.data[s.i] {
			case '"':
				if !s.skipString() {
					return false
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
			s.i++
			if depth == 0 {
				return true
			}
		}
		return false
	}
	start := s.i
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return s.i > start
		}
		s.i++
	}
	return s.i > start
}
