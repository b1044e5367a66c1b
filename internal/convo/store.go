package convo

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/chatgateway/gateway/internal/metrics"
	"github.com/chatgateway/gateway/protocol"
)

// Bucket layout:
//
//	convos/<id>/meta            JSON meta
//	convos/<id>/events/<seq>    JSON event, exactly as sent to clients
//	convos/<id>/messages/<seq>  JSON message (user and assistant)
//	convos/<id>/cmids/<key>     seq of the message stored with that client_msg_id
//	owners/<user>/<id>          empty: the index behind list
//
// Seqs are 8-byte big-endian so that cursors walk them in order.
var (
	bucketConvos   = []byte("convos")
	bucketOwners   = []byte("owners")
	bucketEvents   = []byte("events")
	bucketMessages = []byte("messages")
	bucketCMIDs    = []byte("cmids")
	keyMeta        = []byte("meta")
)

// committed is one stored event, handed to the hubs after its commit.
type committed struct {
	conversation string
	typ          string
	seq          uint64
	frame        []byte
	born         time.Time // see Frame.Born
}

// op is one unit of work for the commit loop. apply runs inside the shared
// write transaction; it must return a *protocol.Error before writing
// anything when it refuses (that op alone fails), while any other error
// aborts the whole batch.
type op struct {
	apply func(b *batch) error
	done  chan error
}

// store is the durable event log: one bbolt file and a commit loop that
// groups every queued op into one transaction, so that many appends share
// one fsync. It is the seam for a clustered log: append an event and learn
// its seq (do), and read the events after a seq (readEvents).
type store struct {
	db       *bolt.DB
	onCommit func([]committed) // called by the loop after each commit, in seq order
	now      func() time.Time
	metrics  *metrics.Metrics
	mu       sync.Mutex
	// failCommit, when set, makes every commit fail with its error: the
	// seam through which tests inject storage faults.
	failCommit func() error
	// commits and ops count transactions and the ops they carried.
	commits, ops uint64
	queue        []*op
	stopped      bool
	wake         chan struct{} // capacity 1: "the queue is not empty"
	exited       chan struct{}
}

// openStore opens the bbolt file at path, waiting at most timeout for its
// lock, and starts the commit loop.
func openStore(path string, timeout time.Duration, m *metrics.Metrics, onCommit func([]committed)) (*store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, NoFreelistSync: true, FreelistType: bolt.FreelistMapType})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("convo: database %s is in use by another process (waited %s for its lock)", path, timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("convo: open database %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketConvos, bucketOwners} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("convo: prepare database %s: %w", path, err)
	}
	s := &store{db: db, onCommit: onCommit, now: func() time.Time { return time.Now().UTC() }, metrics: m,
		wake: make(chan struct{}, 1), exited: make(chan struct{})}
	go s.loop()
	return s, nil
}

// do queues apply for the next commit and waits until it is durable (or
// refused). The wait is not cut short by a context: once queued, an op is
// committed or failed within one commit.
func (s *store) do(apply func(b *batch) error) error {
	o := &op{apply: apply, done: make(chan error, 1)}
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return ErrClosed
	}
	s.queue = append(s.queue, o)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return <-o.done
}

// loop commits whatever is queued as soon as the previous commit is done:
// no timer, so a lone append pays one fsync and a busy gateway shares each
// fsync among everything that queued while the last one ran.
func (s *store) loop() {
	defer close(s.exited)
	for range s.wake {
		s.mu.Lock()
		ops := s.queue
		s.queue = nil
		stopped := s.stopped
		fail := s.failCommit
		if len(ops) > 0 {
			s.commits++
			s.ops += uint64(len(ops))
		}
		s.mu.Unlock()
		if len(ops) > 0 {
			s.commit(ops, fail)
		}
		if stopped {
			return
		}
	}
}

// commit applies ops in one transaction, publishes the stored events, then
// completes each op.
func (s *store) commit(ops []*op, fail func() error) {
	b := &batch{now: s.now(), metas: map[string]*meta{}, dirty: map[string]bool{}}
	errs := make([]error, len(ops))
	start := time.Now()
	err := s.db.Update(func(tx *bolt.Tx) error {
		b.tx = tx
		for i, o := range ops {
			err := o.apply(b)
			var perr *protocol.Error
			if errors.As(err, &perr) {
				errs[i] = err
				continue
			}
			if err != nil {
				return err
			}
		}
		if err := b.flush(); err != nil {
			return err
		}
		if fail != nil {
			return fail()
		}
		return nil
	})
	if err != nil {
		err = fmt.Errorf("%w (%w)", ErrUnavailable, err)
		for _, o := range ops {
			o.done <- err
		}
		return
	}
	s.metrics.CommitSeconds.Observe(time.Since(start).Seconds())
	s.metrics.CommitOps.Observe(float64(len(ops)))
	for _, c := range b.out {
		s.metrics.Events.WithLabelValues(c.typ).Inc()
	}
	if len(b.out) > 0 {
		s.onCommit(b.out)
	}
	for i, o := range ops {
		o.done <- errs[i]
	}
}

// setFailCommit makes every later commit fail with fail's error (nil: heal).
func (s *store) setFailCommit(fail func() error) {
	s.mu.Lock()
	s.failCommit = fail
	s.mu.Unlock()
}

// stats returns how many transactions the loop committed and how many ops
// they carried.
func (s *store) stats() (commits, ops uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commits, s.ops
}

// close stops the commit loop after the queued ops and closes the file.
func (s *store) close() error {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return nil
	}
	s.stopped = true
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	<-s.exited
	return s.db.Close()
}

// batch is the state of one commit: the transaction, its time, and the
// conversations' metadata, read once and written once per batch.
type batch struct {
	tx    *bolt.Tx
	now   time.Time
	metas map[string]*meta // nil value: deleted in this batch
	dirty map[string]bool  // metas to write back
	out   []committed
}

// meta returns the metadata of conversation id for update, or ErrNotFound.
func (b *batch) meta(id string) (*meta, error) {
	if m, ok := b.metas[id]; ok {
		if m == nil {
			return nil, ErrNotFound
		}
		return m, nil
	}
	m, err := readMeta(b.tx, id)
	if err != nil {
		return nil, err
	}
	b.metas[id] = m
	return m, nil
}

// owned returns the metadata of conversation id for update if it belongs
// to user; other users get ErrNotFound, as if it did not exist.
func (b *batch) owned(user, id string) (*meta, error) {
	m, err := b.meta(id)
	if err != nil {
		return nil, err
	}
	if m.Owner != user {
		return nil, ErrNotFound
	}
	return m, nil
}

// create stores a new conversation described by m.
func (b *batch) create(m *meta) error {
	if _, err := b.meta(m.ID); err == nil {
		return ErrExists
	}
	cb, err := b.tx.Bucket(bucketConvos).CreateBucket([]byte(m.ID))
	if err != nil {
		return err
	}
	for _, name := range [][]byte{bucketEvents, bucketMessages, bucketCMIDs} {
		if _, err := cb.CreateBucket(name); err != nil {
			return err
		}
	}
	ob, err := b.tx.Bucket(bucketOwners).CreateBucketIfNotExists([]byte(m.Owner))
	if err != nil {
		return err
	}
	if err := ob.Put([]byte(m.ID), nil); err != nil {
		return err
	}
	m.CreatedAt, m.UpdatedAt = b.now, b.now
	b.metas[m.ID] = m
	b.dirty[m.ID] = true
	return nil
}

// remove deletes conversation m with its whole log.
func (b *batch) remove(m *meta) error {
	if err := b.tx.Bucket(bucketConvos).DeleteBucket([]byte(m.ID)); err != nil {
		return err
	}
	if ob := b.tx.Bucket(bucketOwners).Bucket([]byte(m.Owner)); ob != nil {
		if err := ob.Delete([]byte(m.ID)); err != nil {
			return err
		}
	}
	b.metas[m.ID] = nil
	delete(b.dirty, m.ID)
	return nil
}

// append stores ev as the next event of conversation m: it assigns seq and
// time, stores the message it carries, and updates m.
func (b *batch) append(m *meta, ev *protocol.Event) error {
	return b.appendBorn(m, ev, time.Time{})
}

// appendBorn is append for an event made from model chunks, the first of
// which arrived at born.
func (b *batch) appendBorn(m *meta, ev *protocol.Event, born time.Time) error {
	cb := b.tx.Bucket(bucketConvos).Bucket([]byte(m.ID))
	ev.Conversation = m.ID
	ev.Seq = m.LastSeq + 1
	ev.TS = b.now
	key := seqKey(ev.Seq)
	if ev.Message != nil {
		ev.Message.Seq = ev.Seq
		ev.Message.CreatedAt = b.now
		msg, err := json.Marshal(ev.Message)
		if err != nil {
			return err
		}
		if err := cb.Bucket(bucketMessages).Put(key, msg); err != nil {
			return err
		}
	}
	frame, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	if err := cb.Bucket(bucketEvents).Put(key, frame); err != nil {
		return err
	}
	m.apply(ev)
	b.dirty[m.ID] = true
	b.out = append(b.out, committed{conversation: m.ID, typ: ev.Type, seq: ev.Seq, frame: frame, born: born})
	return nil
}

// flush writes the metadata of every conversation the batch changed.
func (b *batch) flush() error {
	for id := range b.dirty {
		m := b.metas[id]
		data, err := json.Marshal(m)
		if err != nil {
			return err
		}
		if err := b.tx.Bucket(bucketConvos).Bucket([]byte(id)).Put(keyMeta, data); err != nil {
			return err
		}
	}
	return nil
}

// clientMsgSeq returns the seq of the message stored in conversation id
// with client_msg_id key, or 0.
func (b *batch) clientMsgSeq(id, key string) uint64 {
	v := b.tx.Bucket(bucketConvos).Bucket([]byte(id)).Bucket(bucketCMIDs).Get([]byte(key))
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func (b *batch) putClientMsgSeq(id, key string, seq uint64) error {
	return b.tx.Bucket(bucketConvos).Bucket([]byte(id)).Bucket(bucketCMIDs).Put([]byte(key), seqKey(seq))
}

func seqKey(seq uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], seq)
	return k[:]
}

func readMeta(tx *bolt.Tx, id string) (*meta, error) {
	cb := tx.Bucket(bucketConvos).Bucket([]byte(id))
	if cb == nil {
		return nil, ErrNotFound
	}
	var m meta
	if err := json.Unmarshal(cb.Get(keyMeta), &m); err != nil {
		return nil, fmt.Errorf("convo: conversation %s: corrupt metadata: %w", id, err)
	}
	return &m, nil
}

// readMessage returns the message stored at seq in conversation id.
func readMessage(tx *bolt.Tx, id string, seq uint64) (*protocol.Message, error) {
	v := tx.Bucket(bucketConvos).Bucket([]byte(id)).Bucket(bucketMessages).Get(seqKey(seq))
	if v == nil {
		return nil, fmt.Errorf("convo: conversation %s: no message at seq %d", id, seq)
	}
	var msg protocol.Message
	if err := json.Unmarshal(v, &msg); err != nil {
		return nil, fmt.Errorf("convo: conversation %s: corrupt message %d: %w", id, seq, err)
	}
	return &msg, nil
}

// meta reads conversation id's metadata.
func (s *store) meta(id string) (*meta, error) {
	var m *meta
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		m, err = readMeta(tx, id)
		return err
	})
	return m, err
}

// getMeta reads conversation id's metadata, checking it belongs to user.
func (s *store) getMeta(user, id string) (*meta, error) {
	m, err := s.meta(id)
	if err != nil {
		return nil, err
	}
	if m.Owner != user {
		return nil, ErrNotFound
	}
	return m, nil
}

// lastSeq returns the seq of the newest stored event of conversation id
// (0 when it does not exist).
func (s *store) lastSeq(id string) uint64 {
	var last uint64
	_ = s.db.View(func(tx *bolt.Tx) error {
		if m, err := readMeta(tx, id); err == nil {
			last = m.LastSeq
		}
		return nil
	})
	return last
}

// readEvents returns up to limit encoded events of conversation id with
// after < seq ≤ upTo (upTo 0: no upper bound), in order.
func (s *store) readEvents(id string, after, upTo uint64, limit int) ([][]byte, error) {
	var out [][]byte
	err := s.db.View(func(tx *bolt.Tx) error {
		cb := tx.Bucket(bucketConvos).Bucket([]byte(id))
		if cb == nil {
			return ErrNotFound
		}
		c := cb.Bucket(bucketEvents).Cursor()
		for k, v := c.Seek(seqKey(after + 1)); k != nil && len(out) < limit; k, v = c.Next() {
			if upTo > 0 && binary.BigEndian.Uint64(k) > upTo {
				break
			}
			out = append(out, append([]byte(nil), v...))
		}
		return nil
	})
	return out, err
}

// readMessages returns up to limit messages of conversation id with seq <
// before (before 0: the newest), oldest first, and whether older ones remain.
func (s *store) readMessages(id string, before uint64, limit int) ([]protocol.Message, bool, error) {
	msgs := []protocol.Message{}
	more := false
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketConvos).Bucket([]byte(id)).Bucket(bucketMessages).Cursor()
		var k, v []byte
		if before == 0 {
			k, v = c.Last()
		} else {
			c.Seek(seqKey(before))
			k, v = c.Prev()
		}
		for ; k != nil; k, v = c.Prev() {
			if len(msgs) == limit {
				more = true
				break
			}
			var m protocol.Message
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("convo: conversation %s: corrupt message: %w", id, err)
			}
			msgs = append(msgs, m)
		}
		return nil
	})
	for i, j := 0, len(msgs)-1; i < j; i, j = i+1, j-1 {
		msgs[i], msgs[j] = msgs[j], msgs[i]
	}
	return msgs, more, err
}

// allMessages returns every message of conversation id in seq order.
func (s *store) allMessages(id string) ([]protocol.Message, error) {
	var msgs []protocol.Message
	err := s.db.View(func(tx *bolt.Tx) error {
		cb := tx.Bucket(bucketConvos).Bucket([]byte(id))
		if cb == nil {
			return ErrNotFound
		}
		return cb.Bucket(bucketMessages).ForEach(func(_, v []byte) error {
			var m protocol.Message
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("convo: conversation %s: corrupt message: %w", id, err)
			}
			msgs = append(msgs, m)
			return nil
		})
	})
	return msgs, err
}

// list returns user's conversations, most recently updated first.
func (s *store) list(user string) ([]protocol.Conversation, error) {
	out := []protocol.Conversation{}
	err := s.db.View(func(tx *bolt.Tx) error {
		ob := tx.Bucket(bucketOwners).Bucket([]byte(user))
		if ob == nil {
			return nil
		}
		return ob.ForEach(func(k, _ []byte) error {
			m, err := readMeta(tx, string(k))
			if err != nil {
				return err
			}
			out = append(out, m.Conversation)
			return nil
		})
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].UpdatedAt.After(out[j].UpdatedAt) })
	return out, err
}

// unfinished returns the metadata of every conversation with an open or a
// pending turn, for recovery at start-up.
func (s *store) unfinished() ([]*meta, error) {
	var out []*meta
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketConvos).ForEachBucket(func(k []byte) error {
			m, err := readMeta(tx, string(k))
			if err != nil {
				return err
			}
			if m.OpenTurn != nil || len(m.Pending) > 0 {
				out = append(out, m)
			}
			return nil
		})
	})
	return out, err
}
