package client

import (
	"context"

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
// retried, and returns ErrConnectionLost instead.
func (c *Client) Send(ctx context.Context, conversation, text string) (*protocol.Ack, error) {
	id := c.requestID()
	req := &protocol.Send{ID: id, Conversation: conversation, Text: text, ClientMsgID: newKey()}
	var ack protocol.Ack
	if err := c.call(ctx, id, req, conversation != "", &ack); err != nil {
		return nil, err
	}
	return &ack, nil
}

// History returns a page of conversation's stored messages, oldest
// first: those with seq < before (0: up to the newest), at most limit (0:
// the gateway's default of 50). HasMore tells whether older ones remain.
func (c *Client) History(ctx context.Context, conversation string, before uint64, limit int) (*protocol.HistoryReply, error) {
	id := c.requestID()
	var r protocol.HistoryReply
	if err := c.call(ctx, id, &protocol.History{ID: id, Conversation: conversation, Before: before, Limit: limit}, true, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// List returns the caller's conversations, most recently updated first.
func (c *Client) List(ctx context.Context) ([]protocol.Conversation, error) {
	id := c.requestID()
	var r protocol.ConversationsReply
	if err := c.call(ctx, id, &protocol.List{ID: id}, true, &r); err != nil {
		return nil, err
	}
	return r.Conversations, nil
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
