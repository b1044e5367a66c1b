package convo

import (
	"context"
	"time"

	"github.com/chatgateway/gateway/internal/toolout"
	"github.com/chatgateway/gateway/protocol"
)

// Agents returns the agents the caller of ctx may use ([] without any).
func (s *Service) Agents(ctx context.Context) []protocol.AgentInfo {
	if s.cfg.Agents == nil {
		return []protocol.AgentInfo{}
	}
	return s.cfg.Agents.List(ctx)
}

// Approve answers a tool call of user's conversation that awaits
// approval: it stores the tool_approval event, and the turn then runs the
// call or, denied, tells the model so. The first answer wins: a call that
// does not await approval (unknown, answered, a client's) is a
// bad_request; a conversation deleted before the answer is stored is
// ErrNotFound, as for Send.
func (s *Service) Approve(ctx context.Context, user string, req *protocol.Approve) error {
	checked, err := s.usable(ctx, user, req.Conversation, true)
	if err != nil {
		return err
	}
	_, err = s.log.Append(ctx, &Append{Conversation: req.Conversation, Build: func(m *Meta) ([]Draft, error) {
		if _, err := waitingCall(checked, m, req.Call, protocol.CallAwaitingApproval); err != nil {
			return nil, err
		}
		approved := req.Approved
		return []Draft{{Event: &protocol.Event{Type: protocol.EventToolApproval, Turn: m.OpenTurn.Turn, Call: req.Call,
			Approved: &approved, By: user, Reason: req.Reason}}}, nil
	}})
	return err
}

// ToolOutput answers a client tool's call of user's conversation with its
// output or error: it stores the call's tool_result, which the turn then
// sends the model. The first answer wins: a call that does not await a
// client's output is a bad_request, and a conversation deleted before
// the answer is stored is ErrNotFound, as for Send. An output or error over
// Config.MaxToolOutputBytes is cut and says so, as any tool's.
func (s *Service) ToolOutput(ctx context.Context, user string, req *protocol.ToolOutput) error {
	limit := toolout.Limit(s.cfg.MaxToolOutputBytes)
	output, toolErr := req.Output, toolout.CapText(req.Error, limit)
	if output != nil {
		output = toolout.Cap(output, limit)
	}
	checked, err := s.usable(ctx, user, req.Conversation, true)
	if err != nil {
		return err
	}
	_, err = s.log.Append(ctx, &Append{Conversation: req.Conversation, Build: func(m *Meta) ([]Draft, error) {
		c, err := waitingCall(checked, m, req.Call, protocol.CallAwaitingClient)
		if err != nil {
			return nil, err
		}
		ms := max(time.Since(c.Since), 0).Milliseconds()
		ev := &protocol.Event{Type: protocol.EventToolResult, Turn: m.OpenTurn.Turn, Call: req.Call, Name: c.Name,
			Status: protocol.ResultOK, Output: output, DurationMS: &ms}
		if output == nil {
			ev.Status, ev.ToolError = protocol.ResultError, toolErr
		}
		return []Draft{{Event: ev}}, nil
	}})
	return err
}

// waitingCall returns the open call of m's running turn that awaits an
// answer with status; anything else is a bad_request. m is the
// conversation as the answer's append finds it, checked as the caller
// checked it: one deleted since and created again under its id is not
// found, even if a call of its own has the same id.
func waitingCall(checked, m *Meta, call, status string) (*OpenCall, error) {
	if replaced(checked.CreatedAt, m.CreatedAt) {
		return nil, ErrNotFound
	}
	c := m.OpenTurn.call(call)
	if c == nil || c.Status != status {
		what := "approval"
		if status == protocol.CallAwaitingClient {
			what = "a client's output"
		}
		return nil, protocol.Errorf(protocol.CodeBadRequest, "call: %s is not awaiting %s", call, what)
	}
	return c, nil
}
