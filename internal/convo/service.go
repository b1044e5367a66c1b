package convo

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/chatgateway/gateway/internal/metrics"
	"github.com/chatgateway/gateway/protocol"
)

// Defaults for the zero values of Config.
const (
	DefaultMaxTextBytes   = 64 << 10
	DefaultMaxQueuedTurns = 16
	DefaultOpenTimeout    = 2 * time.Second
)

// Service owns the conversations: their store, hubs and turns. Every method
// is safe for concurrent use. user is the caller's id; a conversation
// belongs to the user who created it, and other users get ErrNotFound, as
// if it did not exist.
type Service struct {
	cfg   Config
	log   *slog.Logger
	model Model
	st    *store

	// turnCtx is the parent of every turn; stopTurns ends them all.
	turnCtx   context.Context
	stopTurns context.CancelCauseFunc
	turns     sync.WaitGroup

	mu   sync.Mutex // guards hubs, draining and closed; taken before any hub's mu
	hubs map[string]*hub
	// draining stops new turns from starting; closed also stops sends.
	draining, closed bool
}

// Open opens (or creates) the bbolt file at path, ends turns a crash left
// open with stop reason "interrupted", restarts queued turns, and returns
// a running Service. A file locked by another process fails within
// cfg.OpenTimeout.
func Open(path string, model Model, cfg Config) (*Service, error) {
	if cfg.MaxTextBytes <= 0 {
		cfg.MaxTextBytes = DefaultMaxTextBytes
	}
	if cfg.MaxQueuedTurns <= 0 {
		cfg.MaxQueuedTurns = DefaultMaxQueuedTurns
	}
	if cfg.OpenTimeout <= 0 {
		cfg.OpenTimeout = DefaultOpenTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New()
	}
	s := &Service{cfg: cfg, log: cfg.Logger, model: model, hubs: map[string]*hub{}}
	s.turnCtx, s.stopTurns = context.WithCancelCause(context.Background())
	st, err := openStore(path, cfg.OpenTimeout, cfg.Metrics, s.dispatch)
	if err != nil {
		return nil, err
	}
	s.st = st
	unfinished, err := st.unfinished()
	if err != nil {
		st.close()
		return nil, fmt.Errorf("convo: recover: %w", err)
	}
	for _, m := range unfinished {
		if m.OpenTurn != nil {
			if err := s.recoverTurn(m); err != nil {
				st.close()
				return nil, err
			}
		}
	}
	for _, m := range unfinished {
		if len(m.Pending) > 0 {
			h := s.acquire(m.ID)
			s.kick(h)
			s.release(h)
		}
	}
	return s, nil
}

// Close ends running turns as "interrupted" (stored), stops the commit loop
// and closes the database. If ctx ends first, Close closes the database
// anyway and returns ctx's error.
func (s *Service) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.stopTurns(errShutdown)
	err := s.waitTurns(ctx)
	if err != nil {
		err = fmt.Errorf("convo: close: %w", err)
	}
	if cerr := s.st.close(); cerr != nil && err == nil {
		err = fmt.Errorf("convo: close database: %w", cerr)
	}
	return err
}

// Drain lets the running turns finish, starting no new ones, until they
// are done or ctx ends (then it returns ctx's error). Queued turns stay
// stored and run at the next start. Call Close after Drain.
func (s *Service) Drain(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	s.mu.Unlock()
	return s.waitTurns(ctx)
}

// waitTurns waits until no turn runs or ctx ends.
func (s *Service) waitTurns(ctx context.Context) error {
	waited := make(chan struct{})
	go func() {
		s.turns.Wait()
		close(waited)
	}()
	select {
	case <-waited:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("turns still running: %w", ctx.Err())
	}
}

// dispatch hands each committed batch to the hubs of its conversations. The
// commit loop calls it in commit order.
func (s *Service) dispatch(events []committed) {
	for i := 0; i < len(events); {
		j := i + 1
		for j < len(events) && events[j].conversation == events[i].conversation {
			j++
		}
		s.mu.Lock()
		h := s.hubs[events[i].conversation]
		s.mu.Unlock()
		if h != nil && h.publish(events[i:j]) > 0 {
			s.releaseIfIdle(h)
		}
		i = j
	}
}

// acquire returns the hub of conversation id, creating it at the log's
// current end, and holds it until release.
func (s *Service) acquire(id string) *hub {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.hubs[id]
	if h == nil {
		h = &hub{id: id, metrics: s.cfg.Metrics, subs: map[Subscriber]uint64{}, last: s.st.lastSeq(id)}
		s.hubs[id] = h
		s.cfg.Metrics.Hubs.Inc()
	}
	h.mu.Lock()
	h.refs++
	h.mu.Unlock()
	return h
}

// release undoes acquire and drops the hub when nothing uses it.
func (s *Service) release(h *hub) {
	h.mu.Lock()
	h.refs--
	h.mu.Unlock()
	s.releaseIfIdle(h)
}

func (s *Service) releaseIfIdle(h *hub) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.idle() && s.hubs[h.id] == h {
		s.dropHub(h)
	}
}

// dropHub forgets h. Call with s.mu held.
func (s *Service) dropHub(h *hub) {
	delete(s.hubs, h.id)
	s.cfg.Metrics.Hubs.Dec()
}

// kick starts a turn runner for h unless one is running.
func (s *Service) kick(h *hub) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.draining {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.running != nil {
		h.kicked = true
		return
	}
	ctx, cancel := context.WithCancelCause(s.turnCtx)
	t := &turn{cancel: cancel}
	h.running = t
	s.turns.Add(1)
	go s.runTurn(ctx, h, t)
}

// turnDone clears h's running turn and, if another may be pending (the
// runner says so, or a kick came meanwhile), kicks.
func (s *Service) turnDone(h *hub, t *turn, next bool) {
	h.mu.Lock()
	if h.running == t {
		h.running = nil
		next = next || h.kicked
		h.kicked = false
	}
	h.mu.Unlock()
	if next {
		s.kick(h)
	}
	s.releaseIfIdle(h)
}

// Send stores a user message durably and returns its ack; the turn that
// answers it starts now or after the running one. An empty
// req.Conversation creates a conversation. A repeated req.ClientMsgID
// returns the first ack without storing anything. sub, when not nil, is
// subscribed to the conversation from the live edge first (if it was not
// already), so it sees its own message event and the whole reply.
func (s *Service) Send(ctx context.Context, user string, req *protocol.Send, sub Subscriber) (*protocol.Ack, error) {
	start := time.Now()
	if len(req.Text) > s.cfg.MaxTextBytes {
		return nil, protocol.Errorf(protocol.CodeTooLarge, "text: %d bytes is over the limit of %d", len(req.Text), s.cfg.MaxTextBytes)
	}
	id := req.Conversation
	create := id == ""
	if create {
		id = newID("c_")
	} else if _, err := s.st.getMeta(user, id); err != nil {
		return nil, err
	}
	h := s.acquire(id)
	defer s.release(h)
	added := sub != nil && h.addLive(sub)
	var ack *protocol.Ack
	err := s.st.do(func(b *batch) error {
		m, err := s.sendTarget(b, user, id, create)
		if err != nil {
			return err
		}
		if req.ClientMsgID != "" {
			if seq := b.clientMsgSeq(id, req.ClientMsgID); seq != 0 {
				msg, err := readMessage(b.tx, id, seq)
				if err != nil {
					return err
				}
				ack = &protocol.Ack{Type: protocol.ReplyAck, ID: req.ID, Conversation: id, Message: msg}
				return nil
			}
		}
		if len(m.Pending) >= s.cfg.MaxQueuedTurns {
			return protocol.Errorf(protocol.CodeBusy, "%d turns are already queued in this conversation", len(m.Pending))
		}
		ev := &protocol.Event{Type: protocol.EventMessage, Message: &protocol.Message{
			ID: newID("m_"), Role: protocol.RoleUser, Text: req.Text, Turn: newID("t_")}}
		if err := b.append(m, ev); err != nil {
			return err
		}
		if req.ClientMsgID != "" {
			if err := b.putClientMsgSeq(id, req.ClientMsgID, ev.Seq); err != nil {
				return err
			}
		}
		ack = &protocol.Ack{Type: protocol.ReplyAck, ID: req.ID, Conversation: id, Message: ev.Message}
		return nil
	})
	if err != nil {
		if added {
			h.unsubscribe(sub)
		}
		return nil, err
	}
	s.kick(h)
	s.cfg.Metrics.AckSeconds.Observe(time.Since(start).Seconds())
	return ack, nil
}

// sendTarget returns the conversation a send goes to, creating it if asked.
func (s *Service) sendTarget(b *batch, user, id string, create bool) (*meta, error) {
	if create {
		m := s.newMeta(user, &protocol.Create{Conversation: id})
		return m, b.create(m)
	}
	return b.owned(user, id)
}

func (s *Service) newMeta(user string, req *protocol.Create) *meta {
	m := &meta{Owner: user, Conversation: protocol.Conversation{ID: req.Conversation, Title: req.Title,
		System: req.System, Model: req.Model, MaxTokens: req.MaxTokens, Temperature: req.Temperature}}
	if m.ID == "" {
		m.ID = newID("c_")
	}
	if m.Model == "" {
		m.Model = s.cfg.DefaultModel
	}
	return m
}

// Subscribe delivers to sub every event of conversation with seq > after,
// in order, exactly once: first from the log (with sub.SendWait), then live
// (with sub.Send). ready is called with the conversation's last seq before
// the first event is delivered, so the caller can send "subscribed" first.
// It returns once sub is live. Subscribing a subscriber again starts over
// from the new after. An after beyond the last seq is a bad_request.
func (s *Service) Subscribe(ctx context.Context, user, conversation string, after uint64, sub Subscriber, ready func(last uint64)) error {
	if _, err := s.st.getMeta(user, conversation); err != nil {
		return err
	}
	h := s.acquire(conversation)
	defer s.release(h)
	return h.subscribe(ctx, s.st, after, sub, ready)
}

// Unsubscribe stops delivering conversation's events to sub. It is a no-op
// for a subscriber that is not subscribed.
func (s *Service) Unsubscribe(conversation string, sub Subscriber) {
	s.mu.Lock()
	h := s.hubs[conversation]
	s.mu.Unlock()
	if h != nil {
		h.unsubscribe(sub)
		s.releaseIfIdle(h)
	}
}

// Cancel ends the running turn of conversation with stop reason
// "cancelled", keeping its partial text. Without a running turn it does
// nothing and returns nil.
func (s *Service) Cancel(ctx context.Context, user, conversation string) error {
	if _, err := s.st.getMeta(user, conversation); err != nil {
		return err
	}
	s.stopTurn(conversation, errCancelled)
	return nil
}

// stopTurn cancels conversation's running turn, if any, with cause.
func (s *Service) stopTurn(conversation string, cause error) *hub {
	s.mu.Lock()
	h := s.hubs[conversation]
	s.mu.Unlock()
	if h == nil {
		return nil
	}
	h.mu.Lock()
	if h.running != nil {
		h.running.cancel(cause)
	}
	h.mu.Unlock()
	return h
}

// History returns up to limit stored messages with seq < before (before 0:
// the newest), oldest first.
func (s *Service) History(ctx context.Context, user, conversation string, before uint64, limit int) (*protocol.HistoryReply, error) {
	if _, err := s.st.getMeta(user, conversation); err != nil {
		return nil, err
	}
	msgs, more, err := s.st.readMessages(conversation, before, clampLimit(limit, protocol.DefaultHistoryLimit, protocol.MaxHistoryLimit))
	if err != nil {
		return nil, err
	}
	return &protocol.HistoryReply{Type: protocol.ReplyHistory, Conversation: conversation, Messages: msgs, HasMore: more}, nil
}

func clampLimit(limit, def, maxLimit int) int {
	switch {
	case limit <= 0:
		return def
	case limit > maxLimit:
		return maxLimit
	}
	return limit
}

// List returns user's conversations, most recently updated first.
func (s *Service) List(ctx context.Context, user string) ([]protocol.Conversation, error) {
	return s.st.list(user)
}

// Create makes a conversation owned by user.
func (s *Service) Create(ctx context.Context, user string, req *protocol.Create) (*protocol.Conversation, error) {
	if req.Conversation != "" && !protocol.ValidConversationID(req.Conversation) {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "conversation: invalid id")
	}
	m := s.newMeta(user, req)
	if err := s.st.do(func(b *batch) error { return b.create(m) }); err != nil {
		return nil, err
	}
	return &m.Conversation, nil
}

// Get describes one conversation.
func (s *Service) Get(ctx context.Context, user, conversation string) (*protocol.Conversation, error) {
	m, err := s.st.getMeta(user, conversation)
	if err != nil {
		return nil, err
	}
	return &m.Conversation, nil
}

// Delete cancels conversation's turn, removes it with its whole log, and
// drops its subscribers, calling Gone on each.
func (s *Service) Delete(ctx context.Context, user, conversation string) error {
	err := s.st.do(func(b *batch) error {
		m, err := b.owned(user, conversation)
		if err != nil {
			return err
		}
		return b.remove(m)
	})
	if err != nil {
		return err
	}
	if h := s.stopTurn(conversation, errDeleted); h != nil {
		// A conversation created later under the same id starts a new hub.
		s.mu.Lock()
		if s.hubs[conversation] == h {
			s.dropHub(h)
		}
		s.mu.Unlock()
		h.removeAll()
	}
	return nil
}

// Events returns up to limit encoded events with seq > after, in order. An
// after beyond the last seq is a bad_request, as for Subscribe.
func (s *Service) Events(ctx context.Context, user, conversation string, after uint64, limit int) ([]json.RawMessage, error) {
	m, err := s.st.getMeta(user, conversation)
	if err != nil {
		return nil, err
	}
	if after > m.LastSeq {
		return nil, afterBeyondEnd(after, m.LastSeq)
	}
	frames, err := s.st.readEvents(conversation, after, 0, limit)
	if err != nil {
		return nil, err
	}
	out := make([]json.RawMessage, len(frames))
	for i, f := range frames {
		out[i] = f
	}
	return out, nil
}

// PublishAction stores an action event from an external agent and
// publishes it to the conversation's subscribers.
func (s *Service) PublishAction(ctx context.Context, user, conversation string, a Action) (*protocol.Event, error) {
	if a.Name == "" {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "name: required")
	}
	for field, raw := range map[string]json.RawMessage{"input": a.Input, "output": a.Output} {
		if len(raw) > 0 && !json.Valid(raw) {
			return nil, protocol.Errorf(protocol.CodeBadRequest, "%s: not valid JSON", field)
		}
	}
	ev := &protocol.Event{Type: protocol.EventAction, Turn: a.Turn, Name: a.Name, Input: a.Input, Output: a.Output}
	err := s.st.do(func(b *batch) error {
		m, err := b.owned(user, conversation)
		if err != nil {
			return err
		}
		return b.append(m, ev)
	})
	if err != nil {
		return nil, err
	}
	return ev, nil
}
