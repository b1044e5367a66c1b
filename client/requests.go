package client

import (
	"context"
	"encoding/json"
	"iter"

	"github.com/coder/websocket"

	"github.com/chatgateway/gateway/protocol"
)

// Create creates a conversation with the fields of req (all optional; its
// ID is set by the client) and returns it. Create is not retried when the
// connection drops before the reply (ErrConnectionLost): with a chosen
// id, a retry would find it taken.
func (c *Client) Create(ctx context.Context, req protocol.Create) (*protocol.Conversation, error) {
	req.ID = c.requestID()
	var r protocol.Created
	if err := c.call(ctx, req.ID, &req, false, &r); err != nil {
		return nil, err
	}
	return r.Info, nil
}

// Send stores text as a user message of conversation and returns its ack
// once it is durable; the reply streams to the conversation's
// subscribers. Send sets a fresh client_msg_id, so that when the
// connection drops before the ack it sends the message again on the next
// connection without storing it twice. With conversation empty the
// gateway creates a conversation (the ack names it); such a Send is not
// retried, and returns ErrConnectionLost instead. A Send whose ctx ends
// after its frame was written leaves the connection following nothing
// new: the client unsubscribes from the conversation, once its ack
// names it when the Send created it.
func (c *Client) Send(ctx context.Context, conversation, text string) (*protocol.Ack, error) {
	id := c.requestID()
	req := &protocol.Send{ID: id, Conversation: conversation, Text: text, ClientMsgID: newKey()}
	var ack protocol.Ack
	var late func(*websocket.Conn, reply)
	if conversation == "" {
		// Abandoned after its write, the send may still create a
		// conversation, which the gateway then follows on ws: only
		// the ack names it.
		late = func(ws *websocket.Conn, r reply) {
			var ack protocol.Ack
			if r.typ == protocol.ReplyAck && json.Unmarshal(r.data, &ack) == nil {
				c.unfollow(ws, ack.Conversation)
			}
		}
	}
	ws, err := c.callOn(ctx, id, req, conversation != "", &ack, late)
	if err != nil {
		if ws != nil && conversation != "" {
			// Written on ws, and maybe stored: the gateway may follow
			// the conversation on ws as after an ack.
			c.unfollow(ws, conversation)
		}
		return nil, err
	}
	c.unfollow(ws, ack.Conversation)
	return &ack, nil
}

// unfollow undoes on ws the subscription the gateway gives a connection
// that sends to conversation (also a Send abandoned before its ack), or
// that a Subscribe abandoned before its reply asked for, unless a
// Subscription follows it: else every conversation sent to would count
// toward the gateway's bound on the conversations a connection follows
// (-max-subscriptions), and its events would come for nothing.
func (c *Client) unfollow(ws *websocket.Conn, conversation string) {
	if c.sub(conversation) != nil {
		return
	}
	// Without an id: the unsubscribed reply goes unread.
	b, err := protocol.EncodeRequest(&protocol.Unsubscribe{Conversation: conversation})
	if err != nil {
		return
	}
	if c.write(ws, b) != nil {
		return
	}
	// A Subscription made meanwhile may have had its subscribe written
	// before this unsubscribe: subscribe it again, after it.
	if s := c.sub(conversation); s != nil {
		go c.resubscribe(ws, s)
	}
}

// History returns a page of conversation's stored messages, oldest
// first: those with seq < before (0: up to the newest), at most limit (0:
// the gateway's default of 50; fewer past about protocol.MaxPageBytes).
// HasMore tells whether older ones remain.
func (c *Client) History(ctx context.Context, conversation string, before uint64, limit int) (*protocol.HistoryReply, error) {
	id := c.requestID()
	var r protocol.HistoryReply
	if err := c.call(ctx, id, &protocol.History{ID: id, Conversation: conversation, Before: before, Limit: limit}, true, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// List returns one page of the caller's conversations, most recently
// updated first: at most limit (0: the gateway's default of 100; it caps
// the limit at 500, and a page stops at about protocol.MaxPageBytes),
// starting after the page whose reply's Next is before ("": from the
// newest). The reply's Next, when not empty, is the before of the
// following page. Conversations follows Next for you.
func (c *Client) List(ctx context.Context, before string, limit int) (*protocol.ConversationsReply, error) {
	id := c.requestID()
	var r protocol.ConversationsReply
	if err := c.call(ctx, id, &protocol.List{ID: id, Before: before, Limit: limit}, true, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Conversations yields every conversation of the caller, most recently
// updated first, asking for pages of limit (0: the gateway's default)
// only as the loop needs them. At an error it yields it with a zero
// Conversation and stops. A conversation created or updated while the
// pages are read moves to the front, ahead of the pages already read: the
// loop misses it, and the next loop sees it.
func (c *Client) Conversations(ctx context.Context, limit int) iter.Seq2[protocol.Conversation, error] {
	return func(yield func(protocol.Conversation, error) bool) {
		before := ""
		for {
			page, err := c.List(ctx, before, limit)
			if err != nil {
				yield(protocol.Conversation{}, err)
				return
			}
			for _, conv := range page.Conversations {
				if !yield(conv, nil) {
					return
				}
			}
			if page.Next == "" {
				return
			}
			before = page.Next
		}
	}
}

// Cancel ends the running turn of conversation (its turn_end says
// "cancelled"); without one it does nothing.
func (c *Client) Cancel(ctx context.Context, conversation string) error {
	id := c.requestID()
	return c.call(ctx, id, &protocol.Cancel{ID: id, Conversation: conversation}, true, nil)
}

// Delete removes conversation and its log; subscriptions to it end with
// ErrDeleted. It is not retried after a drop (a retry would answer
// not_found): it returns ErrConnectionLost instead.
func (c *Client) Delete(ctx context.Context, conversation string) error {
	id := c.requestID()
	return c.call(ctx, id, &protocol.Delete{ID: id, Conversation: conversation}, false, nil)
}

// Ping checks that the gateway answers on the current connection.
func (c *Client) Ping(ctx context.Context) error {
	id := c.requestID()
	return c.call(ctx, id, &protocol.Ping{ID: id}, true, nil)
}

// Agents returns the agents the caller may bind a conversation to
// (protocol v1.1).
func (c *Client) Agents(ctx context.Context) ([]protocol.AgentInfo, error) {
	id := c.requestID()
	var r protocol.AgentsReply
	if err := c.call(ctx, id, &protocol.Agents{ID: id}, true, &r); err != nil {
		return nil, err
	}
	return r.Agents, nil
}

// Approve answers a tool call of conversation that waits for a person's
// approval (a tool_call event with status awaiting_approval); reason is
// optional. The first answer wins: a call already answered is a
// bad_request, also when a retry after a drop finds its own first answer.
func (c *Client) Approve(ctx context.Context, conversation, call string, approved bool, reason string) error {
	id := c.requestID()
	req := &protocol.Approve{ID: id, Conversation: conversation, Call: call, Approved: approved, Reason: reason}
	return c.call(ctx, id, req, false, nil)
}

// ToolOutput answers a tool call that a client runs (a tool_call event
// with status awaiting_client) with its output (any JSON) or, when errText
// is not empty, with that error. Like Approve, it is not retried after a
// drop: it returns ErrConnectionLost.
func (c *Client) ToolOutput(ctx context.Context, conversation, call string, output json.RawMessage, errText string) error {
	id := c.requestID()
	req := &protocol.ToolOutput{ID: id, Conversation: conversation, Call: call, Output: output, Error: errText}
	return c.call(ctx, id, req, false, nil)
}
