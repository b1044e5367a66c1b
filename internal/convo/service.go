package convo

import (
	"context"
	"encoding/json"

	"github.com/chatgateway/gateway/protocol"
)

// Service owns the conversations: their store, hubs and turns. Every method
// is safe for concurrent use. user is the caller's id; a conversation
// belongs to the user who created it, and other users get ErrNotFound.
type Service struct {
}

// Open opens (or creates) the bbolt file at path, ends turns a crash left
// open with stop reason "interrupted", restarts queued turns, and returns
// a running Service. A file locked by another process fails within
// cfg.OpenTimeout.
func Open(path string, model Model, cfg Config) (*Service, error) {
	panic("not yet")
}

// Close ends running turns as "interrupted" (stored), stops the commit loop
// and closes the database. ctx bounds the wait.
func (s *Service) Close(ctx context.Context) error { panic("not yet") }

// Send stores a user message durably and returns its ack; the turn that
// answers it starts now or after the running one. An empty
// req.Conversation creates a conversation. A repeated req.ClientMsgID
// returns the first ack without storing anything. sub, when not nil, is
// subscribed to the conversation from the live edge first (if it was not
// already), so it sees its own message event and the whole reply.
func (s *Service) Send(ctx context.Context, user string, req *protocol.Send, sub Subscriber) (*protocol.Ack, error) {
	panic("not yet")
}

// Subscribe delivers to sub every event of conversation with seq > after,
// in order, exactly once: first from the log (with sub.SendWait), then live
// (with sub.Send). ready is called with the conversation's last seq before
// the first event is delivered, so the caller can send "subscribed" first.
// It returns once sub is live. Subscribing a subscriber twice restarts
// nothing: the second call only calls ready.
func (s *Service) Subscribe(ctx context.Context, user, conversation string, after uint64, sub Subscriber, ready func(last uint64)) error {
	panic("not yet")
}

// Unsubscribe stops delivering conversation's events to sub. It is a no-op
// for a subscriber that is not subscribed.
func (s *Service) Unsubscribe(conversation string, sub Subscriber) { panic("not yet") }

// Cancel ends the running turn of conversation with stop reason
// "cancelled", keeping its partial text. Without a running turn it does
// nothing and returns nil.
func (s *Service) Cancel(ctx context.Context, user, conversation string) error {
	panic("not yet")
}

// History returns up to limit stored messages with seq < before (before 0:
// the newest), oldest first.
func (s *Service) History(ctx context.Context, user, conversation string, before uint64, limit int) (*protocol.HistoryReply, error) {
	panic("not yet")
}

// List returns user's conversations, most recently updated first.
func (s *Service) List(ctx context.Context, user string) ([]protocol.Conversation, error) {
	panic("not yet")
}

// Create makes a conversation owned by user.
func (s *Service) Create(ctx context.Context, user string, req *protocol.Create) (*protocol.Conversation, error) {
	panic("not yet")
}

// Get describes one conversation.
func (s *Service) Get(ctx context.Context, user, conversation string) (*protocol.Conversation, error) {
	panic("not yet")
}

// Delete cancels conversation's turn, drops its subscribers and removes it
// with its whole log.
func (s *Service) Delete(ctx context.Context, user, conversation string) error {
	panic("not yet")
}

// Events returns up to limit encoded events with seq > after, in order.
func (s *Service) Events(ctx context.Context, user, conversation string, after uint64, limit int) ([]json.RawMessage, error) {
	panic("not yet")
}

// PublishAction stores an action event from an external agent and
// publishes it to the conversation's subscribers.
func (s *Service) PublishAction(ctx context.Context, user, conversation string, a Action) (*protocol.Event, error) {
	panic("not yet")
}
