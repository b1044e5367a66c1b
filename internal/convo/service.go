package convo

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/chatgateway/gateway/internal/metrics"
	"github.com/chatgateway/gateway/protocol"
)

// Defaults for the zero values of Config.
const (
	DefaultMaxTextBytes    = 64 << 10
	DefaultMaxQueuedTurns  = 16
	DefaultMaxWaitingTurns = 1024
	// DefaultMaxHistoryBytes is above what the largest context window of
	// a Bedrock model holds (a million tokens, about 4 MB of text).
	DefaultMaxHistoryBytes = 8 << 20
)

// Service owns the conversations: it keeps them in a Log and runs their
// hubs and turns. Every method is safe for concurrent use. user is the
// caller's id; a conversation belongs to the user who created it, and
// other users get ErrNotFound, as if it did not exist.
type Service struct {
	cfg    Config
	logger *slog.Logger
	model  Model
	log    Log
	tracer trace.Tracer

	// turnCtx is the parent of every turn; stopTurns ends them all.
	turnCtx   context.Context
	stopTurns context.CancelCauseFunc
	turns     sync.WaitGroup
	// draining stops new turns from starting (sends still queue them);
	// it is set under mu, and read without it by sends.
	draining atomic.Bool
	// historyBytes is the size of the histories hubs keep (see
	// keepHistory), at most historyCacheBytes.
	historyBytes atomic.Int64

	// calls routes answers to the tool calls that wait for them.
	calls callWaiters
	// modelCalls bounds the model calls in progress (MaxModelCalls).
	modelCalls *modelCalls
	// toolRuns bounds the tool calls running (MaxToolCalls).
	toolRuns bound
	// answerWaits bounds the tool calls waiting for an answer
	// (MaxWaitingCalls); no call waits in line for a place.
	answerWaits bound
	// runLine bounds the tool calls waiting in line for one of toolRuns
	// (MaxWaitingCalls, apart from answerWaits so that neither kind of
	// wait can starve the other); no call waits in line for a place.
	runLine bound

	mu   sync.Mutex // guards hubs and closed; taken before any hub's mu
	hubs map[string]*hub
	// closed stops new turns and sends.
	closed bool
	// notices counts the delete notices being checked (checkDeleted);
	// added to under mu while not closed, waited for by Close (they
	// end with turnCtx).
	notices sync.WaitGroup
}

// New returns a running Service on log, which it owns from then on (Close
// closes it). It first ends the turns a crash left open, with stop reason
// "interrupted", and restarts queued turns.
func New(log Log, model Model, cfg Config) (*Service, error) {
	if cfg.MaxTextBytes <= 0 {
		cfg.MaxTextBytes = DefaultMaxTextBytes
	}
	if cfg.MaxQueuedTurns <= 0 {
		cfg.MaxQueuedTurns = DefaultMaxQueuedTurns
	}
	if cfg.MaxWaitingTurns <= 0 {
		cfg.MaxWaitingTurns = DefaultMaxWaitingTurns
	}
	if cfg.MaxHistoryBytes <= 0 {
		cfg.MaxHistoryBytes = DefaultMaxHistoryBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New()
	}
	s := &Service{cfg: cfg, logger: cfg.Logger, model: model, log: log, hubs: map[string]*hub{},
		modelCalls:  newModelCalls(cfg.MaxModelCalls, cfg.MaxWaitingTurns, cfg.Metrics.ModelCallsWaiting),
		toolRuns:    newBound(cfg.MaxToolCalls, cfg.Metrics.ToolCallsWaiting),
		answerWaits: newBound(cfg.MaxWaitingCalls, nil),
		runLine:     newBound(cfg.MaxWaitingCalls, nil),
	}
	if cfg.TracerProvider != nil {
		s.tracer = cfg.TracerProvider.Tracer("github.com/chatgateway/gateway/internal/convo")
	}
	s.turnCtx, s.stopTurns = context.WithCancelCause(context.Background())
	log.Start(s.dispatch)
	if c, ok := log.(Canceller); ok {
		if err := c.OnCancel(func(id, turn string) { s.stopTurn(id, turn, errCancelled) }); err != nil {
			log.Close()
			return nil, fmt.Errorf("convo: listen for cancels: %w", err)
		}
	}
	if d, ok := log.(DeleteNotifier); ok {
		if err := d.OnDeleted(s.deletedElsewhere); err != nil {
			log.Close()
			return nil, fmt.Errorf("convo: listen for deletes: %w", err)
		}
	}
	if err := s.recover(); err != nil {
		log.Close()
		return nil, err
	}
	if l, ok := log.(Leaser); ok {
		go s.sweep(l)
	}
	return s, nil
}

// Close ends running turns as "interrupted" (stored), then closes the
// log. If ctx ends first, Close closes the log anyway and returns ctx's
// error.
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
	if err == nil {
		// The notice checks end with turnCtx too.
		err = waitGroup(ctx, &s.notices, "delete notices still checked")
	}
	if err != nil {
		err = fmt.Errorf("convo: close: %w", err)
	}
	if cerr := s.log.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("convo: close log: %w", cerr)
	}
	return err
}

// Drain lets the running turns finish, starting no new ones, until they
// are done or ctx ends (then it returns ctx's error). Queued turns stay
// stored and run at the next start. Call Close after Drain.
func (s *Service) Drain(ctx context.Context) error {
	s.mu.Lock() // kick checks draining under s.mu before it adds a runner
	s.draining.Store(true)
	s.mu.Unlock()
	return s.waitTurns(ctx)
}

// waitTurns waits until no turn runs or ctx ends.
func (s *Service) waitTurns(ctx context.Context) error {
	return waitGroup(ctx, &s.turns, "turns still running")
}

// waitGroup waits until wg is done or ctx ends, and then returns ctx's
// error, saying what was still going on.
func waitGroup(ctx context.Context, wg *sync.WaitGroup, what string) error {
	waited := make(chan struct{})
	go func() {
		wg.Wait()
		close(waited)
	}()
	select {
	case <-waited:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", what, ctx.Err())
	}
}

// owned returns conversation id's metadata if it belongs to user.
func (s *Service) owned(ctx context.Context, user, id string) (*Meta, error) {
	m, err := s.log.Meta(ctx, id)
	if err != nil {
		return nil, err
	}
	if m.Owner != user {
		return nil, ErrNotFound
	}
	return m, nil
}

// Send stores a user message durably and returns its ack; the turn that
// answers it starts now or after the running one. An empty
// req.Conversation creates a conversation. A repeated req.ClientMsgID
// returns the first ack without storing anything. sub, when not nil, is
// subscribed to the conversation from the live edge first (if it was not
// already), so it sees its own message event and the whole reply, and it
// gets the ack (with Send) before the message event. A conversation
// deleted before the message is stored is ErrNotFound, also when another
// was created under its id meanwhile: the message is not stored there.
func (s *Service) Send(ctx context.Context, user string, req *protocol.Send, sub Subscriber) (*protocol.Ack, error) {
	start := time.Now()
	if len(req.Text) > s.cfg.MaxTextBytes {
		return nil, protocol.Errorf(protocol.CodeTooLarge, "text: %d bytes is over the limit of %d", len(req.Text), s.cfg.MaxTextBytes)
	}
	a := &Append{Conversation: req.Conversation, ClientMsgID: req.ClientMsgID}
	var h *hub
	var before *Meta // the conversation as the send finds it
	if a.Conversation == "" {
		a.New = s.newMeta(user, &protocol.Create{})
		a.Conversation, before = a.New.ID, a.New
		h = s.acquire(a.Conversation)
	} else {
		// The hub first, then the check, as for a subscribe: the send's
		// subscriber and turn go to the hub of the conversation it
		// checks, never to one of a conversation deleted (and perhaps
		// created again, on another gateway whose notice has not come).
		var err error
		if h, before, err = s.acquireCurrent(a.Conversation, func() (*Meta, error) {
			return s.usable(ctx, user, a.Conversation, false)
		}); err != nil {
			return nil, err
		}
	}
	defer s.release(h)
	msgID, turnID := newID("m_"), newID("t_")
	a.Build = func(m *Meta) ([]Draft, error) {
		// Deleted since the check and made again under its id: not the
		// conversation the send was checked against (its owner, its
		// agent), nor the one its hub serves.
		if m.Owner != user || replaced(before.CreatedAt, m.CreatedAt) {
			return nil, ErrNotFound
		}
		if len(m.Pending) >= s.cfg.MaxQueuedTurns {
			return nil, protocol.Errorf(protocol.CodeBusy, "%d turns are already queued in this conversation", len(m.Pending))
		}
		msg := &protocol.Message{ID: msgID, Role: protocol.RoleUser, Text: req.Text, Turn: turnID}
		drafts := []Draft{{Event: &protocol.Event{Type: protocol.EventMessage, Message: msg}}}
		// With nothing running nor queued the turn starts in the same
		// commit: one fsync fewer before the first token.
		if m.OpenTurn == nil && len(m.Pending) == 0 && !s.draining.Load() {
			drafts = append(drafts, Draft{Event: &protocol.Event{Type: protocol.EventTurnStart, Turn: msg.Turn, Model: m.Model, Agent: m.Agent}})
		}
		return drafts, nil
	}
	added := sub != nil && h.addLive(sub)
	// The turn the send opens runs at once, its reply held back until
	// the send is stored (see earlyTurn).
	early := s.startEarly(h, before, req.Text, turnID)
	var ack *protocol.Ack
	a.Durable = func(res *Appended) {
		// First, so that the reply's first append is queued as soon as
		// possible; it is committed after this commit's events anyway.
		early.settle(res)
		msg := res.Duplicate
		if msg == nil {
			msg = res.Events[0].Message
		}
		ack = &protocol.Ack{Type: protocol.ReplyAck, ID: req.ID, Conversation: a.Conversation, Message: msg}
		if sub != nil {
			// A full queue makes sub a slow consumer, which closes itself.
			sub.Send(Frame{Data: encode(ack)})
		}
	}
	res, err := s.log.Append(ctx, a)
	early.settle(res) // if Durable did not
	if err != nil {
		if added {
			h.unsubscribe(sub)
		}
		return nil, err
	}
	if a.New != nil {
		h.createdAs(res.Meta.CreatedAt)
	}
	if early == nil || !early.opened {
		s.kick(h)
	}
	s.cfg.Metrics.AckSeconds.Observe(time.Since(start).Seconds())
	return ack, nil
}

// encode marshals a reply; the protocol types always marshal.
func encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic("convo: encoding a reply: " + err.Error())
	}
	return b
}

func (s *Service) newMeta(user string, req *protocol.Create) *Meta {
	m := &Meta{Owner: user, Conversation: protocol.Conversation{ID: req.Conversation, Title: req.Title,
		System: req.System, Model: req.Model, MaxTokens: req.MaxTokens, Temperature: req.Temperature}}
	if m.ID == "" {
		m.ID = newID("c_")
	}
	if m.Model == "" {
		m.Model = s.cfg.DefaultModel
	}
	return m
}

// Subscribe delivers to sub every event of req.Conversation with seq >
// req.After, in order, exactly once: first from the log (with
// sub.SendWait), then live (with sub.Send). ready is called with the
// subscribed reply (conversation, last seq and creation time; the caller
// sets Type and ID) before the first event is delivered, so the caller can
// send it first; its seq is never less than req.After, even when this
// gateway has not yet seen the events another stored. It returns once sub
// is live. Subscribing a subscriber again starts over from the new after.
// A req.CreatedAt other than the conversation's is ErrReplaced: the
// conversation the client knew was deleted, and req.After counts events of
// its log, not of the one that has the id now. An after beyond the last
// seq is a bad_request. Either
// leaves a subscription sub has as it was. If the conversation is deleted
// before ready is called, Subscribe returns ErrNotFound; if while its log
// replays, sub is told so (Gone) where the replay stops, and Subscribe
// returns nil.
func (s *Service) Subscribe(ctx context.Context, user string, req *protocol.Subscribe, sub Subscriber, ready func(*protocol.Subscribed)) error {
	// The hub first, then the check: a delete that the check misses
	// finds this hub and marks it deleted, which subscribe sees. Checked
	// first, a delete in between would leave sub on a new hub of the
	// deleted id, never told, and fed by whoever creates the id next.
	// So the metadata read here is that of the conversation the hub
	// replays, and its CreatedAt the one to check and to report.
	h, m, err := s.acquireCurrent(req.Conversation, func() (*Meta, error) {
		return s.owned(ctx, user, req.Conversation)
	})
	if err != nil {
		return err
	}
	defer s.release(h)
	if replaced(req.CreatedAt, m.CreatedAt) {
		return ErrReplaced
	}
	return h.subscribe(ctx, s.log, req.After, sub, func(last uint64) {
		ready(&protocol.Subscribed{Conversation: req.Conversation, Seq: last, CreatedAt: m.CreatedAt})
	})
}

// Unsubscribe stops delivering conversation's events to sub. It is a no-op
// for a subscriber that is not subscribed.
func (s *Service) Unsubscribe(conversation string, sub Subscriber) {
	if h := s.hubOf(conversation); h != nil {
		h.unsubscribe(sub)
		s.releaseIfIdle(h)
	}
}

// Subscribed reports whether sub is a live subscriber of conversation: a
// subscribe or send subscribed it, and no unsubscribe, delete or drop
// has undone that since.
func (s *Service) Subscribed(conversation string, sub Subscriber) bool {
	h := s.hubOf(conversation)
	if h == nil {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.subs.has(sub)
}

// Cancel ends the running turn of conversation with stop reason
// "cancelled", keeping its partial text: the turn open in the log, also
// when its runner has not started yet. Without a running turn it does
// nothing and returns nil. With a Log that several gateways share (a
// Canceller), the gateway that runs the turn may be another one: the
// cancel goes to every gateway, and fails as unavailable if it cannot.
func (s *Service) Cancel(ctx context.Context, user, conversation string) error {
	m, err := s.owned(ctx, user, conversation)
	if err != nil {
		return err
	}
	var open string
	if m.OpenTurn != nil {
		open = m.OpenTurn.Turn
	}
	s.stopTurn(conversation, open, errCancelled)
	if c, ok := s.log.(Canceller); ok && open != "" {
		if err := c.Cancel(ctx, conversation, open); err != nil {
			return fmt.Errorf("convo: cancel turn %s of %s on the other gateways: %w", open, conversation, err)
		}
	}
	return nil
}

// History returns up to limit stored messages with seq < before (before 0:
// the newest), oldest first; fewer when they would take more than
// protocol.MaxPageBytes.
func (s *Service) History(ctx context.Context, user, conversation string, before uint64, limit int) (*protocol.HistoryReply, error) {
	if _, err := s.owned(ctx, user, conversation); err != nil {
		return nil, err
	}
	msgs, more, err := s.log.Messages(ctx, conversation, before, clampLimit(limit, protocol.DefaultHistoryLimit, protocol.MaxHistoryLimit), protocol.MaxPageBytes)
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

// List returns a page of user's conversations, most recently updated
// first: at most limit of them (clamped as protocol.List says, and fewer
// when they would take more than protocol.MaxPageBytes) after the
// cursor before ("" for the first page), with the cursor of the next page
// in the reply's Next when more remain. A conversation updated between
// two pages moves to the first page.
func (s *Service) List(ctx context.Context, user, before string, limit int) (*protocol.ConversationsReply, error) {
	var after ListCursor
	if before != "" {
		var err error
		if after, err = parseCursor(before); err != nil {
			return nil, err
		}
	}
	page, more, err := s.log.List(ctx, user, after, clampLimit(limit, protocol.DefaultListLimit, protocol.MaxListLimit), protocol.MaxPageBytes)
	if err != nil {
		return nil, err
	}
	r := &protocol.ConversationsReply{Type: protocol.ReplyConversations, Conversations: page}
	if more && len(page) > 0 {
		r.Next = cursor(page[len(page)-1])
	}
	return r, nil
}

// Create makes a conversation owned by user.
func (s *Service) Create(ctx context.Context, user string, req *protocol.Create) (*protocol.Conversation, error) {
	if req.Conversation != "" && !protocol.ValidConversationID(req.Conversation) {
		return nil, protocol.Errorf(protocol.CodeBadRequest, "conversation: invalid id")
	}
	m := s.newMeta(user, req)
	if req.Agent != "" {
		model, err := s.agentModel(ctx, user, req.Agent)
		if err != nil {
			return nil, err
		}
		m.Agent, m.Model = req.Agent, model
	}
	res, err := s.log.Append(ctx, &Append{Conversation: m.ID, New: m, Build: func(*Meta) ([]Draft, error) { return nil, nil }})
	if err != nil {
		return nil, err
	}
	// A copy: res.Meta is the Log's.
	info := res.Meta.Conversation
	return &info, nil
}

// Get describes one conversation.
func (s *Service) Get(ctx context.Context, user, conversation string) (*protocol.Conversation, error) {
	m, err := s.owned(ctx, user, conversation)
	if err != nil {
		return nil, err
	}
	return &m.Conversation, nil
}

// Delete removes conversation with its whole log, ends its turn, and
// drops its subscribers, calling Gone on each. The turn's writes that
// follow the removal find the conversation gone (or another turn open in
// one created again under its id, which keeps its own hub, subscribers and
// turns) and end it quietly. With
// a Log that several gateways share (a DeleteNotifier), every gateway
// does the same; one that the notice cannot reach keeps its subscribers
// (logged: the delete is done) until a subscribe or a send there finds
// another conversation under the id.
func (s *Service) Delete(ctx context.Context, user, conversation string) error {
	// The creation time of the conversation deleted tells it from one
	// created again under its id before its hub is dropped here, or
	// before the notice reaches the other gateways.
	created, err := s.log.Delete(ctx, conversation, user)
	if err != nil {
		return err
	}
	s.deleted(conversation, created)
	if d, shared := s.log.(DeleteNotifier); shared {
		if err := d.NotifyDeleted(ctx, conversation, created); err != nil {
			s.logger.Warn("tell the other gateways of a delete", "conversation", conversation, "err", err)
		}
	}
	return nil
}

// Events returns up to limit encoded events with seq > after, in order,
// and the creation time of the conversation they belong to. An after
// beyond the last seq is a bad_request, as for Subscribe. A createdAt
// other than the conversation's is ErrReplaced, as for Subscribe (zero
// matches any): a reader that pages through a log passes the one its
// first page returned, so that a conversation deleted and created again
// under its id between two pages ends the reading as a plain delete does
// (not found) instead of going on in the new log. The creation time is
// read again after the events, since a delete and re-create between the
// first read and the events' would make them the new conversation's.
func (s *Service) Events(ctx context.Context, user, conversation string, createdAt time.Time, after uint64, limit int) ([]json.RawMessage, time.Time, error) {
	m, err := s.owned(ctx, user, conversation)
	if err != nil {
		return nil, time.Time{}, err
	}
	if replaced(createdAt, m.CreatedAt) {
		return nil, time.Time{}, ErrReplaced
	}
	if after > m.LastSeq {
		return nil, time.Time{}, afterBeyondEnd(after, m.LastSeq)
	}
	frames, err := s.log.Events(ctx, conversation, after, 0, limit)
	if err != nil {
		return nil, time.Time{}, err
	}
	// The conversation existed with this creation time before the read
	// and after it, and a deleted conversation never comes back: the
	// events are its.
	if now, err := s.log.Meta(ctx, conversation); err != nil {
		return nil, time.Time{}, err
	} else if replaced(m.CreatedAt, now.CreatedAt) {
		return nil, time.Time{}, ErrReplaced
	}
	out := make([]json.RawMessage, len(frames))
	for i, f := range frames {
		out[i] = f
	}
	return out, m.CreatedAt, nil
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
	res, err := s.log.Append(ctx, &Append{Conversation: conversation, Build: func(m *Meta) ([]Draft, error) {
		if m.Owner != user {
			return nil, ErrNotFound
		}
		return []Draft{{Event: &protocol.Event{Type: protocol.EventAction, Turn: a.Turn, Name: a.Name, Input: a.Input, Output: a.Output}}}, nil
	}})
	if err != nil {
		return nil, err
	}
	return res.Events[0], nil
}
