package convo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/chatgateway/gateway/internal/jsonobj"
	"github.com/chatgateway/gateway/protocol"
)

// toolSteps reads conversation id's log and returns, for each turn that
// called tools, the messages the model saw in it: per step, an assistant
// message with the step's text and tool uses and, when it called tools, a
// user message with their results, in the order of the uses. The last
// step's text ends it. A step's text is the deltas stored after the tool
// calls of the step before (the model is called again only once every
// result is stored), so the texts add up to the turn's stored reply. It
// fails with ErrHistoryTooLong once the tool inputs and results it holds
// pass room bytes (see stepEvent.sentBytes): the texts are not counted
// again, as the stored reply they make up counts among the messages
// (see readHistory). Those of turn open do not count: the turn that
// reads its own steps back for its next one (see agentRun.history) is
// not ended by its own results; the next turn counts them.
func (s *Service) toolSteps(ctx context.Context, id, open string, room int) (map[string][]HistoryMessage, error) {
	// A call is known by its id and step: a model may give a later
	// step's call an earlier one's id ("functions.NAME:0" at each step).
	type stepCall struct {
		step int
		call string
	}
	type turnSteps struct {
		texts   []*strings.Builder // by step - 1
		uses    [][]ToolUse        // by step - 1
		results map[stepCall]ToolResult
		step    map[string]int // by call id: the step of its latest tool_call
	}
	turns := map[string]*turnSteps{}
	get := func(turn string) *turnSteps {
		t := turns[turn]
		if t == nil {
			t = &turnSteps{texts: []*strings.Builder{{}}, uses: [][]ToolUse{nil}, results: map[stepCall]ToolResult{}, step: map[string]int{}}
			turns[strings.Clone(turn)] = t
		}
		return t
	}
	fail := func(err error) (map[string][]HistoryMessage, error) {
		return nil, fmt.Errorf("convo: read the tool steps of %s: %w", id, err)
	}
	var after uint64
	for {
		frames, err := s.log.Events(ctx, id, after, 0, replayPage)
		if err != nil {
			return fail(err)
		}
		if len(frames) == 0 {
			break
		}
		var ev stepEvent
		for _, f := range frames {
			if ev, err = decodeStepEvent(f); err != nil {
				return fail(err)
			}
			if ev.turn != open {
				if room -= ev.sentBytes(); room < 0 {
					return nil, ErrHistoryTooLong
				}
			}
			switch ev.typ {
			case protocol.EventDelta:
				t := get(ev.turn)
				t.texts[len(t.texts)-1].WriteString(ev.text)
			case protocol.EventToolCall:
				t := get(ev.turn)
				for len(t.uses) < ev.step+1 {
					t.texts = append(t.texts, &strings.Builder{})
					t.uses = append(t.uses, nil)
				}
				call := strings.Clone(ev.call)
				t.uses[ev.step-1] = append(t.uses[ev.step-1], ToolUse{ID: call, Name: strings.Clone(ev.name), Input: rawJSON(ev.input)})
				t.step[call] = ev.step
			case protocol.EventToolResult:
				res := ToolResult{ID: strings.Clone(ev.call), Output: rawJSON(ev.output)}
				if ev.status != protocol.ResultOK {
					res = ToolResult{ID: res.ID, Error: errorText(ToolOutcome{Status: ev.status, Error: strings.Clone(ev.toolError)})}
				}
				// A call's result comes before the next step's calls.
				t := get(ev.turn)
				t.results[stepCall{t.step[ev.call], res.ID}] = res
			}
		}
		// Frames hold their own seq: the last one's is where the next
		// page starts.
		if err := json.Unmarshal([]byte(ev.seq), &after); err != nil {
			return fail(fmt.Errorf("corrupt event: seq: %w", err))
		}
	}
	out := map[string][]HistoryMessage{}
	for turn, t := range turns {
		if len(t.uses) == 1 { // no tool calls: the stored reply says it all
			continue
		}
		var msgs []HistoryMessage
		for i, uses := range t.uses {
			msgs = append(msgs, HistoryMessage{Role: protocol.RoleAssistant, Text: t.texts[i].String(), ToolUses: uses})
			if len(uses) == 0 {
				continue
			}
			results := make([]ToolResult, len(uses))
			for j, u := range uses {
				r, ok := t.results[stepCall{i + 1, u.ID}]
				if !ok {
					r = ToolResult{ID: u.ID, Error: "the call has no result"}
				}
				results[j] = r
			}
			msgs = append(msgs, HistoryMessage{Role: protocol.RoleUser, ToolResults: results})
		}
		out[turn] = msgs
	}
	return out, nil
}

// stepEvent is what toolSteps reads of a stored event: the fields that
// make up a turn's steps, and those that count toward the history's
// bytes. input and output are raw JSON, seq is its raw number. The
// strings are parts of one copy of the frame: clone those kept.
type stepEvent struct {
	typ, turn, text, name, call, status, toolError string
	input, output, seq                             string
	step                                           int
}

// sentBytes is what ev counts against Config.MaxHistoryBytes beside the
// conversation's messages: what the model is sent of it that no message
// holds. That is a tool_call's input and a tool_result's output or
// error, sent in the steps of a turn that called tools. A delta's text
// is not: the turn's stored reply is the text of its deltas, sent whole
// or as its steps' texts, and counted as a message. Nor are the events
// the model is not sent (thinking, actions, approvals, progress).
func (ev *stepEvent) sentBytes() int {
	switch ev.typ {
	case protocol.EventToolCall:
		return len(ev.input)
	case protocol.EventToolResult:
		return len(ev.output) + len(ev.toolError)
	}
	return 0
}

// decodeStepEvent reads a stored event's frame as decodeEvent would, but
// only the fields of a stepEvent, with no copy of the text that needs no
// unescaping: the events of a long conversation, most of them deltas,
// cost a walk over each frame. Its fields are those of decodeEvent for
// the frames Logs store (encoded by protocol.Event's MarshalJSON, whose
// names are exact); a frame that is not an object, or one of whose
// fields is not of its type, fails it.
func decodeStepEvent(frame []byte) (stepEvent, error) {
	var ev stepEvent
	if len(frame) < 2 || frame[0] != '{' || frame[len(frame)-1] != '}' {
		return ev, errors.New("corrupt event: not a JSON object")
	}
	var err error
	str := func(field, raw string) string {
		s, serr := jsonobj.String(raw)
		if serr != nil && err == nil {
			err = fmt.Errorf("corrupt event: %s: %w", field, serr)
		}
		return s
	}
	jsonobj.Each(frame, func(name, value string) {
		switch name {
		case "type":
			ev.typ = str(name, value)
		case "seq":
			ev.seq = value
		case "turn":
			ev.turn = str(name, value)
		case "text":
			ev.text = str(name, value)
		case "name":
			ev.name = str(name, value)
		case "call":
			ev.call = str(name, value)
		case "status":
			ev.status = str(name, value)
		case "input":
			ev.input = value
		case "output":
			ev.output = value
		case "step":
			if serr := json.Unmarshal([]byte(value), &ev.step); serr != nil && err == nil {
				err = fmt.Errorf("corrupt event: step: %w", serr)
			}
		case "error":
			// A tool_result's error is a string; a turn_end's, an
			// object, which toolSteps needs not.
			if strings.HasPrefix(value, `"`) {
				ev.toolError = str(name, value)
			}
		}
	})
	return ev, err
}

// rawJSON is a stepEvent's raw value as decodeEvent's json.RawMessage:
// nil when the event has none.
func rawJSON(value string) json.RawMessage {
	if value == "" {
		return nil
	}
	return json.RawMessage(value)
}
