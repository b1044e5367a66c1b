package convo

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/chatgateway/gateway/protocol"
)

// errCallClosed refuses a tool_result for a call that already has one (a
// client answered it just before its wait timed out), or the timeout of
// an approval wait that was answered just before.
var errCallClosed = errors.New("convo: the call is already over")

// agentRun is one turn of an agent's conversation.
type agentRun struct {
	s *Service
	h *hub
	// m is the conversation's metadata as the turn opened.
	m              *Meta
	id, turn, user string
	ag             *Agent
	// slot is taken for each step's model call, and given back when
	// the call returns: none is held while the step's tools run.
	slot *callSlot
}

// call is one tool call of a step.
type call struct {
	use   ToolUse
	tool  AgentTool
	known bool
	// status is the tool_call's status.
	status string
	// answers receives the tool_approval and tool_result events others
	// store for the call (see callWaiters); nil for a call that waits for
	// none.
	answers chan *protocol.Event
	// endWait gives back the call's place among the calls waiting for an
	// answer (Service.answerWaits), once however often it is called; nil
	// for a call that waits for none.
	endWait func()
	// refused says the call would have waited for an answer, but found
	// Config.MaxWaitingCalls calls waiting: it ends at once, an error.
	refused bool
	// since is when the tool_call was stored.
	since time.Time
}

// runCalls stores a tool_call event for each tool use of step, runs the
// calls concurrently (waiting for approvals and client outputs as the
// agent's tools say), stores each call's tool_result as it ends, and
// returns the results in the order of uses once every call is over, and
// stored, closed once the results are stored too: the next model call
// need not wait for the last commit. When the turn must end instead
// (cancel, shutdown, storage failure, deleted conversation) it returns
// the turn_end to store as stop (nil stop and nil results: the
// conversation is gone), once every call it opened has its tool_result
// (except in a deleted conversation).
//
// A call that waits for an approval or a client's output takes its place
// among the calls waiting for an answer (Config.MaxWaitingCalls) before
// its tool_call is stored, so that the status stored tells the truth: a
// call that finds no place is stored running, never awaiting an answer,
// and its tool_result (an error, WaitRefusedError) follows at once. No
// client sees a card waiting for an answer that nobody waits for, and
// an approve or tool_output for the call is a bad_request, as for any
// call not awaiting that answer. The place is given back when the wait
// ends, however it ends (await), or when runCalls returns, if the wait
// never started (the tool_calls could not be stored).
func (r *agentRun) runCalls(ctx context.Context, step int, uses []ToolUse) (results []ToolResult, stop *protocol.Event, stored <-chan struct{}) {
	calls := make([]*call, len(uses))
	evs := make([]*protocol.Event, len(uses))
	for i, u := range uses {
		c := &call{use: u, status: protocol.CallRunning}
		c.tool, c.known = r.ag.tool(u.Name)
		switch {
		case !c.known:
		case c.tool.Kind == protocol.ToolKindClient:
			c.status = protocol.CallAwaitingClient
		case c.tool.Approval:
			c.status = protocol.CallAwaitingApproval
		}
		switch {
		case c.status == protocol.CallRunning:
		case !r.s.answerWaits.tryTake():
			c.status, c.refused = protocol.CallRunning, true
		default:
			c.endWait = sync.OnceFunc(r.s.answerWaits.give)
			defer c.endWait()
			c.answers = r.s.calls.add(r.id, r.turn, u.ID)
			defer r.s.calls.remove(r.id, r.turn, u.ID)
		}
		calls[i] = c
		evs[i] = &protocol.Event{Type: protocol.EventToolCall, Turn: r.turn, Call: u.ID, Name: u.Name,
			Input: toolInput(u.Input), Step: step, Status: c.status}
	}
	if err := r.append(evs...); err != nil {
		return nil, r.storeFailed(err), nil
	}
	now := time.Now()
	results = make([]ToolResult, len(calls))
	var over, done sync.WaitGroup
	over.Add(len(calls))
	for i, c := range calls {
		c.since = now
		done.Go(func() {
			ctx, span := r.s.startToolSpan(ctx, c)
			out, ran := r.do(ctx, c)
			endToolSpan(span, out)
			if c.answers != nil {
				// An answer may win over a timeout as it is stored:
				// the result is known once stored.
				results[i] = r.finish(ctx, c, out, ran)
				over.Done()
				return
			}
			results[i] = resultOf(c, out)
			over.Done()
			r.finish(ctx, c, out, ran)
		})
	}
	over.Wait()
	if cause := context.Cause(ctx); ctx.Err() != nil {
		done.Wait()
		return nil, r.s.stopEvent(cause), nil
	}
	ch := make(chan struct{})
	go func() {
		done.Wait()
		close(ch)
	}()
	return results, nil, ch
}

// do runs one call to its outcome: it waits for an approval or a client's
// output first when the call needs one, and fails at once when it was
// refused that wait. ran says whether the agent ran the tool (Agent.Run
// counts and logs the calls it runs).
func (r *agentRun) do(ctx context.Context, c *call) (out ToolOutcome, ran bool) {
	switch {
	case c.refused:
		return r.refuseWait(c, "tool call refused: too many calls wait for an answer", WaitRefusedError), false
	case c.answers == nil:
		return r.run(ctx, c)
	}
	ev, out := r.await(ctx, c)
	if ev == nil {
		return out, false
	}
	return r.answered(ctx, c, ev)
}

// answered is c's outcome once ev answered its wait: the client's output,
// a denial, or the tool's run once approved. ran is as for do.
func (r *agentRun) answered(ctx context.Context, c *call, ev *protocol.Event) (out ToolOutcome, ran bool) {
	switch {
	case c.status == protocol.CallAwaitingClient:
		return outcomeOf(ev), false
	case ev.Approved == nil || !*ev.Approved:
		msg := "denied by the user"
		if ev.Reason != "" {
			msg += ": " + ev.Reason
		}
		return ToolOutcome{Status: protocol.ResultDenied, Error: msg}, false
	}
	return r.run(ctx, c)
}

// run runs c's tool, as do, once one of the tool runs in progress
// (MaxToolCalls) is free.
func (r *agentRun) run(ctx context.Context, c *call) (out ToolOutcome, ran bool) {
	if !c.known {
		return ToolOutcome{Status: protocol.ResultError, Error: fmt.Sprintf("unknown tool %q", c.use.Name)}, false
	}
	if out, ok := r.takeRun(ctx, c); !ok {
		return out, false
	}
	defer r.s.toolRuns.give()
	return r.ag.Run(ctx, ToolCall{ID: c.use.ID, Name: c.use.Name, Input: c.use.Input, User: r.user, Conversation: r.id},
		func(p ToolProgress) { r.progress(c, p) }), true
}

// takeRun takes one of the tool runs in progress for c, waiting in line
// for at most c's tool's timeout when none is free. The wait does not eat
// into the timeout of the run that follows: a busy gateway fails a call
// only when it kept it waiting the whole timeout, and then says so. A
// call that finds Config.MaxWaitingCalls calls in line already does not
// wait: it fails at once (RunRefusedError), since a call in line keeps
// its turn, with what the turn holds, as one waiting for an answer does.
// Its place in line is given back as its wait ends, however it ends. ok
// is false when the wait ended without a run, with the call's outcome:
// that timeout or refusal, or cancelled when ctx ended (as for a running
// call).
func (r *agentRun) takeRun(ctx context.Context, c *call) (out ToolOutcome, ok bool) {
	runs := r.s.toolRuns
	if runs.tryTake() {
		return ToolOutcome{}, true
	}
	if !r.s.runLine.tryTake() {
		return r.refuseWait(c, "tool call refused: too many calls wait for a tool run", RunRefusedError), false
	}
	defer r.s.runLine.give()
	wait, stop := context.WithTimeout(ctx, c.tool.Timeout)
	defer stop()
	switch {
	case runs.wait(wait) == nil:
		return ToolOutcome{}, true
	case ctx.Err() != nil:
		return callCancelled, false
	}
	return ToolOutcome{Status: protocol.ResultTimeout,
		Error: fmt.Sprintf("the gateway was busy: no tool run was free within %s", c.tool.Timeout)}, false
}

// CancelledCallError is the error a tool call's result shows, with
// status protocol.ResultCancelled, when its turn ended first (cancel,
// delete, shutdown) while it waited or ran: Agent.Run gives it to a call
// whose ctx ended, so that a call shows the same either way.
const CancelledCallError = "the call was cancelled"

// WaitRefusedError is the error a tool call's result shows, with status
// protocol.ResultError, when the call would have waited for an approval
// or a client's output while Config.MaxWaitingCalls calls waited already.
const WaitRefusedError = "the gateway has too many calls waiting for an answer; try again later"

// RunRefusedError is the error a tool call's result shows, with status
// protocol.ResultError, when no tool run was free (Config.MaxToolCalls)
// while Config.MaxWaitingCalls calls waited in line for one already.
const RunRefusedError = "the gateway is busy: it has too many calls waiting for a tool run; try again later"

// refuseWait logs why c is not waited for (msg) and returns its outcome: it
// fails at once with text, one of the refusals above.
func (r *agentRun) refuseWait(c *call, msg, text string) ToolOutcome {
	r.s.logger.Warn(msg, "conversation", r.id, "turn", r.turn, "call", c.use.ID, "tool", c.use.Name,
		"limit", r.s.cfg.MaxWaitingCalls)
	return ToolOutcome{Status: protocol.ResultError, Error: text}
}

// callCancelled is the outcome of a call whose turn ended first (cancel,
// delete, shutdown) while it waited or ran.
var callCancelled = ToolOutcome{Status: protocol.ResultCancelled, Error: CancelledCallError}

// await waits for the answer to c: the event, or the outcome of a wait
// that ended without one (timeout, cancel). It gives c's place among the
// calls waiting for an answer back as the wait ends.
func (r *agentRun) await(ctx context.Context, c *call) (*protocol.Event, ToolOutcome) {
	defer c.endWait()
	timer := time.NewTimer(c.tool.Timeout)
	defer timer.Stop()
	select {
	case ev := <-c.answers:
		return ev, ToolOutcome{}
	case <-timer.C:
		what := "approval"
		if c.status == protocol.CallAwaitingClient {
			what = "the client's output"
		}
		return nil, ToolOutcome{Status: protocol.ResultTimeout, Error: fmt.Sprintf("no %s within %s", what, c.tool.Timeout)}
	case <-ctx.Done():
		return nil, callCancelled
	}
}

// finish stores c's tool_result for out, unless a client's tool_output
// stored it already, and returns the result the model gets. The timeout
// of an approval wait is stored only while the call awaits approval: an
// approval stored first wins, and the call goes on as it says.
func (r *agentRun) finish(ctx context.Context, c *call, out ToolOutcome, ran bool) ToolResult {
	if out.Status == protocol.ResultCancelled && errors.Is(context.Cause(ctx), errShutdown) {
		// Aborted by the shutdown, not by a cancel. A call that ended
		// otherwise (its tool's answer came as the gateway stopped)
		// keeps its outcome.
		out = ToolOutcome{Status: protocol.ResultInterrupted, Error: "the gateway stopped during the call"}
	}
	d := time.Since(c.since)
	answered := c.status == protocol.CallAwaitingClient && !ran && out.Status != protocol.ResultTimeout &&
		out.Status != protocol.ResultCancelled && out.Status != protocol.ResultInterrupted
	if !answered {
		ms := d.Milliseconds()
		ev := &protocol.Event{Type: protocol.EventToolResult, Turn: r.turn, Call: c.use.ID, Name: c.use.Name,
			Status: out.Status, DurationMS: &ms}
		if out.Status == protocol.ResultOK {
			ev.Output = toolOutput(out.Output)
		} else {
			ev.ToolError = errorText(out)
		}
		var wait string
		if c.status == protocol.CallAwaitingApproval && !ran && out.Status == protocol.ResultTimeout {
			wait = c.status
		}
		err := r.appendResult(ev, wait)
		if errors.Is(err, ErrTooLarge) {
			// An output or error text the Log cannot store (in cluster
			// mode, one over a NATS message once JSON escapes it): the
			// call fails with a short error instead, for the model as
			// in the log, so that it still gets its tool_result.
			what := "output"
			if out.Status != protocol.ResultOK {
				what = "error"
			}
			out = ToolOutcome{Status: protocol.ResultError, Error: "the tool's " + what + " is too large to store"}
			ev.Output, ev.Status, ev.ToolError = nil, out.Status, out.Error
			err = r.appendResult(ev, wait)
		}
		// A call that waits for no answer is closed by someone else only
		// when another gateway took the turn over: nothing comes then.
		if errors.Is(err, errCallClosed) && c.answers != nil {
			// Someone answered just as the wait timed out: the answer
			// won, and is on its way.
			select {
			case ans := <-c.answers:
				if wait != "" {
					out, ran = r.answered(ctx, c, ans)
					return r.finish(ctx, c, out, ran)
				}
				out = outcomeOf(ans)
			case <-r.s.turnCtx.Done():
			}
		}
	}
	if !ran {
		// A name the agent lacks, the model's, would make labels without
		// bound.
		label := c.use.Name
		if !c.known {
			label = "unknown"
		}
		r.s.cfg.Metrics.ToolCalls.WithLabelValues(label, out.Status).Inc()
		r.s.logger.Info("tool call", "conversation", r.id, "turn", r.turn, "call", c.use.ID, "tool", c.use.Name,
			"status", out.Status, "duration", d)
	}
	return resultOf(c, out)
}

// resultOf is the result the model gets for c's outcome.
func resultOf(c *call, out ToolOutcome) ToolResult {
	if out.Status == protocol.ResultOK {
		return ToolResult{ID: c.use.ID, Output: toolOutput(out.Output)}
	}
	return ToolResult{ID: c.use.ID, Error: errorText(out)}
}

// progress stores a tool_progress event for c.
func (r *agentRun) progress(c *call, p ToolProgress) {
	ev := &protocol.Event{Type: protocol.EventToolProgress, Turn: r.turn, Call: c.use.ID,
		Progress: &p.Progress, ProgressMessage: p.Message}
	if p.Total > 0 {
		ev.Total = &p.Total
	}
	if err := r.append(ev); err != nil {
		r.s.logger.Warn("store tool progress", "conversation", r.id, "call", c.use.ID, "err", err)
	}
}

// append stores events of the turn, provided it is still the open one.
func (r *agentRun) append(evs ...*protocol.Event) error {
	_, err := r.s.log.Append(context.Background(), &Append{Conversation: r.id, Build: func(m *Meta) ([]Draft, error) {
		if m.OpenTurn == nil || m.OpenTurn.Turn != r.turn {
			return nil, errTurnGone
		}
		return drafts(evs), nil
	}})
	return err
}

// appendResult stores a call's tool_result, provided the call is still
// open and, when wait is not empty, still has status wait (else
// errCallClosed), retrying while storage fails.
func (r *agentRun) appendResult(ev *protocol.Event, wait string) error {
	return r.s.retry(r.s.turnCtx, r.id, "store tool_result", func() error {
		_, err := r.s.log.Append(context.Background(), &Append{Conversation: r.id, Build: func(m *Meta) ([]Draft, error) {
			if m.OpenTurn == nil || m.OpenTurn.Turn != r.turn {
				return nil, errTurnGone
			}
			if c := m.OpenTurn.call(ev.Call); c == nil || wait != "" && c.Status != wait {
				return nil, errCallClosed
			}
			return drafts([]*protocol.Event{ev}), nil
		}})
		return err
	})
}

// storeFailed is the turn_end for a turn whose events could not be
// stored: nil when the conversation is gone.
func (r *agentRun) storeFailed(err error) *protocol.Event {
	if errors.Is(err, ErrNotFound) || errors.Is(err, errTurnGone) {
		return nil
	}
	r.s.logger.Error("store tool calls", "conversation", r.id, "turn", r.turn, "err", err)
	return &protocol.Event{StopReason: protocol.StopError, Error: protocol.AsError(ErrUnavailable)}
}

// drafts copies evs into drafts: Build may run again, and the Log stamps
// its own copy.
func drafts(evs []*protocol.Event) []Draft {
	out := make([]Draft, len(evs))
	for i, ev := range evs {
		c := *ev
		out[i] = Draft{Event: &c}
	}
	return out
}

// outcomeOf is the outcome a stored tool_result tells.
func outcomeOf(ev *protocol.Event) ToolOutcome {
	return ToolOutcome{Status: ev.Status, Output: ev.Output, Error: ev.ToolError}
}

// errorText is the error a failed call's result gives: never empty, which
// the model's service refuses.
func errorText(out ToolOutcome) string {
	if out.Error != "" {
		return out.Error
	}
	return "the call ended with status " + out.Status
}

// toolInput is a tool use's input as a tool_call shows it: a JSON value,
// {} when the model sent none.
func toolInput(in []byte) []byte {
	if len(in) == 0 {
		return []byte(`{}`)
	}
	return validJSON(in)
}

// toolOutput is an ok result's output: a JSON value, null when empty.
func toolOutput(out []byte) []byte {
	if len(out) == 0 {
		return []byte(`null`)
	}
	return validJSON(out)
}

// callWaiters routes the answers that requests store for a call (a
// tool_approval, a client's tool_result) to the turn waiting for them. The
// Log reports every committed event, also those another gateway stored,
// so the answer reaches the turn wherever it was given.
type callWaiters struct {
	mu sync.Mutex
	m  map[callKey]chan *protocol.Event
}

// callKey names a call of a turn. The turn's id tells apart the calls of
// a conversation deleted and created again under its id, whose model may
// reuse a call id: the old turn's end must not remove the new one's wait,
// nor an answer in the new one reach the old.
type callKey struct{ conversation, turn, call string }

// add registers a wait for the answers to call of turn of conversation.
func (w *callWaiters) add(conversation, turn, call string) chan *protocol.Event {
	ch := make(chan *protocol.Event, 2)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.m == nil {
		w.m = map[callKey]chan *protocol.Event{}
	}
	w.m[callKey{conversation, turn, call}] = ch
	return ch
}

func (w *callWaiters) remove(conversation, turn, call string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.m, callKey{conversation, turn, call})
}

// notify hands committed answers to their waiters; it never blocks.
func (w *callWaiters) notify(events []Committed) {
	for _, c := range events {
		if c.Type != protocol.EventToolApproval && c.Type != protocol.EventToolResult {
			continue
		}
		ev, err := decodeEvent(c.Frame)
		if err != nil {
			continue
		}
		w.mu.Lock()
		ch := w.m[callKey{c.Conversation, ev.Turn, ev.Call}]
		w.mu.Unlock()
		if ch != nil {
			select {
			case ch <- ev:
			default:
			}
		}
	}
}
