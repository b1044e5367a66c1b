package convo

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/chatgateway/gateway/protocol"
)

// messageKey is how the frame of an event that carries a message shows
// it: a message object at the top level. The key cannot occur in a
// string (its quotes would be escaped), only as a key, perhaps of a
// nested object: MessageOf then finds no message.
var messageKey = []byte(`"message":{`)

// typeStart starts every frame protocol.Event encodes: its type comes
// first.
var typeStart = []byte(`{"type":"`)

// Frames of the events that are most of a log, and carry no message,
// start with these (protocol.Event encodes its type first): reads that
// look for something else skip them without looking further.
var (
	deltaFrame    = []byte(`{"type":"` + protocol.EventDelta + `"`)
	thinkingFrame = []byte(`{"type":"` + protocol.EventThinking + `"`)
)

// Frames of the events whose message key, if any, holds a message
// (protocol.Event.Message) start with these.
var (
	messageFrame = []byte(`{"type":"` + protocol.EventMessage + `",`)
	turnEndFrame = []byte(`{"type":"` + protocol.EventTurnEnd + `",`)
)

// FrameType returns the type of a stored event's frame (as
// Committed.Frame). protocol.Event encodes the type first, escaping all
// that needs it (quotes, backslashes, control characters, invalid
// UTF-8): a type without a backslash is the frame's start up to the next
// quote, read without decoding the rest. Any other frame is decoded (""
// if it has no type).
func FrameType(frame []byte) string {
	if rest, ok := bytes.CutPrefix(frame, typeStart); ok {
		if i := bytes.IndexByte(rest, '"'); i >= 0 && bytes.IndexByte(rest[:i], '\\') < 0 {
			return string(rest[:i])
		}
	}
	var ev struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(frame, &ev)
	return ev.Type
}

// StreamFrame reports whether frame, a stored event's, is a delta's or a
// thinking event's: one that changes nothing in a conversation's
// metadata but its last seq and time, and carries no message.
func StreamFrame(frame []byte) bool {
	return bytes.HasPrefix(frame, deltaFrame) || bytes.HasPrefix(frame, thinkingFrame)
}

// MessageOf returns the message that frame, a stored event's (as
// Committed.Frame), carries at its top level, or nil: a Log's Messages
// keeps these. It decodes only frames that may carry one, so that a read
// of a log, most of it deltas, decodes little.
func MessageOf(frame []byte) (*protocol.Message, error) {
	if StreamFrame(frame) || !bytes.Contains(frame, messageKey) {
		return nil, nil
	}
	if bytes.HasPrefix(frame, messageFrame) || bytes.HasPrefix(frame, turnEndFrame) {
		// One pass over the frame: its message is a message.
		var ev struct {
			Message *protocol.Message `json:"message"`
		}
		if err := json.Unmarshal(frame, &ev); err != nil {
			return nil, fmt.Errorf("corrupt event: %w", err)
		}
		return ev.Message, nil
	}
	// Another event's message key may hold something else (a
	// tool_progress's is a string).
	var ev struct {
		Message json.RawMessage `json:"message"`
	}
	if err := json.Unmarshal(frame, &ev); err != nil {
		return nil, fmt.Errorf("corrupt event: %w", err)
	}
	if len(ev.Message) == 0 || ev.Message[0] != '{' {
		return nil, nil
	}
	var msg protocol.Message
	if err := json.Unmarshal(ev.Message, &msg); err != nil {
		return nil, fmt.Errorf("corrupt message: %w", err)
	}
	return &msg, nil
}
