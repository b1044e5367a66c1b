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

// errNoStep fails the history of an agent's step when the log does not
// end it with the step before: the conversation was deleted (and maybe
// made again under its id) as the step began.
var errNoStep = errors.New("convo: the log does not hold the turn's last step")

// errMaxSteps is the error result of the tool uses of a turn's last
// allowed step.
const errMaxSteps = "max_steps reached"

// agentTurn runs the turn of m's open turn, whose conversation (served by
// h) has an agent, with the agent's current definition; req is the
// turn's request without the agent's part and without history, slot its
// hold on a model call.
func (s *Service) agentTurn(ctx context.Context, h *hub, m *Meta, req ModelRequest, slot *callSlot) (*protocol.Event, string) {
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
	r := &agentRun{s: s, h: h, m: m, id: m.ID, turn: m.OpenTurn.Turn, user: m.Owner, ag: ag, slot: slot}
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
// the text of all the turn's deltas. Each step gets the turn's history
// (see history) once it holds its model call and, when the call returns,
// hands it to the hub for the next step (see keepSteps), which keeps it
// within the budget of the histories all hubs keep, or drops it: a turn
// whose tools run or wait for an answer holds none itself, so that the
// model calls in progress (Config.MaxModelCalls) and that budget bound
// the histories held, however many turns wait.
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
	var results []ToolResult // the previous step's
	defer r.dropSteps()
	for ; ; step++ {
		// A step stopped while it waits for its model call reads
		// nothing: stream then ends it with the right stop reason.
		if r.slot.take(ctx) == nil {
			var err error
			if req.History, err = r.history(context.WithoutCancel(ctx), step, results); err != nil {
				r.slot.give() // the step calls no model: the next in line may
				step--        // nor counts as one
				if ctx.Err() != nil {
					// Deleted or stopped meanwhile: that is the end.
					return end(r.s.stopEvent(context.Cause(ctx)))
				}
				return end(r.s.historyFailed(r.id, r.turn, err))
			}
		}
		results = nil
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
		// The history moves to the hub, within its budget, or goes.
		r.keepSteps(step+1, req.History, stepText, uses)
		req.History = nil
		var stop *protocol.Event
		if results, stop, stored = r.runCalls(ctx, step, uses); results == nil {
			return end(stop)
		}
	}
}

// history is the history the model gets at the turn's step, step: the
// one the hub kept for it (see takeSteps), else read back from the log,
// as a turn's first step reads it: the conversation's messages up to the
// turn's, the tool steps of the turns before, and the steps the turn has
// made, each with its results. results are those of the step just ended
// (nil at the first): they come from the calls, as their last commits
// need not be done yet. It fails with errNoStep if the log does not hold
// that step.
func (r *agentRun) history(ctx context.Context, step int, results []ToolResult) ([]HistoryMessage, error) {
	if results != nil {
		if h := r.takeSteps(ctx, step); h != nil {
			return append(h, HistoryMessage{Role: protocol.RoleUser, ToolResults: results}), nil
		}
	}
	msgs, size, err := r.s.readHistory(ctx, r.h, r.m, r.m.OpenTurn.Seq)
	if err != nil {
		return nil, err
	}
	steps, err := r.s.toolSteps(ctx, r.id, r.turn, r.s.cfg.MaxHistoryBytes-size)
	if err != nil {
		return nil, err
	}
	h := modelHistory(msgs, r.turn, steps)
	if results == nil {
		return h, nil
	}
	// The step's tool_call events are stored before its calls run: the
	// history ends with their results as the log holds them so far (one
	// not stored yet reads "the call has no result"), which the calls'
	// own replace.
	sameCall := func(a, b ToolResult) bool { return a.ID == b.ID }
	if len(h) == 0 || !slices.EqualFunc(h[len(h)-1].ToolResults, results, sameCall) {
		return nil, errNoStep
	}
	h[len(h)-1].ToolResults = results
	return h, nil
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
