package boltlog

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

// Bucket layout: flat top-level buckets whose keys start with the
// conversation id and a 0 byte (ids never contain one), so that a commit
// touching many conversations dirties few pages:
//
//	meta      <id>                 JSON convo.Meta
//	cmids     <id> 0 <key>         seq of the message stored with that client_msg_id
//	owners    <user> 0 <id>        empty: the index behind List
//
// plus the tail, where the events are, and the runs that say which are a
// conversation's (see tail.go). Files of the first layout have a
// conversation's older events in an events bucket (<id> 0 <seq>), read
// as they are. A message (user or assistant) is read from the event
// that carries it. Files written before kept a copy of each in a
// messages bucket (<id> 0 <seq>), a page more to write per message and
// commit: it is no longer written or read, only emptied with its
// conversation.
//
// Seqs are 8-byte big-endian so that cursors walk them in order. A
// conversation's last seq is its last event's (see readMeta), so
// storing a delta writes no metadata.
var (
	bucketMeta   = []byte("meta")
	bucketEvents = []byte("events")
	bucketCMIDs  = []byte("cmids")
	bucketOwners = []byte("owners")
	allBuckets   = [][]byte{bucketMeta, bucketEvents, bucketCMIDs, bucketOwners, bucketTail, bucketRuns, bucketState}
	// bucketOldMessages is the messages bucket of files written before
	// (see above); a new file has none.
	bucketOldMessages = []byte("messages")
)

// metaCacheSize bounds the metadata the commit loop keeps decoded.
const metaCacheSize = 10000

// metaEvery is how many events may follow a conversation's stored
// metadata before an event that changes it (all but deltas and thinking)
// writes it again. Until then the metadata is its stored copy with the
// events since applied, which readMeta does. The metadata bucket is
// written at random places, one page for every conversation that writes
// its metadata in a commit: writing it every few turns instead of at
// each turn's start and end spares most of those pages; a cold read
// applies at most this many events (deltas skipped by their first bytes).
const metaEvery = 128

// Append implements convo.Log.
func (l *Log) Append(ctx context.Context, a *convo.Append) (*convo.Appended, error) {
	o := newAppendOp(ctx, a)
	if err := l.do(o); err != nil {
		return nil, err
	}
	return &o.res, nil
}

// Post implements convo.Log: the op's finish calls done.
func (l *Log) Post(ctx context.Context, a *convo.Append, done func(*convo.Appended, error)) {
	o := newAppendOp(ctx, a)
	o.done = done
	if err := l.enqueue(o); err != nil {
		done(nil, err)
	}
}

// newAppendOp returns the op that applies a.
func newAppendOp(ctx context.Context, a *convo.Append) *op {
	return &op{ctx: ctx, a: a, deferrable: a.Deferrable}
}

// Delete implements convo.Log.
func (l *Log) Delete(ctx context.Context, id, owner string) (time.Time, error) {
	var created time.Time
	err := l.do(&op{ctx: ctx, fn: func(b *batch) (error, error) {
		bm, err := b.meta(id)
		if err != nil {
			return err, nil
		}
		if bm.m.Owner != owner {
			return convo.ErrNotFound, nil
		}
		created = bm.m.CreatedAt
		return nil, b.remove(bm)
	}})
	if err != nil {
		return time.Time{}, err
	}
	return created, nil
}

// batch is the state of one commit: the transaction, its time, and the
// conversations' metadata, read once and written once per batch.
type batch struct {
	tx    *bolt.Tx
	now   time.Time
	cache *metaCache // the Log's, read-only here
	// metas are the conversations the batch read or wrote, dirty those
	// whose metadata it writes back (see flush).
	metas map[string]*batchMeta
	dirty []*batchMeta
	// free is where metas' entries are allocated, in an array that
	// batches reuse. Only the pointers in metas and dirty are used:
	// should it grow, the entries made before stay valid where they are.
	free []batchMeta
	tail tailBatch
	out  []convo.Committed
	key  []byte // the buffer keys are built in (see appendSeqKey)
}

// batchMeta is a conversation's metadata in a batch.
type batchMeta struct {
	id string
	m  *convo.Meta // nil: deleted
	// stored is the seq m's stored copy was written at (0: not known;
	// see metaEvery).
	stored uint64
	dirty  bool
	// shared says m is also the cache's or an Appended's, which nobody
	// modifies: the batch changes a copy (see own). shallow says m is the
	// batch's, but shares its open turn and pending turns with such a
	// one.
	shared, shallow bool
}

// own returns bm's metadata for the batch to apply an event of type typ
// to, copying it first if it is shared: for a stream event, which changes
// nothing but the last seq and time, only its top level (the one
// allocation of most ops), else all of it.
func (bm *batchMeta) own(typ string) *convo.Meta {
	switch {
	case streamEvent(typ) && bm.shared:
		c := *bm.m
		bm.m, bm.shared, bm.shallow = &c, false, true
	case !streamEvent(typ) && (bm.shared || bm.shallow):
		bm.m, bm.shared, bm.shallow = bm.m.Clone(), false, false
	}
	return bm.m
}

// newBatch returns the batch of a commit of n ops: l.batch, emptied of
// the last commit's. Nothing else holds what it reuses once that commit
// is done: the metadata cache copied what it keeps out of metas (see
// keep), the tail state the tail's heads (see tailState.apply), and the
// *batchMeta that appendOp and Delete use last no longer than their op.
// What the batch hands over is made anew: out becomes the committed
// function's, and the tail's refs the readers' index.
func (l *Log) newBatch(n int) *batch {
	b := &l.batch
	if b.metas == nil {
		b.metas = make(map[string]*batchMeta, n)
	}
	clear(b.metas)
	// Most ops are of a conversation no other op of the batch touches,
	// and store one event.
	*b = batch{now: l.now(), cache: l.cache, metas: b.metas, dirty: emptied(b.dirty), free: emptied(b.free), out: make([]convo.Committed, 0, n+n/4), key: b.key,
		tail: tailBatch{st: &l.tail, next: l.tail.next, heads: emptied(b.tail.heads), base: l.tails.newest(), refs: make(map[string][]tailRef, n)}}
	return b
}

// emptied returns s with no elements, for appending again to its array,
// which it zeroes whole so that it keeps nothing alive.
func emptied[S ~[]E, E any](s S) S {
	s = s[:cap(s)]
	clear(s)
	return s[:0]
}

// appendOp applies o's append within the batch, filling its result. It
// returns refused for an append that fails alone, having written nothing.
func (b *batch) appendOp(o *op) (refused, err error) {
	a, res := o.a, &o.res
	var bm *batchMeta
	if a.New != nil {
		if _, err := b.meta(a.Conversation); err == nil {
			return convo.ErrExists, nil
		}
		m := a.New.Clone()
		m.ID = a.Conversation
		// Part of the batch once created.
		bm = &batchMeta{id: m.ID, m: m}
	} else if bm, refused = b.meta(a.Conversation); refused != nil {
		return refused, nil
	}
	if a.ClientMsgID != "" {
		if seq := b.clientMsgSeq(a.Conversation, a.ClientMsgID); seq != 0 {
			msg, err := readMessage(b.snap(), a.Conversation, seq)
			if err != nil {
				return nil, err
			}
			res.Duplicate, res.Meta = msg, bm.m
			bm.shared = true
			return nil, nil
		}
	}
	// Build only reads the metadata: no copy for it.
	drafts, refused := a.Build(bm.m)
	if refused != nil {
		return refused, nil
	}
	if a.New != nil {
		if err := b.create(bm); err != nil {
			return nil, err
		}
	}
	keyed := a.ClientMsgID == ""
	switch {
	case len(drafts) == 1:
		res.Events = o.one[:0]
	case len(drafts) > 1:
		res.Events = make([]*protocol.Event, 0, len(drafts))
	}
	for _, d := range drafts {
		if err := b.append(bm, d.Event, d.Born); err != nil {
			return nil, err
		}
		if !keyed && d.Event.Message != nil {
			if err := b.putClientMsgSeq(bm.id, a.ClientMsgID, d.Event.Seq); err != nil {
				return nil, err
			}
			keyed = true
		}
		res.Events = append(res.Events, d.Event)
	}
	// The metadata as of this append is res's: a later op of the batch
	// on the same conversation changes a copy.
	res.Meta = bm.m
	bm.shared = true
	return nil, nil
}

// snap is the batch's view of the file.
func (b *batch) snap() snap { return snap{b.tx, b.refsOf} }

// meta returns the metadata of conversation id, or ErrNotFound.
func (b *batch) meta(id string) (*batchMeta, error) {
	if bm, ok := b.metas[id]; ok {
		if bm.m == nil {
			return nil, convo.ErrNotFound
		}
		return bm, nil
	}
	if c, ok := b.cache.get(id); ok {
		bm := b.put(id, c.m, c.stored)
		bm.shared = true
		return bm, nil
	}
	m, stored, err := readMeta(b.snap(), id)
	if err != nil {
		return nil, err
	}
	return b.put(id, m, stored), nil
}

// put makes m, stored at seq stored, conversation id's metadata in the
// batch.
func (b *batch) put(id string, m *convo.Meta, stored uint64) *batchMeta {
	b.free = append(b.free, batchMeta{id: id, m: m, stored: stored})
	bm := &b.free[len(b.free)-1]
	b.metas[id] = bm
	return bm
}

// markDirty has flush write bm's metadata.
func (b *batch) markDirty(bm *batchMeta) {
	if !bm.dirty {
		bm.dirty = true
		b.dirty = append(b.dirty, bm)
	}
}

// metaCache is the decoded metadata of recently written conversations, as
// of the last commit. The values are never modified: readers get copies,
// the commit loop changes copies.
type metaCache struct {
	mu sync.RWMutex
	m  map[string]cachedMeta
}

// cachedMeta is a conversation's metadata and the seq its stored copy was
// written at.
type cachedMeta struct {
	m      *convo.Meta
	stored uint64
}

func newMetaCache() *metaCache { return &metaCache{m: map[string]cachedMeta{}} }

// get returns conversation id's cached metadata, which must not be
// modified, and whether it is cached.
func (c *metaCache) get(id string) (cachedMeta, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	cm, ok := c.m[id]
	return cm, ok
}

// keep stores a committed batch's metadata (nil: deleted) and the seqs
// their stored copies were written at. The cache holds them from now on:
// the batch must not change them.
func (c *metaCache) keep(metas map[string]*batchMeta) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m)+len(metas) > metaCacheSize {
		clear(c.m)
	}
	for id, bm := range metas {
		if bm.m == nil {
			delete(c.m, id)
		} else {
			c.m[id] = cachedMeta{bm.m, bm.stored}
		}
	}
}

// create stores new conversation bm.
func (b *batch) create(bm *batchMeta) error {
	m := bm.m // a copy of Append.New
	if err := b.tx.Bucket(bucketOwners).Put(prefixed(m.Owner, []byte(m.ID)), nil); err != nil {
		return err
	}
	m.CreatedAt, m.UpdatedAt = b.now, b.now
	b.metas[bm.id] = bm
	b.markDirty(bm)
	return nil
}

// remove deletes conversation bm with its whole log.
func (b *batch) remove(bm *batchMeta) error {
	m := bm.m
	for _, name := range [][]byte{bucketEvents, bucketCMIDs, bucketOldMessages} {
		if bk := b.tx.Bucket(name); bk != nil {
			if err := deletePrefix(bk, prefix(m.ID)); err != nil {
				return err
			}
		}
	}
	if err := b.tx.Bucket(bucketMeta).Delete([]byte(m.ID)); err != nil {
		return err
	}
	if err := b.tx.Bucket(bucketOwners).Delete(prefixed(m.Owner, []byte(m.ID))); err != nil {
		return err
	}
	if err := b.deleteTail(m.ID); err != nil {
		return err
	}
	bm.m, bm.dirty = nil, false
	return nil
}

// deletePrefix deletes every key of bk that starts with p.
func deletePrefix(bk *bolt.Bucket, p []byte) error {
	return deleteFrom(bk, p, func(k []byte) bool { return bytes.HasPrefix(k, p) })
}

// deleteFrom deletes the keys of bk from the first at or after start for
// as long as while holds, in order. After a Delete the cursor's Next
// would skip a key, so it seeks the deleted key again, which finds the
// next one. Seeking start each time would be quadratic: bbolt leaves the
// leaves a commit empties in place until the commit, and such a seek
// walks past all of them.
func deleteFrom(bk *bolt.Bucket, start []byte, while func(k []byte) bool) error {
	c := bk.Cursor()
	var last []byte
	for k, _ := c.Seek(start); k != nil && while(k); k, _ = c.Seek(last) {
		last = append(last[:0], k...)
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// append stores ev as the next event of conversation bm: it assigns seq
// and time (to the message it carries too), and updates bm. born is when
// the first model chunk the event carries arrived (see convo.Draft).
func (b *batch) append(bm *batchMeta, ev *protocol.Event, born time.Time) error {
	m := bm.own(ev.Type)
	ev.Conversation = m.ID
	ev.Seq = m.LastSeq + 1
	ev.TS = b.now
	if ev.Message != nil {
		ev.Message.Seq = ev.Seq
		ev.Message.CreatedAt = b.now
	}
	// MarshalJSON directly: json.Marshal would check and compact its
	// output again, a third of the encoding's cost in the commit loop.
	frame, err := ev.MarshalJSON()
	if err != nil {
		return err
	}
	if err := b.appendTail(m.ID, ev.Seq, frame); err != nil {
		return err
	}
	if ev.Type == protocol.EventTurnEnd {
		if err := b.writeRun(m.ID); err != nil {
			return err
		}
	}
	m.Apply(ev)
	// The last seq is read back from the events, and the metadata is
	// written again only once metaEvery events followed its stored copy:
	// a streaming reply writes none, a turn mostly none.
	if !streamEvent(ev.Type) && m.LastSeq-bm.stored >= metaEvery {
		b.markDirty(bm)
	}
	b.out = append(b.out, convo.Committed{Conversation: m.ID, Type: ev.Type, Seq: ev.Seq, Frame: frame, Born: born})
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

// flush writes the metadata of every conversation the batch marked
// dirty.
func (b *batch) flush() error {
	for _, bm := range b.dirty {
		if !bm.dirty {
			continue // deleted since
		}
		data, err := json.Marshal(bm.m)
		if err != nil {
			return err
		}
		if err := b.tx.Bucket(bucketMeta).Put([]byte(bm.id), data); err != nil {
			return err
		}
		bm.stored = bm.m.LastSeq
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
	return prefixed(id, nil)
}

// prefixed is id's prefix followed by rest.
func prefixed(id string, rest []byte) []byte {
	k := make([]byte, 0, len(id)+1+len(rest))
	k = append(k, id...)
	k = append(k, 0)
	return append(k, rest...)
}

// seqKey is the key of seq in conversation id.
func seqKey(id string, seq uint64) []byte {
	return appendSeqKey(make([]byte, 0, len(id)+9), id, seq)
}

// appendSeqKey appends seqKey(id, seq) to k. The commit loop builds its
// keys in one buffer this way: Put copies the key, Get keeps nothing.
func appendSeqKey(k []byte, id string, seq uint64) []byte {
	k = append(k, id...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, seq)
}

// keySeq is the seq at the end of a key made by seqKey.
func keySeq(k []byte) uint64 {
	return binary.BigEndian.Uint64(k[len(k)-8:])
}

// readMessage returns the message stored at seq in conversation id.
func readMessage(tx snap, id string, seq uint64) (*protocol.Message, error) {
	var frame []byte
	err := walk(tx, id, seq-1, func(at uint64, f []byte) (bool, error) {
		if at == seq {
			frame = f
		}
		return false, nil
	})
	var msg *protocol.Message
	if err == nil {
		msg, err = convo.MessageOf(frame)
	}
	if err == nil && msg == nil {
		err = errors.New("no message there")
	}
	if err != nil {
		return nil, fmt.Errorf("boltlog: conversation %s: message %d: %w", id, seq, err)
	}
	return msg, nil
}
