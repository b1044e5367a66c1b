package convo

import (
	"context"
	"fmt"

	"github.com/chatgateway/gateway/protocol"
)

// toolSteps reads conversation id's log and returns, for each turn that
// called tools, the messages the model saw in it: per step, an assistant
// message with the step's text and tool uses and, when it called tools, a
// user message with their results, in the order of the uses. The last
// step's text ends it. A step's text is the deltas stored after the tool
// calls of the step before (the model is called again only once every
// result is stored), so the texts add up to the turn's stored reply. It
// fails with ErrHistoryTooLong once the texts, tool inputs and results
// it holds pass room bytes. Those of turn open do not count: the turn
// that reads its own steps back for its next one (see agentRun.history)
// is not ended by its own results; the next turn counts them.
func (s *Service) toolSteps(ctx context.Context, id, open string, room int) (map[string][]HistoryMessage, error) {
	// A call is known by its id and step: a model may give a later
	// step's call an earlier one's id ("functions.NAME:0" at each step).
	type stepCall struct {
		step int
		call string
	}
	type turnSteps struct {
		texts   []string    // by step - 1
		uses    [][]ToolUse // by step - 1
		results map[stepCall]ToolResult
		step    map[string]int // by call id: the step of its latest tool_call
	}
	turns := map[string]*turnSteps{}
	get := func(turn string) *turnSteps {
		t := turns[turn]
		if t == nil {
			t = &turnSteps{texts: []string{""}, uses: [][]ToolUse{nil}, results: map[stepCall]ToolResult{}, step: map[string]int{}}
			turns[turn] = t
		}
		return t
	}
	var after uint64
	for {
		frames, err := s.log.Events(ctx, id, after, 0, replayPage)
		if err != nil {
			return nil, fmt.Errorf("convo: read the tool steps of %s: %w", id, err)
		}
		if len(frames) == 0 {
			break
		}
		for _, f := range frames {
			ev, err := decodeEvent(f)
			if err != nil {
				return nil, fmt.Errorf("convo: read the tool steps of %s: %w", id, err)
			}
			after = ev.Seq
			if ev.Turn != open {
				if room -= len(ev.Text) + len(ev.Input) + len(ev.Output); room < 0 {
					return nil, ErrHistoryTooLong
				}
			}
			switch ev.Type {
			case protocol.EventDelta:
				t := get(ev.Turn)
				t.texts[len(t.texts)-1] += ev.Text
			case protocol.EventToolCall:
				t := get(ev.Turn)
				for len(t.uses) < ev.Step+1 {
					t.texts = append(t.texts, "")
					t.uses = append(t.uses, nil)
				}
				t.uses[ev.Step-1] = append(t.uses[ev.Step-1], ToolUse{ID: ev.Call, Name: ev.Name, Input: ev.Input})
				t.step[ev.Call] = ev.Step
			case protocol.EventToolResult:
				res := ToolResult{ID: ev.Call, Output: ev.Output}
				if ev.Status != protocol.ResultOK {
					res = ToolResult{ID: ev.Call, Error: errorText(outcomeOf(ev))}
				}
				// A call's result comes before the next step's calls.
				t := get(ev.Turn)
				t.results[stepCall{t.step[ev.Call], ev.Call}] = res
			}
		}
	}
	out := map[string][]HistoryMessage{}
	for turn, t := range turns {
		if len(t.uses) == 1 { // no tool calls: the stored reply says it all
			continue
		}
		var msgs []HistoryMessage
		for i, uses := range t.uses {
			msgs = append(msgs, HistoryMessage{Role: protocol.RoleAssistant, Text: t.texts[i], ToolUses: uses})
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
