package jetlog

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/metrics"
	"github.com/chatgateway/gateway/protocol"
)

var _ convo.Log = (*Store)(nil)

// maxRaces bounds how often one append reads the log's end again after
// losing a race with another writer.
const maxRaces = 100

// StoreOptions configure a Store. Zero values mean the documented
// defaults.
type StoreOptions struct {
	Options
	// Node names this gateway in leases (default: the host name).
	Node string
	// Logger receives the store's logs (default slog.Default()).
	Logger *slog.Logger
	// Metrics receives the store's measurements (default: a private
	// registry nobody reads).
	Metrics *metrics.Metrics
}

// Store is the convo.Log of cluster mode: conversations in JetStream,
// shared by every gateway connected to it. Each gateway serialises its
// own appends to a conversation; appends of several gateways race, and
// the loser (fenced by position) reads the new end and builds again.
type Store struct {
	log     *Log
	nc      *nats.Conn
	node    string
	claim   *nodeClaim
	logger  *slog.Logger
	metrics *metrics.Metrics
	now     func() time.Time

	// reportMu makes the committed function run on one goroutine at a
	// time.
	reportMu  sync.Mutex
	committed func([]convo.Committed)

	// done is closed by Close: follows stop trying to start.
	done chan struct{}

	mu      sync.Mutex
	closed  bool
	convs   map[string]*conv
	appends sync.WaitGroup
	// stops counts the followers being stopped.
	stops sync.WaitGroup
	// system caches conversations' system prompts, which are kept only in
	// their metadata key (not in every record), by id.
	system map[string]systemPrompt
	// ends keeps the log ends of conversations no longer in use here, by
	// id, so that the next append needs no read first. One that another
	// gateway made stale costs a fenced append and a read, as any race,
	// or, if it refuses the append, a read.
	ends map[string]*logEnd
	// tails keeps the newest record that this gateway stored, followed
	// or read of each conversation, by id, so that Meta need not read it
	// again while it is still the newest (see knownMeta).
	tails map[string]tail
	// marks keeps where scans stopped before their log's end, so that a
	// replay's next page goes on from there (see readMark).
	marks map[markKey]readMark
}

type systemPrompt struct {
	created time.Time
	text    string
}

// Bounds of the caches of system prompts and of log ends.
const (
	systemCacheSize = 10000
	endCacheSize    = 4096
)

// conv is what a Store knows of one conversation while it is in use here.
type conv struct {
	id string
	// refs counts the users that keep it in the Store's map.
	refs int

	// appendMu serialises this gateway's appends to the conversation;
	// end is the end of its log as of this gateway's last append or read
	// (nil: unknown).
	appendMu sync.Mutex
	end      *logEnd

	// repMu guards the reporting state; ownCond signals that an append's
	// own record was reported.
	repMu   sync.Mutex
	ownCond *sync.Cond
	// reported is the last seq reported to the committed function;
	// reportedPos is a position at or before the record after it.
	reported, reportedPos uint64
	// own holds the ids of this gateway's records between their ack and
	// their report by the append, which calls Durable first.
	own map[string]bool
	// created is the CreatedAt of the conversation whose events are
	// reported (zero: not known yet). A conversation deleted and created
	// again under the id is another log, whose seqs start from 1 again.
	created time.Time
	// gen counts the times reporting started afresh (a delete here, a
	// follow of another conversation under the id); followGen is the
	// generation the follower runs for. A follower of an older one
	// delivers nothing.
	gen, followGen uint64
	follows        int
	follower       *Follower
	stopping       chan struct{} // closed when the last follow stops
}

// logEnd is a conversation's newest record's position and the metadata
// after it.
type logEnd struct {
	pos  uint64
	meta *convo.Meta
}

// OpenStore connects to the NATS servers at urls (comma-separated), sets
// up the stream and buckets, claims opts.Node for this run, and returns a
// Store that owns the connection. While another run's claim on the node
// is there, it waits for it to run out (about a LeaseTTL at most), and
// fails with ErrNodeTaken if it is renewed meanwhile: another gateway
// runs under that name. natsOpts add to the connection's options
// (credentials, for one).
func OpenStore(ctx context.Context, urls string, opts StoreOptions, natsOpts ...nats.Option) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.New()
	}
	if opts.Node == "" {
		opts.Node = hostName()
	}
	all := append([]nats.Option{
		nats.Name("gateway " + opts.Node),
		// Keep trying for ever: a cut-off gateway refuses writes
		// (unavailable) until NATS is back, then carries on.
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		// While reconnecting, fail requests at once (unavailable) instead
		// of buffering them until their timeout: a client's send gets its
		// answer now, and nothing waits on a Service lock meanwhile.
		nats.ReconnectBufSize(-1),
		nats.RetryOnFailedConnect(false),
		nats.DisconnectErrHandler(func(nc *nats.Conn, err error) {
			// Close (ours) also calls this handler, with no error; a
			// connection closed for a cause has one.
			if nc.IsClosed() && err == nil {
				return
			}
			opts.Logger.Warn("NATS is unreachable: sends are refused until it is back", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			opts.Logger.Info("NATS is reachable again", "server", nc.ConnectedUrlRedacted())
		}),
	}, natsOpts...)
	nc, err := nats.Connect(urls, all...)
	if err != nil {
		return nil, fmt.Errorf("jetlog: connect to %s: %w", urls, err)
	}
	l, err := Open(ctx, nc, opts.Options)
	if err != nil {
		nc.Close()
		return nil, err
	}
	claim, err := claimNode(ctx, l, opts.Node, opts.Logger)
	if err != nil {
		nc.Close()
		return nil, err
	}
	return &Store{log: l, nc: nc, node: opts.Node, claim: claim, logger: opts.Logger, metrics: opts.Metrics,
		now: func() time.Time { return time.Now().UTC() }, done: make(chan struct{}), convs: map[string]*conv{}, system: map[string]systemPrompt{}, ends: map[string]*logEnd{},
		tails: map[string]tail{}, marks: map[markKey]readMark{}}, nil
}

// Log returns the JetStream log under the store.
func (s *Store) Log() *Log { return s.log }

// Node is the name of this gateway in leases.
func (s *Store) Node() string { return s.node }

// Ready reports whether the store reaches NATS now, and its node is still
// its own (no other gateway took the name).
func (s *Store) Ready() bool { return s.nc.IsConnected() && !s.claim.isTaken() }

// Start implements convo.Log.
func (s *Store) Start(committed func([]convo.Committed)) { s.committed = committed }

// Close waits for the appends in progress, stops following, releases the
// node's claim, and closes the connection.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	convs := make([]*conv, 0, len(s.convs))
	for _, c := range s.convs {
		convs = append(convs, c)
	}
	s.mu.Unlock()
	s.appends.Wait()
	for _, c := range convs {
		c.repMu.Lock()
		f := c.follower
		c.follower = nil
		c.repMu.Unlock()
		if f != nil {
			f.halt()
		}
	}
	s.stops.Wait()
	s.claim.release()
	s.nc.Close()
	return nil
}

// acquire returns conversation id's state, keeping it until release.
func (s *Store) acquire(id string) (*conv, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, convo.ErrClosed
	}
	c := s.convs[id]
	if c == nil {
		c = &conv{id: id, own: map[string]bool{}, end: s.ends[id]}
		c.ownCond = sync.NewCond(&c.repMu)
		s.convs[id] = c
		delete(s.ends, id)
	}
	c.refs++
	return c, nil
}

func (s *Store) release(c *conv) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c.refs--
	if c.refs == 0 && s.convs[c.id] == c {
		delete(s.convs, c.id)
		if c.end != nil {
			if len(s.ends) >= endCacheSize {
				clear(s.ends)
			}
			s.ends[c.id] = c.end
		}
	}
}

// unavailable wraps a storage failure as convo.ErrUnavailable; the
// errors convo knows pass as they are.
func unavailable(err error) error {
	switch {
	case err == nil, errors.Is(err, convo.ErrNotFound), errors.Is(err, convo.ErrExists),
		errors.Is(err, convo.ErrClosed), errors.Is(err, convo.ErrUnavailable):
		return err
	case errors.Is(err, ErrNotFound):
		return convo.ErrNotFound
	case errors.Is(err, nats.ErrMaxPayload):
		// Refused by the client before it was sent: retried, it would
		// be refused for ever, and the turn that stores it never end.
		return fmt.Errorf("%w (%w)", convo.ErrTooLarge, err)
	}
	return fmt.Errorf("%w (%w)", convo.ErrUnavailable, err)
}

// Post implements convo.Log: a goroutine waits for the Append. Appends
// to JetStream wait for the server's acknowledgement, not for a commit
// loop, so there is no loop to run done on.
func (s *Store) Post(ctx context.Context, a *convo.Append, done func(*convo.Appended, error)) {
	go func() { done(s.Append(ctx, a)) }()
}

// Append implements convo.Log.
func (s *Store) Append(ctx context.Context, a *convo.Append) (*convo.Appended, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c, err := s.acquire(a.Conversation)
	if err != nil {
		return nil, err
	}
	defer s.release(c)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, convo.ErrClosed
	}
	s.appends.Add(1)
	s.mu.Unlock()
	defer s.appends.Done()
	c.appendMu.Lock()
	defer c.appendMu.Unlock()
	res, err := s.append(ctx, c, a)
	var r refusal
	if errors.As(err, &r) {
		return nil, r.err
	}
	return res, unavailable(err)
}

// refusal carries a Build's error through append: Append returns it as
// is, not as a storage failure, which the Service would retry for ever.
type refusal struct{ err error }

func (r refusal) Error() string { return r.err.Error() }

func (s *Store) append(ctx context.Context, c *conv, a *convo.Append) (*convo.Appended, error) {
	id := a.Conversation
	if a.ClientMsgID != "" && a.New == nil {
		if dup, err := s.duplicate(ctx, id, a.ClientMsgID); err != nil || dup != nil {
			if dup != nil && a.Durable != nil {
				a.Durable(dup)
			}
			return dup, err
		}
	}
	end := c.end
	// kept: end is what an earlier append here left, which another
	// gateway may have made stale (it appended, or deleted the
	// conversation and created it again): a Build's refusal is final
	// only on an end read from the log.
	kept := end != nil && a.New == nil
	if a.New != nil {
		m := a.New.Clone()
		m.ID = id
		m.CreatedAt, m.UpdatedAt = s.now(), s.now()
		data, err := json.Marshal(m)
		if err != nil {
			return nil, err
		}
		if _, err := s.log.CreateMeta(ctx, id, m.Owner, data); err != nil {
			if errors.Is(err, ErrExists) {
				return nil, convo.ErrExists
			}
			return nil, err
		}
		if err := s.clearLeftOvers(ctx, id, m.CreatedAt); err != nil {
			// Undone, so that the conversation does not show the
			// leftovers under the new metadata; a create again clears
			// them.
			if derr := s.log.Delete(ctx, id, m.Owner); derr != nil {
				s.logger.Warn("undo a create", "conversation", id, "err", derr)
			}
			return nil, err
		}
		s.keepSystem(m)
		end = &logEnd{meta: m}
	} else if end == nil {
		var err error
		if end, err = s.end(ctx, id); err != nil {
			return nil, err
		}
	}
	for race := 0; ; race++ {
		m := end.meta.Clone()
		drafts, err := a.Build(m)
		if err != nil && kept {
			kept = false
			c.end = nil
			if end, err = s.end(ctx, id); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, refusal{err}
		}
		if len(drafts) == 0 {
			c.end = end
			res := &convo.Appended{Meta: m}
			if a.Durable != nil {
				a.Durable(res)
			}
			return res, nil
		}
		rec, evs, born, err := s.record(id, m, drafts)
		if err != nil {
			return nil, err
		}
		if a.ClientMsgID != "" {
			// Two gateways may take the same send at once (a client that
			// retried on another node): JetStream stores one of them. The
			// creation time tells a conversation from one deleted before
			// it under its id, whose records the window still knows.
			rec.Dedupe = clientMsgKey(id, a.ClientMsgID) + "." + strconv.FormatInt(m.CreatedAt.UnixNano(), 10)
		}
		if hasWork(m) && !hasWork(end.meta) {
			// Marked before the record is stored, so that no stored work
			// goes unmarked if this gateway dies next.
			if err := s.log.MarkWork(ctx, id); err != nil {
				return nil, err
			}
		}
		// Named here, not by Log.Append: the follower knows the record
		// by its id, and waits while it is marked own.
		rec.ID = nuid.Next()
		c.repMu.Lock()
		c.own[rec.ID] = true
		c.repMu.Unlock()
		start := time.Now()
		pos, err := s.log.Append(ctx, id, rec, end.pos)
		s.metrics.JetStreamPublishSeconds.Observe(time.Since(start).Seconds())
		if err != nil {
			c.disown(rec.ID)
			c.end = nil
		}
		if errors.Is(err, ErrDuplicate) {
			first, err := s.log.At(ctx, pos)
			if err != nil {
				return nil, err
			}
			dup, err := s.duplicateIn(ctx, id, first.Frames)
			if dup != nil && a.Durable != nil {
				a.Durable(dup)
			}
			return dup, err
		}
		// In flight: the end read again is the other append's, once it
		// is stored.
		if (errors.Is(err, ErrFenced) || errors.Is(err, ErrInFlight)) && race < maxRaces {
			if errors.Is(err, ErrFenced) {
				s.metrics.FencedAppends.Inc()
			}
			if end, err = s.end(ctx, id); err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		if end.pos == 0 && a.New == nil {
			if err := s.stillThere(ctx, id, m.CreatedAt); err != nil {
				c.disown(rec.ID)
				c.end = nil
				return nil, err
			}
		}
		durable := time.Now()
		rec.Pos = pos
		c.end = &logEnd{pos: pos, meta: m}
		if !hasWork(m) && hasWork(end.meta) {
			if err := s.log.ClearWork(ctx, id); err != nil {
				s.logger.Warn("clear a conversation's work mark", "conversation", id, "err", err)
			}
		}
		if a.ClientMsgID != "" {
			s.recordClientMsgID(ctx, id, a.ClientMsgID, evs)
		}
		res := &convo.Appended{Events: evs, Meta: m.Clone()}
		if a.Durable != nil {
			a.Durable(res)
		}
		s.deliver(c, rec, born, durable, 0)
		return res, nil
	}
}

// disown ends the mark of this gateway's record id, whose append failed
// or was undone: no append will report it, and the followers waiting for
// that report go on.
func (c *conv) disown(id string) {
	c.repMu.Lock()
	defer c.repMu.Unlock()
	delete(c.own, id)
	c.ownCond.Broadcast()
}

// stillThere checks, once the first record of conversation id (created
// at created) is stored, that no delete came in between: the record's
// condition, no record yet, holds for a purged subject too. If one did,
// it removes what the append left and fails as not found. A delete that
// comes after the check removes the record itself: it removes the
// metadata first, the events last. A check that cannot read passes: the
// record is stored, and it is what the conversation most likely wants.
func (s *Store) stillThere(ctx context.Context, id string, created time.Time) error {
	data, _, err := s.log.Meta(ctx, id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		s.logger.Warn("check a conversation after its first record", "conversation", id, "err", err)
		return nil
	}
	if err == nil {
		var m convo.Meta
		if json.Unmarshal(data, &m) != nil || m.CreatedAt.Equal(created) {
			return nil
		}
		// Deleted and created again: the create clears the record
		// unless it has stored its own first.
		return convo.ErrNotFound
	}
	if err := s.log.ClearWork(ctx, id); err != nil {
		s.logger.Warn("clear a deleted conversation's work mark", "conversation", id, "err", err)
	}
	if err := s.log.Clear(ctx, id); err != nil {
		// A delete again or a create under the id removes it.
		s.logger.Warn("remove a record stored after a delete", "conversation", id, "err", err)
	}
	return convo.ErrNotFound
}

// record stamps drafts as the events after m's end, applies them to m,
// and encodes them as one record.
func (s *Store) record(id string, m *convo.Meta, drafts []convo.Draft) (*Record, []*protocol.Event, []time.Time, error) {
	now := s.now()
	rec := &Record{Seq: m.LastSeq + 1}
	evs := make([]*protocol.Event, len(drafts))
	born := make([]time.Time, len(drafts))
	for i, d := range drafts {
		ev := d.Event
		ev.Conversation = id
		ev.Seq = m.LastSeq + 1
		ev.TS = now
		if ev.Message != nil {
			ev.Message.Seq = ev.Seq
			ev.Message.CreatedAt = now
		}
		frame, err := json.Marshal(ev)
		if err != nil {
			return nil, nil, nil, err
		}
		m.Apply(ev)
		rec.Frames = append(rec.Frames, frame)
		evs[i], born[i] = ev, d.Born
	}
	var err error
	rec.Meta, err = encodeMeta(m)
	return rec, evs, born, err
}

// encodeMeta is m as a record carries it: without the system prompt,
// which may be long and never changes.
func encodeMeta(m *convo.Meta) ([]byte, error) {
	c := *m
	c.System = ""
	return json.Marshal(&c)
}

// hasWork reports whether m has a turn open or waiting.
func hasWork(m *convo.Meta) bool { return m.OpenTurn != nil || len(m.Pending) > 0 }

// end reads the end of conversation id's log from the stream's leader.
func (s *Store) end(ctx context.Context, id string) (*logEnd, error) {
	last, err := s.lastKept(ctx, id)
	if err != nil {
		return nil, err
	}
	if last == nil {
		// No events yet: the metadata is as created.
		data, _, err := s.log.Meta(ctx, id)
		if err != nil {
			return nil, err
		}
		var m convo.Meta
		if err := json.Unmarshal(data, &m); err != nil {
			return nil, fmt.Errorf("jetlog: conversation %s: corrupt metadata: %w", id, err)
		}
		s.keepSystem(&m)
		return &logEnd{meta: &m}, nil
	}
	m, err := metaOf(id, last)
	if err != nil {
		return nil, err
	}
	if m.System, err = s.systemOf(ctx, m); err != nil {
		return nil, err
	}
	return &logEnd{pos: last.Pos, meta: m}, nil
}

// metaOf decodes the metadata that rec, a record of conversation id,
// carries: the conversation as of its last event.
func metaOf(id string, rec *Record) (*convo.Meta, error) {
	var m convo.Meta
	if err := json.Unmarshal(rec.Meta, &m); err != nil {
		return nil, fmt.Errorf("jetlog: conversation %s: corrupt metadata at position %d: %w", id, rec.Pos, err)
	}
	return &m, nil
}

// systemOf returns the system prompt of the conversation m describes.
func (s *Store) systemOf(ctx context.Context, m *convo.Meta) (string, error) {
	s.mu.Lock()
	sp, ok := s.system[m.ID]
	s.mu.Unlock()
	if ok && sp.created.Equal(m.CreatedAt) {
		return sp.text, nil
	}
	data, _, err := s.log.Meta(ctx, m.ID)
	if err != nil {
		return "", err
	}
	var created convo.Meta
	if err := json.Unmarshal(data, &created); err != nil {
		return "", fmt.Errorf("jetlog: conversation %s: corrupt metadata: %w", m.ID, err)
	}
	s.keepSystem(&created)
	return created.System, nil
}

func (s *Store) keepSystem(m *convo.Meta) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.system) >= systemCacheSize {
		clear(s.system)
	}
	s.system[m.ID] = systemPrompt{created: m.CreatedAt, text: m.System}
}

// clientMsgKey is the key under which conversation id records the seq of
// the message sent with client_msg_id key.
func clientMsgKey(id, key string) string {
	return "c." + token(id) + "." + base64.RawURLEncoding.EncodeToString([]byte(key))
}

// recordClientMsgID records the seq of the first message of evs under
// key. A failure is only logged: the message is stored, and a repeat of
// the send would store it again.
func (s *Store) recordClientMsgID(ctx context.Context, id, key string, evs []*protocol.Event) {
	for _, ev := range evs {
		if ev.Message == nil {
			continue
		}
		if err := s.log.PutKey(ctx, clientMsgKey(id, key), []byte(strconv.FormatUint(ev.Seq, 10))); err != nil {
			s.logger.Warn("record a client_msg_id", "conversation", id, "err", err)
		}
		return
	}
}

// duplicate returns the result of an append repeated with client message
// id key, or nil if the key is new.
func (s *Store) duplicate(ctx context.Context, id, key string) (*convo.Appended, error) {
	v, err := s.log.GetKey(ctx, clientMsgKey(id, key))
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	seq, err := strconv.ParseUint(string(v), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("jetlog: conversation %s: corrupt client_msg_id record", id)
	}
	frames, err := s.Events(ctx, id, seq-1, seq, 1)
	if err != nil {
		return nil, err
	}
	return s.duplicateIn(ctx, id, frames)
}

// duplicateIn returns the result of an append repeated with a client
// message id whose message is the first one in frames.
func (s *Store) duplicateIn(ctx context.Context, id string, frames [][]byte) (*convo.Appended, error) {
	for _, f := range frames {
		var ev protocol.Event
		if err := json.Unmarshal(f, &ev); err != nil {
			return nil, fmt.Errorf("jetlog: conversation %s: corrupt event: %w", id, err)
		}
		if ev.Message != nil {
			m, err := s.Meta(ctx, id)
			if err != nil {
				return nil, err
			}
			return &convo.Appended{Meta: m, Duplicate: ev.Message}, nil
		}
	}
	return nil, fmt.Errorf("jetlog: conversation %s: no message under a client_msg_id", id)
}
