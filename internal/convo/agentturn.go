package convo

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/chatgateway/gateway/protocol"
)

// DefaultMaxSteps bounds the model calls of an agent's turn whose agent
// sets no max_steps.
const DefaultMaxSteps = 10

// errMaxSteps is the error result of the tool uses of a turn's last
// allowed step.
const errMaxSteps = "max_steps reached"

// agentTurn runs the turn of m's open turn, whose conversation has an
// agent, with the agent's current definition; req is the turn's request
// without the agent's part, slot its hold on a model call.
func (s *Service) agentTurn(ctx context.Context, m *Meta, req ModelRequest, slot *callSlot) (*protocol.Event, string) {
	var ag *Agent
	if s.cfg.Agents != nil {
		ag, _ = s.cfg.Agents.Agent(m.Agent, m.Owner, m.ID)
	}
	if ag == nil {
		return &protocol.Event{StopReason: protocol.StopError,
			Error: protocol.Errorf(protocol.CodeBadRequest, "agent %q is no longer defined", m.Agent)}, ""
	}
	req.System, req.Tools = ag.System, ag.specs()
	if req.MaxTokens == nil {
		req.MaxTokens = ag.MaxTokens
	}
	if req.Temperature == nil {
		req.Temperature = ag.Temperature
	}
	r := &agentRun{s: s, id: m.ID, turn: m.OpenTurn.Turn, user: m.Owner, ag: ag, slot: slot}
	return r.steps(ctx, req)
}

// agentModel checks that user (the caller of ctx) may create a
// conversation with agent, and returns its model: an unknown agent is a
// bad_request that names it, one the caller may not use is not_found.
func (s *Service) agentModel(ctx context.Context, user, agent string) (string, error) {
	var ag *Agent
	if s.cfg.Agents != nil {
		ag, _ = s.cfg.Agents.Agent(agent, user, "")
	}
	if ag == nil {
		return "", protocol.Errorf(protocol.CodeBadRequest, "agent: unknown agent %q", agent)
	}
	if !s.cfg.Agents.Allowed(ctx, agent) {
		return "", protocol.Errorf(protocol.CodeNotFound, "agent %q not found", agent)
	}
	return ag.Model, nil
}

// usable returns conversation id's metadata if it belongs to user and the
// caller of ctx may still use its agent: a token whose claims no longer
// match the agent's allow list makes it not_found, as at create. An agent
// that a reload removed is not_found too, except for an answer (answer
// true: an approve or tool_output): the turn that waits for it keeps the
// definition it started with, and would otherwise wait in vain.
func (s *Service) usable(ctx context.Context, user, id string, answer bool) (*Meta, error) {
	m, err := s.owned(ctx, user, id)
	if err != nil || m.Agent == "" || s.cfg.Agents == nil || s.cfg.Agents.Allowed(ctx, m.Agent) {
		return m, err
	}
	if _, defined := s.cfg.Agents.Agent(m.Agent, user, id); answer && !defined {
		return m, nil
	}
	return nil, protocol.Errorf(protocol.CodeNotFound, "agent %q not found", m.Agent)
}

// steps runs an agent's turn: it calls the model, runs the tool calls it
// asks for, and calls it again with their results, until the model
// answers without tools or the agent's MaxSteps model calls were made. It
// returns the turn_end to store (nil when the conversation is gone) and
// the text of all the turn's deltas.
func (r *agentRun) steps(ctx context.Context, req ModelRequest) (*protocol.Event, string) {
	maxSteps := r.ag.MaxSteps
	if maxSteps <= 0 {
		maxSteps = DefaultMaxSteps
	}
	var text strings.Builder
	var usage protocol.Usage
	var latency *int64
	step := 1
	var stored <-chan struct{} // the previous step's results are stored
	room := MaxReplyBytes      // for the text and reasoning of the turn's steps together
	end := func(e *protocol.Event) (*protocol.Event, string) {
		if e == nil {
			return nil, ""
		}
		if e.Usage != nil {
			usage.InputTokens += e.Usage.InputTokens
			usage.OutputTokens += e.Usage.OutputTokens
		}
		e.Usage, e.LatencyMS, e.Steps = &usage, latency, step
		r.s.cfg.Metrics.TurnSteps.Observe(float64(step))
		return e, text.String()
	}
	for ; ; step++ {
		res, stepText, uses := r.s.stream(ctx, r.id, r.turn, req, stored, &room, r.slot)
		if res == nil {
			return nil, ""
		}
		text.WriteString(stepText)
		if step == 1 {
			latency = res.LatencyMS
		}
		if res.StopReason != protocol.StopToolUse || len(uses) == 0 {
			return end(res)
		}
		uses = distinct(uses)
		usage.InputTokens += res.Usage.InputTokens
		usage.OutputTokens += res.Usage.OutputTokens
		switch {
		case ctx.Err() != nil: // cancelled as the step ended: nothing runs
			return end(r.s.stopEvent(context.Cause(ctx)))
		case step >= maxSteps:
			if err := r.refuse(step, uses); err != nil {
				return end(r.storeFailed(err))
			}
			return end(&protocol.Event{StopReason: protocol.StopMaxSteps})
		}
		results, stop, done := r.runCalls(ctx, step, uses)
		if results == nil {
			return end(stop)
		}
		stored = done
		req.History = append(req.History,
			HistoryMessage{Role: protocol.RoleAssistant, Text: stepText, ToolUses: uses},
			HistoryMessage{Role: protocol.RoleUser, ToolResults: results})
	}
}

// distinct drops the tool uses that repeat the id of an earlier one of
// the step: a call is known by its id (its answers, its result, the
// replay to the model), so of a model's two uses with one id, the first
// is run and answered, once.
func distinct(uses []ToolUse) []ToolUse {
	seen := make(map[string]bool, len(uses))
	return slices.DeleteFunc(slices.Clone(uses), func(u ToolUse) bool {
		dup := seen[u.ID]
		seen[u.ID] = true
		return dup
	})
}

// refuse stores the tool uses of the last allowed step as calls that were
// not run: each tool_call with its tool_result, an error.
func (r *agentRun) refuse(step int, uses []ToolUse) error {
	var evs []*protocol.Event
	zero := int64(0)
	for _, u := range uses {
		evs = append(evs,
			&protocol.Event{Type: protocol.EventToolCall, Turn: r.turn, Call: u.ID, Name: u.Name,
				Input: toolInput(u.Input), Step: step, Status: protocol.CallRunning},
			&protocol.Event{Type: protocol.EventToolResult, Turn: r.turn, Call: u.ID, Name: u.Name,
				Status: protocol.ResultError, ToolError: errMaxSteps, DurationMS: &zero})
	}
	return r.append(evs...)
}

// stopEvent is the turn_end of a turn whose context ended with cause; nil
// when the conversation was deleted.
func (s *Service) stopEvent(cause error) *protocol.Event {
	switch {
	case errors.Is(cause, errDeleted), errors.Is(cause, errLeaseLost):
		// Deleted, or another gateway ends the turn.
		return nil
	case errors.Is(cause, errCancelled):
		return &protocol.Event{StopReason: protocol.StopCancelled}
	case errors.Is(cause, errStorage):
		return &protocol.Event{StopReason: protocol.StopError, Error: protocol.AsError(ErrUnavailable)}
	}
	return &protocol.Event{StopReason: protocol.StopInterrupted}
}
