package convo

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sort"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/chatgateway/gateway/internal/metrics"
	"github.com/chatgateway/gateway/protocol"
)

// Bucket layout: flat top-level buckets whose keys start with the
// conversation id and a 0 byte (ids never contain one), so that a commit
// touching many conversations dirties few pages:
//
//	meta      <id>                 JSON meta
//	events    <id> 0 <seq>         JSON event, exactly as sent to clients
//	messages  <id> 0 <seq>         JSON message (user and assistant)
//	cmids     <id> 0 <key>         seq of the message stored with that client_msg_id
//	owners    <user> 0 <id>        empty: the index behind list
//
// plus the tail, where replies in progress are written (see tail.go).
//
// Seqs are 8-byte big-endian so that cursors walk them in order. A
// conversation's last seq is its last event's, in events or in the tail
// (see lastEventSeq), so storing a delta writes no metadata.
var (
	bucketMeta     = []byte("meta")
	bucketEvents   = []byte("events")
	bucketMessages = []byte("messages")
	bucketCMIDs    = []byte("cmids")
	bucketOwners   = []byte("owners")
	allBuckets     = [][]byte{bucketMeta, bucketEvents, bucketMessages, bucketCMIDs, bucketOwners, bucketTail, bucketTailIdx}
)

// metaCacheSize bounds the metadata the commit loop keeps decoded.
const metaCacheSize = 10000

// committed is one stored event, handed to the hubs after its commit.
type committed struct {
	conversation string
	typ          string
	seq          uint64
	frame        []byte
	born         time.Time // see Frame.Born
	durable      time.Time // see Frame.Durable
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
	db *bolt.DB
	// onCommit is called by the commit loop after each commit, in commit
	// order, before the commit's ops are answered. It must not block nor
	// wait for the store: the next commit waits for it.
	onCommit func([]committed)
	now      func() time.Time
	metrics  *metrics.Metrics
	// cache holds decoded metadata between commits. A batch works on
	// copies and hands them back on success, so a failed commit leaves
	// the cache as the file is. Only the commit loop writes it; readers
	// use it to skip decoding (see meta).
	cache *metaCache
	// tail is the state of the tail as of the last commit; only the
	// commit loop uses it.
	tail tailState

	mu sync.Mutex
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

// BoltOptions are the options the gateway opens its bbolt file with,
// waiting at most timeout for its lock. The load generator's bare-commit
// baseline opens its file with them too, so that it times the same kind
// of commit.
func BoltOptions(timeout time.Duration) *bolt.Options {
	return &bolt.Options{Timeout: timeout, NoFreelistSync: true, FreelistType: bolt.FreelistMapType}
}

// openStore opens the bbolt file at path, waiting at most timeout for its
// lock, and starts the commit loop.
func openStore(path string, timeout time.Duration, m *metrics.Metrics, onCommit func([]committed)) (*store, error) {
	db, err := bolt.Open(path, 0o600, BoltOptions(timeout))
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("convo: database %s is in use by another process (waited %s for its lock)", path, timeout)
	}
	if err != nil {
		return nil, fmt.Errorf("convo: open database %s: %w", path, err)
	}
	var tail tailState
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		tail = loadTail(tx)
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("convo: prepare database %s: %w", path, err)
	}
	s := &store{db: db, onCommit: onCommit, now: func() time.Time { return time.Now().UTC() }, metrics: m, cache: &metaCache{m: map[string]*meta{}}, tail: tail,
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

// commit applies ops in one transaction, hands the stored events to
// onCommit, then completes each op.
func (s *store) commit(ops []*op, fail func() error) {
	b := &batch{now: s.now(), cache: s.cache, metas: map[string]*meta{}, dirty: map[string]bool{},
		tail: tailBatch{next: s.tail.next, first: map[string]uint64{}}}
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
		if err := b.truncateTail(&s.tail); err != nil {
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
	durable := time.Now()
	s.cache.keep(b.metas)
	s.tail.apply(b.tail)
	s.metrics.CommitSeconds.Observe(durable.Sub(start).Seconds())
	s.metrics.CommitOps.Observe(float64(len(ops)))
	for i := range b.out {
		b.out[i].durable = durable
		s.metrics.Events.WithLabelValues(b.out[i].typ).Inc()
	}
	if len(b.out) > 0 {
		s.onCommit(b.out)
	}
	for i, o := range ops {
		o.done <- errs[i]
	}
	// Yield, so that the goroutines this commit woke (the subscribers'
	// writers, the ops' callers) run now on this thread. Otherwise they
	// wait in its run queue while the next commit holds it in fsync, until
	// another thread wakes to take them: on the 2-vCPU VM of the README
	// that made the commit → socket time 1.5 times longer at the median
	// and up to 3 times at the 99th percentile (see docs/ARCHITECTURE.md).
	runtime.Gosched()
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
	cache *metaCache       // the store's, read-only here
	metas map[string]*meta // copies for this batch; nil value: deleted
	dirty map[string]bool  // metas to write back
	tail  tailBatch
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
	m := b.cache.get(id)
	if m == nil {
		var err error
		if m, err = readMeta(b.tx, id); err != nil {
			return nil, err
		}
	}
	b.metas[id] = m
	return m, nil
}

// metaCache is the decoded metadata of recently written conversations, as
// of the last commit. The values are never modified: get hands out copies.
type metaCache struct {
	mu sync.RWMutex
	m  map[string]*meta
}

// get returns a copy of conversation id's cached metadata, or nil.
func (c *metaCache) get(id string) *meta {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if m := c.m[id]; m != nil {
		return m.clone()
	}
	return nil
}

// keep stores a committed batch's metadata (nil: deleted).
func (c *metaCache) keep(metas map[string]*meta) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m)+len(metas) > metaCacheSize {
		clear(c.m)
	}
	for id, m := range metas {
		if m == nil {
			delete(c.m, id)
		} else {
			c.m[id] = m
		}
	}
}

// owned returns the metadata of conversation id for update if it belongs
// to user.
func (b *batch) owned(user, id string) (*meta, error) {
	return ownedBy(user)(b.meta(id))
}

// ownedBy passes on a metadata lookup's result if the conversation
// belongs to user; other users get ErrNotFound, as if it did not exist.
// Every check of ownership goes through it.
func ownedBy(user string) func(*meta, error) (*meta, error) {
	return func(m *meta, err error) (*meta, error) {
		if err != nil {
			return nil, err
		}
		if m.Owner != user {
			return nil, ErrNotFound
		}
		return m, nil
	}
}

// create stores a new conversation described by m.
func (b *batch) create(m *meta) error {
	if _, err := b.meta(m.ID); err == nil {
		return ErrExists
	}
	if err := b.tx.Bucket(bucketOwners).Put(prefixed(m.Owner, []byte(m.ID)), nil); err != nil {
		return err
	}
	m.CreatedAt, m.UpdatedAt = b.now, b.now
	b.metas[m.ID] = m
	b.dirty[m.ID] = true
	return nil
}

// remove deletes conversation m with its whole log.
func (b *batch) remove(m *meta) error {
	for _, name := range [][]byte{bucketEvents, bucketMessages, bucketCMIDs} {
		if err := deletePrefix(b.tx.Bucket(name), prefix(m.ID)); err != nil {
			return err
		}
	}
	if err := b.tx.Bucket(bucketMeta).Delete([]byte(m.ID)); err != nil {
		return err
	}
	if err := b.tx.Bucket(bucketOwners).Delete(prefixed(m.Owner, []byte(m.ID))); err != nil {
		return err
	}
	if err := b.dropTail(m.ID); err != nil {
		return err
	}
	b.metas[m.ID] = nil
	delete(b.dirty, m.ID)
	return nil
}

// deletePrefix deletes every key of bk that starts with p.
func deletePrefix(bk *bolt.Bucket, p []byte) error {
	return deleteFrom(bk, p, func(k []byte) bool { return bytes.HasPrefix(k, p) })
}

// deleteFrom deletes the keys of bk from the first at or after start for
// as long as while holds, in order.
func deleteFrom(bk *bolt.Bucket, start []byte, while func(k []byte) bool) error {
	var keys [][]byte
	c := bk.Cursor()
	for k, _ := c.Seek(start); k != nil && while(k); k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		if err := bk.Delete(k); err != nil {
			return err
		}
	}
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
	ev.Conversation = m.ID
	ev.Seq = m.LastSeq + 1
	ev.TS = b.now
	key := seqKey(m.ID, ev.Seq)
	if ev.Message != nil {
		ev.Message.Seq = ev.Seq
		ev.Message.CreatedAt = b.now
		msg, err := json.Marshal(ev.Message)
		if err != nil {
			return err
		}
		if err := b.appendOnly(bucketMessages).Put(key, msg); err != nil {
			return err
		}
	}
	frame, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	if tailEvent(ev.Type) {
		err = b.appendTail(m.ID, ev.Seq, frame)
	} else {
		err = b.appendOnly(bucketEvents).Put(key, frame)
	}
	if err != nil {
		return err
	}
	if ev.Type == protocol.EventTurnEnd {
		if err := b.moveTail(m.ID); err != nil {
			return err
		}
	}
	m.apply(ev)
	// The last seq is read back from the events; only other changes need
	// the metadata rewritten, so a streaming reply writes no metadata.
	if !tailEvent(ev.Type) {
		b.dirty[m.ID] = true
	}
	b.out = append(b.out, committed{conversation: m.ID, typ: ev.Type, seq: ev.Seq, frame: frame, born: born})
	return nil
}

// appendFill is how full bbolt fills a page before splitting it in the
// buckets where each conversation only appends: with the default (half),
// every split leaves a half-empty page behind, and more pages are written
// per commit (about 13% fewer events/s in BenchmarkAppend).
const appendFill = 0.9

// appendOnly returns the bucket name, set up for keys appended in order.
func (b *batch) appendOnly(name []byte) *bolt.Bucket {
	bk := b.tx.Bucket(name)
	bk.FillPercent = appendFill
	return bk
}

// flush writes the metadata of every conversation the batch changed.
func (b *batch) flush() error {
	for id := range b.dirty {
		data, err := json.Marshal(b.metas[id])
		if err != nil {
			return err
		}
		if err := b.tx.Bucket(bucketMeta).Put([]byte(id), data); err != nil {
			return err
		}
	}
	return nil
}

// clientMsgSeq returns the seq of the message stored in conversation id
// with client_msg_id key, or 0.
func (b *batch) clientMsgSeq(id, key string) uint64 {
	v := b.tx.Bucket(bucketCMIDs).Get(prefixed(id, []byte(key)))
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func (b *batch) putClientMsgSeq(id, key string, seq uint64) error {
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], seq)
	return b.tx.Bucket(bucketCMIDs).Put(prefixed(id, []byte(key)), v[:])
}

// prefix is the start of every key of conversation (or user) id.
func prefix(id string) []byte {
	return append([]byte(id), 0)
}

// prefixed is id's prefix followed by rest.
func prefixed(id string, rest []byte) []byte {
	return append(prefix(id), rest...)
}

// seqKey is the key of seq in conversation id.
func seqKey(id string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(prefix(id), seq)
}

// keySeq is the seq at the end of a key made by seqKey.
func keySeq(k []byte) uint64 {
	return binary.BigEndian.Uint64(k[len(k)-8:])
}

// clone returns a copy of m that shares nothing mutable with it.
func (m *meta) clone() *meta {
	c := *m
	c.Pending = slices.Clone(m.Pending)
	if m.OpenTurn != nil {
		ot := *m.OpenTurn
		c.OpenTurn = &ot
	}
	return &c
}

// readMeta reads conversation id's metadata and its last seq.
func readMeta(tx *bolt.Tx, id string) (*meta, error) {
	v := tx.Bucket(bucketMeta).Get([]byte(id))
	if v == nil {
		return nil, ErrNotFound
	}
	var m meta
	if err := json.Unmarshal(v, &m); err != nil {
		return nil, fmt.Errorf("convo: conversation %s: corrupt metadata: %w", id, err)
	}
	m.LastSeq = lastEventSeq(tx, id)
	return &m, nil
}

// lastEventSeq is the seq of conversation id's newest event: its last
// events key or its last event in the tail (0 without events).
func lastEventSeq(tx *bolt.Tx, id string) uint64 {
	var last uint64
	if refs := tailSeqs(tx, id); len(refs) > 0 {
		last = refs[len(refs)-1].seq
	}
	c := tx.Bucket(bucketEvents).Cursor()
	// The last key below the next prefix ("<id>\x01") is the newest event.
	c.Seek(append([]byte(id), 1))
	if k, _ := c.Prev(); k != nil && bytes.HasPrefix(k, prefix(id)) {
		last = max(last, keySeq(k))
	}
	return last
}

// readMessage returns the message stored at seq in conversation id.
func readMessage(tx *bolt.Tx, id string, seq uint64) (*protocol.Message, error) {
	v := tx.Bucket(bucketMessages).Get(seqKey(id, seq))
	if v == nil {
		return nil, fmt.Errorf("convo: conversation %s: no message at seq %d", id, seq)
	}
	var msg protocol.Message
	if err := json.Unmarshal(v, &msg); err != nil {
		return nil, fmt.Errorf("convo: conversation %s: corrupt message %d: %w", id, seq, err)
	}
	return &msg, nil
}

// meta reads conversation id's metadata: from the cache when the
// conversation was written lately, which is as fresh as the file (the
// cache is updated before the commit's ops are answered), else from the
// file. Only the commit loop fills the cache: a reader that did could put
// back metadata a commit had just replaced.
func (s *store) meta(id string) (*meta, error) {
	if m := s.cache.get(id); m != nil {
		return m, nil
	}
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
	return ownedBy(user)(s.meta(id))
}

// lastSeq returns the seq of the newest stored event of conversation id
// (0 when it does not exist).
func (s *store) lastSeq(id string) uint64 {
	if m := s.cache.get(id); m != nil {
		return m.LastSeq
	}
	var last uint64
	_ = s.db.View(func(tx *bolt.Tx) error {
		last = lastEventSeq(tx, id)
		return nil
	})
	return last
}

// readEvents returns up to limit encoded events of conversation id with
// after < seq ≤ upTo (upTo 0: no upper bound), in order.
func (s *store) readEvents(id string, after, upTo uint64, limit int) ([][]byte, error) {
	var out [][]byte
	p := prefix(id)
	err := s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMeta).Get([]byte(id)) == nil {
			return ErrNotFound
		}
		// Merge the events bucket and the tail, both in seq order.
		refs := tailSeqs(tx, id)
		for len(refs) > 0 && refs[0].seq <= after {
			refs = refs[1:]
		}
		tail := tx.Bucket(bucketTail)
		c := tx.Bucket(bucketEvents).Cursor()
		k, v := c.Seek(seqKey(id, after+1))
		for len(out) < limit {
			if k != nil && !bytes.HasPrefix(k, p) {
				k = nil
			}
			var seq uint64
			var frame []byte
			switch {
			case k != nil && (len(refs) == 0 || keySeq(k) < refs[0].seq):
				seq, frame = keySeq(k), v
				k, v = c.Next()
			case len(refs) > 0:
				seq, frame = refs[0].seq, tail.Get(tailKey(refs[0].g))
				if frame == nil {
					return fmt.Errorf("convo: conversation %s: event %d is missing from the tail", id, seq)
				}
				refs = refs[1:]
			default:
				return nil
			}
			if upTo > 0 && seq > upTo {
				return nil
			}
			out = append(out, bytes.Clone(frame))
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
	p := prefix(id)
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketMessages).Cursor()
		if before == 0 {
			c.Seek(append([]byte(id), 1))
		} else {
			c.Seek(seqKey(id, before))
		}
		for k, v := c.Prev(); k != nil && bytes.HasPrefix(k, p); k, v = c.Prev() {
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
	slices.Reverse(msgs)
	return msgs, more, err
}

// allMessages returns every message of conversation id in seq order.
func (s *store) allMessages(id string) ([]protocol.Message, error) {
	var msgs []protocol.Message
	p := prefix(id)
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketMessages).Cursor()
		for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			var m protocol.Message
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("convo: conversation %s: corrupt message: %w", id, err)
			}
			msgs = append(msgs, m)
		}
		return nil
	})
	return msgs, err
}

// list returns user's conversations, most recently updated first.
func (s *store) list(user string) ([]protocol.Conversation, error) {
	out := []protocol.Conversation{}
	p := prefix(user)
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketOwners).Cursor()
		for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
			m, err := readMeta(tx, string(k[len(p):]))
			if err != nil {
				return err
			}
			out = append(out, m.Conversation)
		}
		return nil
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].UpdatedAt.After(out[j].UpdatedAt) })
	return out, err
}

// unfinished returns the metadata of every conversation with an open or a
// pending turn, for recovery at start-up.
func (s *store) unfinished() ([]*meta, error) {
	var out []*meta
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).ForEach(func(k, _ []byte) error {
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
