package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/chatgateway/gateway/protocol"
)

// Subscription is the event stream of one conversation. Next returns its
// events in seq order, each exactly once, across reconnections.
type Subscription struct {
	c            *Client
	conversation string
	ch           chan protocol.Event
	// ended is closed by end; err says why.
	ended chan struct{}
	once  sync.Once
	err   error

	mu sync.Mutex
	// last is the seq of the newest event handed to ch: a reconnection
	// subscribes again after it.
	last uint64
	// behind is set when an event was dropped because ch was full: once
	// the reader has taken the buffered events, s is subscribed again
	// after last.
	behind bool
	// createdAt is the created_at of the first subscribed reply (zero
	// until then, or from a gateway that does not send it): every
	// resubscription sends it, so that a conversation deleted and created
	// again under the same id while the client was away ends s with
	// ErrDeleted instead of resuming the new log after a seq of the old.
	createdAt time.Time
}

// Subscribe follows conversation from the event after seq after (0: from
// its first event), on this and every later connection of the client. It
// returns once the gateway has accepted the subscription; an error reply
// (not_found, …) is returned as a *protocol.Error. A client follows a
// conversation at most once: subscribing again ends the previous
// Subscription with an error, also when the gateway refuses the new one.
//
// A program that resumes from a position it saved (the conversation, the
// seq of the last event it handled and the Subscription's CreatedAt)
// passes CreatedAt(saved) too: if the conversation was deleted meanwhile,
// also when another was created under its id since, Subscribe returns
// ErrDeleted (wrapping the gateway's not_found) instead of following the
// new conversation from an after that counted the old one's events.
func (c *Client) Subscribe(ctx context.Context, conversation string, after uint64, opts ...SubscribeOption) (*Subscription, error) {
	var o subscribeOptions
	for _, opt := range opts {
		opt(&o)
	}
	req := protocol.Subscribe{Conversation: conversation, After: after, CreatedAt: o.createdAt}
	s := &Subscription{c: c, conversation: conversation, ch: make(chan protocol.Event, c.opts.Buffer),
		ended: make(chan struct{}), last: after, createdAt: req.CreatedAt}
	c.mu.Lock()
	old := c.subs[conversation]
	c.subs[conversation] = s
	c.mu.Unlock()
	if old != nil {
		old.end(errors.New("client: subscribed again"))
	}
	req.ID = c.requestID()
	var reply protocol.Subscribed
	ws, err := c.callOn(ctx, req.ID, &req, true, &reply, nil)
	if err != nil {
		if !req.CreatedAt.IsZero() && protocol.AsError(err).Code == protocol.CodeNotFound {
			// The conversation created then is gone, as when a
			// resubscription finds it gone.
			err = fmt.Errorf("%w: %w", ErrDeleted, err)
		}
		c.drop(s, err)
		if ws == nil && old != nil {
			// A refused subscribe leaves the connection following the
			// conversation for old, which is ended: undo that too.
			c.mu.Lock()
			ws = c.ws
			c.mu.Unlock()
		}
		if ws != nil {
			// The gateway may have taken the subscribe: undo it.
			c.unfollow(ws, conversation)
		}
		return nil, err
	}
	s.remember(reply.CreatedAt)
	return s, nil
}

// SubscribeOption is an optional argument of Subscribe.
type SubscribeOption func(*subscribeOptions)

type subscribeOptions struct {
	createdAt time.Time
}

// CreatedAt names the conversation Subscribe follows by its creation time,
// as a Subscription's CreatedAt gave it: Subscribe's after counts that
// conversation's events, and if the id names another one now, Subscribe
// returns ErrDeleted. The zero time names whichever has the id.
func CreatedAt(t time.Time) SubscribeOption {
	return func(o *subscribeOptions) { o.createdAt = t }
}

// resubscribe subscribes ws again to s after the last event s delivered,
// and to the conversation created when its first subscribed reply said,
// unless s was closed (or replaced) meanwhile: the subscribe would follow
// the conversation after Close's unsubscribe, for nobody.
// A temporary error (busy, unavailable, internal: the gateway is
// overloaded or restarting) is retried on ws after a growing backoff,
// while ws is the client's connection and s is subscribed; the next
// connection subscribes s again anyway. A conversation that is not found
// now (also when its id names a conversation created since: the gateway
// checks the created_at), or whose log ends before s's last event
// (bad_request, from a gateway that does not check created_at), was
// deleted while the client was away, and maybe created again under its
// id: s ends with ErrDeleted, as it does when the deletion happens while
// connected.
// Any other error ends s with it.
func (c *Client) resubscribe(ws *websocket.Conn, s *Subscription) {
	for attempt := 0; c.sub(s.conversation) == s; attempt++ {
		s.mu.Lock()
		after, created := s.last, s.createdAt
		s.mu.Unlock()
		id := c.requestID()
		r := c.roundTrip(c.ctx, ws, id, &protocol.Subscribe{ID: id, Conversation: s.conversation, After: after, CreatedAt: created}, nil)
		if r.err != nil {
			return
		}
		if r.typ != protocol.ReplyError {
			var reply protocol.Subscribed
			if json.Unmarshal(r.data, &reply) == nil {
				s.remember(reply.CreatedAt)
			}
			return
		}
		var e protocol.Error
		_ = json.Unmarshal(r.data, &e)
		var err error = &e
		switch e.Code {
		case protocol.CodeBusy, protocol.CodeUnavailable, protocol.CodeInternal:
			c.opts.Logger.Debug("client: resubscription refused; retrying", "conversation", s.conversation, "err", err)
			if !c.sleep(backoff(c.opts.MinBackoff, c.opts.MaxBackoff, attempt)) {
				return
			}
			continue
		case protocol.CodeNotFound, protocol.CodeBadRequest:
			err = fmt.Errorf("%w: %w", ErrDeleted, err)
		}
		c.drop(s, err)
		return
	}
}

// remember keeps created, a subscribed reply's created_at, unless s has
// one already: the first reply names the conversation s follows.
func (s *Subscription) remember(created time.Time) {
	s.mu.Lock()
	if s.createdAt.IsZero() {
		s.createdAt = created
	}
	s.mu.Unlock()
}

// deliver hands ev to s's reader if it is the event after s.last. It
// never waits: when s's buffer is full it drops ev, and s is behind until
// its reader has taken the buffered events (see caughtUp).
func (s *Subscription) deliver(ev protocol.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// A subscribe's events come gapless from its after, but a send
	// subscribes the connection from the live edge: events further on
	// that come before the replay (a send written before the
	// resubscription) come again after it.
	if ev.Seq != s.last+1 {
		return
	}
	select {
	case s.ch <- ev:
		// Only a subscription made since the drop sends the event
		// after last again: s has caught up.
		s.last, s.behind = ev.Seq, false
	default:
		s.behind = true
	}
}

// caughtUp subscribes the client's connection to s again after s.last
// when s is behind and its reader has taken every buffered event.
func (s *Subscription) caughtUp() {
	s.mu.Lock()
	resume := s.behind && len(s.ch) == 0
	if resume {
		s.behind = false
	}
	s.mu.Unlock()
	if !resume {
		return
	}
	c := s.c
	c.mu.Lock()
	ws := c.ws
	c.mu.Unlock()
	if ws != nil { // else the next connection subscribes s again
		go c.resubscribe(ws, s)
	}
}

// drop removes s from c and ends it with err.
func (c *Client) drop(s *Subscription, err error) {
	c.mu.Lock()
	if c.subs[s.conversation] == s {
		delete(c.subs, s.conversation)
	}
	c.mu.Unlock()
	s.end(err)
}

func (s *Subscription) end(err error) {
	s.once.Do(func() {
		s.err = err
		close(s.ended)
	})
}

// Next returns the next event. After the subscription ends (Close,
// ErrDeleted, ErrClosed, …) it returns the events still buffered, then the
// reason it ended.
func (s *Subscription) Next(ctx context.Context) (protocol.Event, error) {
	select {
	case ev := <-s.ch:
		s.caughtUp()
		return ev, nil
	case <-s.ended:
		select {
		case ev := <-s.ch:
			return ev, nil
		default:
			return protocol.Event{}, s.err
		}
	case <-ctx.Done():
		return protocol.Event{}, ctx.Err()
	}
}

// Conversation is the id of the conversation s follows.
func (s *Subscription) Conversation() string { return s.conversation }

// CreatedAt is the creation time of the conversation s follows, from the
// gateway's subscribed reply (or the CreatedAt given to Subscribe): with
// the conversation's id and the seq of the last event it handled, it is
// the position a program saves to resume with Subscribe and CreatedAt
// after a restart. It is zero from a gateway that does not send it.
func (s *Subscription) CreatedAt() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.createdAt
}

// Close stops s: the gateway stops sending its events, and Next returns
// ErrClosed once the buffered ones are read.
func (s *Subscription) Close() error {
	c := s.c
	c.drop(s, ErrClosed)
	c.mu.Lock()
	ws := c.ws
	c.mu.Unlock()
	if ws == nil {
		return nil // closed or reconnecting: the next connection does not subscribe s
	}
	id := c.requestID()
	r := c.roundTrip(c.ctx, ws, id, &protocol.Unsubscribe{ID: id, Conversation: s.conversation}, nil)
	if r.err != nil && !errors.Is(r.err, errLost) && !errors.Is(r.err, ErrClosed) {
		return r.err
	}
	return nil
}
