package protocol

import "encoding/json"

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
	return json.Marshal((*plainEvent)(e))
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
