package conn

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

// handle decodes one text frame and serves it; a bad frame or a failed
// request gets an error frame and the connection stays open.
func (c *conn) handle(data []byte) {
	read := time.Now()
	req, id, err := protocol.DecodeClientFrame(data)
	if err != nil {
		c.replyError(id, "", err)
		return
	}
	c.dispatch(req, read)
}

// dispatch serves one request, whose frame was read at read, and queues
// its reply.
func (c *conn) dispatch(req protocol.Request, read time.Time) {
	c.forgetGone()
	conversation, err := c.serveRequest(req, read)
	if err != nil {
		c.replyError(req.RequestID(), conversation, err)
	}
}

// serveRequest calls convo for req and queues the reply. On failure it
// returns the conversation the request was about, for the error frame.
func (c *conn) serveRequest(req protocol.Request, read time.Time) (string, error) {
	svc, ctx, user := c.h.svc, c.ctx, c.user
	switch r := req.(type) {
	case *protocol.Send:
		ctx, span := c.startSend(ctx, r, read)
		defer span.End()
		ack, err := c.send(ctx, r)
		sent(span, ack, err)
		if err != nil {
			return r.Conversation, err
		}
		c.track(ack.Conversation)
	case *protocol.Subscribe:
		if err := c.roomFor(r.Conversation); err != nil {
			return r.Conversation, err
		}
		err := svc.Subscribe(ctx, user, r, c, func(s *protocol.Subscribed) {
			s.Type, s.ID = protocol.ReplySubscribed, r.ID
			c.push(encode(s))
		})
		if err != nil {
			return r.Conversation, err
		}
		c.track(r.Conversation)
	case *protocol.Unsubscribe:
		svc.Unsubscribe(r.Conversation, c)
		c.untrack(r.Conversation)
		c.reply(&protocol.Done{Type: protocol.ReplyUnsubscribed, ID: r.ID, Conversation: r.Conversation})
	case *protocol.Cancel:
		if err := svc.Cancel(ctx, user, r.Conversation); err != nil {
			return r.Conversation, err
		}
		c.reply(&protocol.Done{Type: protocol.ReplyCancelled, ID: r.ID, Conversation: r.Conversation})
	case *protocol.History:
		h, err := svc.History(ctx, user, r.Conversation, r.Before, r.Limit)
		if err != nil {
			return r.Conversation, err
		}
		h.Type, h.ID = protocol.ReplyHistory, r.ID
		c.reply(h)
	case *protocol.List:
		list, err := svc.List(ctx, user, r.Before, r.Limit)
		if err != nil {
			return "", err
		}
		list.ID = r.ID
		c.reply(list)
	case *protocol.Create:
		if err := c.h.opts.Sizes.CheckCreate(r); err != nil {
			return r.Conversation, err
		}
		if err := c.h.opts.SendLimiter.Allow(user); err != nil {
			return r.Conversation, err
		}
		info, err := svc.Create(ctx, user, r)
		if err != nil {
			return r.Conversation, err
		}
		c.reply(&protocol.Created{Type: protocol.ReplyCreated, ID: r.ID, Conversation: info.ID, Info: info})
	case *protocol.Delete:
		if err := svc.Delete(ctx, user, r.Conversation); err != nil {
			return r.Conversation, err
		}
		c.untrack(r.Conversation)
		c.reply(&protocol.Done{Type: protocol.ReplyDeleted, ID: r.ID, Conversation: r.Conversation})
	case *protocol.Ping:
		c.reply(&protocol.Done{Type: protocol.ReplyPong, ID: r.ID})
	case *protocol.Agents:
		c.reply(&protocol.AgentsReply{Type: protocol.ReplyAgents, ID: r.ID, Agents: svc.Agents(ctx)})
	case *protocol.Approve:
		return r.Conversation, c.answer(r.ID, r.Conversation, r.Call, func() error { return svc.Approve(ctx, user, r) })
	case *protocol.ToolOutput:
		return r.Conversation, c.answer(r.ID, r.Conversation, r.Call, func() error { return svc.ToolOutput(ctx, user, r) })
	default:
		return "", protocol.Errorf(protocol.CodeUnknownType, "unknown frame type %q", req.Type())
	}
	return "", nil
}

// send stores a send's message, unless the rate limit or the bound on
// subscriptions refuses it. convo queues the ack to c before the message
// event.
func (c *conn) send(ctx context.Context, r *protocol.Send) (*protocol.Ack, error) {
	if err := c.h.opts.SendLimiter.Allow(c.user); err != nil {
		return nil, err
	}
	if err := c.roomFor(r.Conversation); err != nil {
		return nil, err
	}
	return c.h.svc.Send(ctx, c.user, r, c)
}

// answer serves an approve or tool_output request: within the user's send
// budget, do is called and, when it succeeds, accepted is the reply.
func (c *conn) answer(id, conversation, call string, do func() error) error {
	if err := c.h.opts.SendLimiter.Allow(c.user); err != nil {
		return err
	}
	if err := do(); err != nil {
		return err
	}
	c.reply(&protocol.Accepted{Type: protocol.ReplyAccepted, ID: id, Conversation: conversation, Call: call})
	return nil
}

// errTooManySubscriptions refuses a subscription beyond
// Options.MaxSubscriptions.
var errTooManySubscriptions = protocol.Errorf(protocol.CodeBusy, "too many subscriptions on this connection")

// roomFor checks that the connection may follow conversation (an empty
// id is a new one): it already does, or it is under MaxSubscriptions.
func (c *conn) roomFor(conversation string) error {
	if _, ok := c.subs[conversation]; ok && conversation != "" {
		return nil
	}
	if len(c.subs) >= c.h.opts.MaxSubscriptions {
		return errTooManySubscriptions
	}
	return nil
}

// Gone implements convo.Subscriber: conversation was deleted. The client
// gets a "deleted" frame without an id; the reader forgets the
// subscription before its next request (see forgetGone).
func (c *conn) Gone(conversation string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gone == nil {
		c.gone = map[string]struct{}{}
	}
	c.gone[conversation] = struct{}{}
	c.pushLocked(convo.Frame{Data: encode(&protocol.Done{Type: protocol.ReplyDeleted, Conversation: conversation})})
}

// forgetGone drops the subscriptions of deleted conversations, so they no
// longer count toward MaxSubscriptions. A deleted notice can come while
// the reader subscribes to a conversation made again under the same id:
// the new subscription, which convo still has, stays.
func (c *conn) forgetGone() {
	c.mu.Lock()
	gone := c.gone
	c.gone = nil
	c.mu.Unlock()
	for id := range gone {
		if !c.h.svc.Subscribed(id, c) {
			c.untrack(id)
		}
	}
}

// track notes that the connection is subscribed to conversation (convo's
// hubs count subscriptions in the metrics).
func (c *conn) track(conversation string) { c.subs[conversation] = struct{}{} }

// untrack notes that the connection left conversation.
func (c *conn) untrack(conversation string) { delete(c.subs, conversation) }

// reply queues a reply frame, waiting for room like a replay does.
func (c *conn) reply(v any) {
	// An error means the connection is closing: nobody is left to tell.
	_ = c.pushWait(c.ctx, convo.Frame{Data: encode(v)})
}

// replyError queues the error frame for err. An error that is not a
// *protocol.Error is unexpected: it is logged with its detail and the
// client gets a bare "internal".
func (c *conn) replyError(id, conversation string, err error) {
	var pe *protocol.Error
	if !errors.As(err, &pe) && c.ctx.Err() == nil && !errors.Is(err, errClosed) {
		c.log.Error("request failed", "conversation", conversation, "err", err)
	}
	pe = protocol.AsError(err)
	c.h.metrics.Errors.WithLabelValues(pe.Code).Inc()
	c.reply(protocol.NewErrorReply(id, conversation, pe))
}

// encode marshals a reply. The protocol types always marshal.
func encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("conn: encoding a reply: " + err.Error())
	}
	return b
}
