package httpapi

import (
	"net/http"
	"net/url"

	"github.com/go-chi/chi/v5"

	"github.com/chatgateway/gateway/protocol"
)

// agents serves GET /v1/agents: the agents the caller may use.
func (a *api) agents(r *http.Request, _ string) (int, any, error) {
	return http.StatusOK, &protocol.AgentsReply{Type: protocol.ReplyAgents, Agents: a.svc.Agents(r.Context())}, nil
}

// answer serves POST …/calls/{call}/approval (typ approve) and …/output
// (typ tool_output): the body holds the request's other fields.
func (a *api) answer(typ string) func(r *http.Request, user, id string) (int, any, error) {
	return func(r *http.Request, user, id string) (int, any, error) {
		if err := a.opts.SendLimiter.Allow(user); err != nil {
			return 0, nil, err
		}
		// chi gives the path's segment as sent: a client may have escaped
		// a call id's ':' (encodeURIComponent does).
		call, err := url.PathUnescape(chi.URLParam(r, "call"))
		if err != nil {
			return 0, nil, protocol.Errorf(protocol.CodeBadRequest, "call: not a valid call id")
		}
		req, err := a.decodeRequest(r, typ, id, "call", call)
		if err != nil {
			return 0, nil, err
		}
		switch req := req.(type) {
		case *protocol.Approve:
			err = a.svc.Approve(r.Context(), user, req)
		case *protocol.ToolOutput:
			err = a.svc.ToolOutput(r.Context(), user, req)
		}
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, &protocol.Accepted{Type: protocol.ReplyAccepted, Conversation: id, Call: call}, nil
	}
}
