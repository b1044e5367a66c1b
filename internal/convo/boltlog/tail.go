package boltlog

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/chatgateway/gateway/protocol"
)

// Every event is stored once, in the tail, under one global key g that
// each commit takes in order, and stays there: a commit that stores one
// chunk for each of a thousand conversations appends to the tail's last
// few pages instead of dirtying a page of each conversation.
//
//	tail      <g>                  JSON event, exactly as sent to clients
//	runs      <id> 0 <first seq>   a run: the (seq, g) pairs of consecutive events of id
//	state     "indexed"            every tail entry below this g is in a run
//
// Which entries are a conversation's is kept in memory (tailIndex: its
// (seq, g) pairs in seq order) until its turn ends: then they are
// written as one run, a few bytes an event, and leave the index. A long
// reply writes a run every runMax events, a stalled one when its
// oldest entry is tailMaxBehind entries old, so that the index stays
// small and the watermark ("indexed") moves on. At start-up the index is
// rebuilt from the tail's entries from the watermark on. Readers see the
// index as of their own transaction (see snap), so a run is never
// written for them without the index that no longer lists it.
//
// Files of the first layout moved a turn's events, when it ended, from
// the tail to an events bucket (<id> 0 <seq>: JSON event), which cost a
// random page of that bucket per turn and commit, and cut the tail's
// head once every entry there had moved. Their events bucket is read as
// it is, before the runs (its events are a conversation's oldest); the
// tail entries that had moved are deleted when such a file opens (see
// loadTail). Earlier files kept the index in a tailidx bucket; it is
// read once, and deleted.
var (
	bucketTail    = []byte("tail")
	bucketRuns    = []byte("runs")
	bucketState   = []byte("state")
	bucketTailIdx = []byte("tailidx")
	keyIndexed    = []byte("indexed")
)

// runMax is how many events a conversation's index lists before they
// are written as a run, which bounds the index and a run.
const runMax = 256

// tailMaxBehind bounds how far behind the newest entry a reply's oldest
// entry in the index may be: a reply that stalls after a few chunks while
// others stream would otherwise hold the watermark back, and with it how
// much of the tail an open reads. Such a reply's events are written as a
// run early. It is several times what a busy gateway stores while a short
// reply streams, so that most replies are written as one run.
const tailMaxBehind = 1 << 16

// streamEvent reports whether events of type typ change nothing in a
// conversation's metadata but its last seq.
func streamEvent(typ string) bool {
	return typ == protocol.EventDelta || typ == protocol.EventThinking
}

// tailKey is the tail's key for g.
func tailKey(g uint64) []byte { return binary.BigEndian.AppendUint64(nil, g) }

// tailRef is one pair of the tail index: an event's seq and its key in
// the tail.
type tailRef struct{ seq, g uint64 }

// compactRefs opens a run (and a tailidx value of files written before)
// in the compact encoding: the first pair as two uvarints, then each pair
// as the uvarint differences from the pair before. A tailidx value
// without the mark holds 8+8-byte big-endian pairs: a seq's first byte
// is 0.
const compactRefs = 0xff

// appendRefs appends refs, in seq order, to v in the compact encoding.
func appendRefs(v []byte, refs []tailRef) []byte {
	v = append(v, compactRefs)
	var prev tailRef
	for _, r := range refs {
		v = binary.AppendUvarint(v, r.seq-prev.seq)
		v = binary.AppendUvarint(v, r.g-prev.g)
		prev = r
	}
	return v
}

// tailRefs decodes a run or a tailidx value, either encoding; it stops at
// the first pair it cannot read.
func tailRefs(v []byte) []tailRef {
	if len(v) == 0 || v[0] != compactRefs {
		refs := make([]tailRef, 0, len(v)/16)
		for ; len(v) >= 16; v = v[16:] {
			refs = append(refs, tailRef{binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:])})
		}
		return refs
	}
	// Each pair takes two bytes at least.
	refs := make([]tailRef, 0, (len(v)-1)/2)
	var prev tailRef
	for v = v[1:]; len(v) > 0; {
		ds, n := binary.Uvarint(v)
		if n <= 0 {
			break
		}
		dg, m := binary.Uvarint(v[n:])
		if m <= 0 {
			break
		}
		v = v[n+m:]
		// The first pair's differences are from zero.
		prev = tailRef{prev.seq + ds, prev.g + dg}
		refs = append(refs, prev)
	}
	return refs
}

// tailState is what the commit loop remembers of the tail between
// commits: the next key, the index, the conversations' oldest entries
// in it (the lowest of which is the watermark), and the watermark
// stored.
type tailState struct {
	next uint64
	// refs is the index as of the last commit: the commit loop's own
	// copy, which it changes in place (readers use a tailIndex).
	refs map[string][]tailRef
	// heads are, in key order, the entries that became their
	// conversation's oldest one in the index. Those that no longer are
	// (written as a run since) are skipped, and dropped once at the
	// front, so that the first that still is, the lowest, is found
	// without looking at every conversation.
	heads   []tailHead
	indexed uint64
}

// tailHead is conversation id's oldest entry in the index, g, when it
// became so.
type tailHead struct {
	g  uint64
	id string
}

// oldest reports whether h is still the oldest of its conversation's
// entries refs (none: all written as runs).
func (h tailHead) oldest(refs []tailRef) bool { return len(refs) > 0 && refs[0].g == h.g }

// loadTail reads the tail's state at start-up and rebuilds its index
// from the tail's entries from the watermark on: an entry is listed if
// its seq is past its conversation's last event in a run (or in the
// events bucket of the first layout). A file of the first layout has no
// watermark: its index comes from a tailidx bucket (which goes), or from
// its whole tail, where a delete left a mark (an entry of seq 0) after
// its conversation's entries that had moved out; then every entry not
// listed, having moved out or been deleted, is deleted, and the
// watermark written.
func loadTail(tx *bolt.Tx) (tailState, map[string][]tailRef, error) {
	st := tailState{next: 1}
	refs := map[string][]tailRef{}
	tail := tx.Bucket(bucketTail)
	if k, _ := tail.Cursor().Last(); k != nil {
		st.next = binary.BigEndian.Uint64(k) + 1
	}
	mark := tx.Bucket(bucketState).Get(keyIndexed)
	if len(mark) == 8 {
		st.indexed = binary.BigEndian.Uint64(mark)
	}
	if old := tx.Bucket(bucketTailIdx); old != nil {
		_ = old.ForEach(func(k, v []byte) error {
			if r := tailRefs(v); len(r) > 0 {
				refs[string(k)] = r
			}
			return nil
		})
		if err := tx.DeleteBucket(bucketTailIdx); err != nil {
			return st, nil, err
		}
	} else if err := scanTail(tx, st.indexed, refs); err != nil {
		return st, nil, err
	}
	// The readers' index, and the commit loop's, which it changes.
	st.refs = maps.Clone(refs)
	for id, r := range refs {
		st.heads = append(st.heads, tailHead{r[0].g, id})
	}
	slices.SortFunc(st.heads, func(a, b tailHead) int { return cmp.Compare(a.g, b.g) })
	if mark == nil {
		if err := dropUnlisted(tail, refs); err != nil {
			return st, nil, err
		}
		st.indexed = st.next
		if len(st.heads) > 0 {
			st.indexed = st.heads[0].g
		}
		if err := putIndexed(tx, st.indexed); err != nil {
			return st, nil, err
		}
	}
	return st, refs, nil
}

// scanTail lists in refs the tail's entries from key from on that are
// in no run (see loadTail).
func scanTail(tx *bolt.Tx, from uint64, refs map[string][]tailRef) error {
	// last is each conversation's last seq in a run or the events bucket
	// (0: none), or -1 when it does not exist.
	last := map[string]int64{}
	c := tx.Bucket(bucketTail).Cursor()
	for k, v := c.Seek(tailKey(from)); k != nil; k, v = c.Next() {
		var ev struct {
			Conversation string `json:"conversation"`
			Seq          uint64 `json:"seq"`
		}
		if err := json.Unmarshal(v, &ev); err != nil {
			return fmt.Errorf("tail entry %d: %w", binary.BigEndian.Uint64(k), err)
		}
		id := ev.Conversation
		if ev.Seq == 0 {
			// A delete's mark: the entries before it are of the
			// conversation deleted, not of one created again under its
			// id.
			delete(refs, id)
			continue
		}
		l, ok := last[id]
		if !ok {
			l = -1
			if tx.Bucket(bucketMeta).Get([]byte(id)) != nil {
				l = int64(lastIndexedSeq(tx, id))
			}
			last[id] = l
		}
		if l >= 0 && ev.Seq > uint64(l) {
			refs[id] = append(refs[id], tailRef{ev.Seq, binary.BigEndian.Uint64(k)})
		}
	}
	return nil
}

// lastIndexedSeq is the seq of conversation id's last event in a run,
// or else in the events bucket of a file of the first layout (0: none).
// It reads the run's refs, not the tail.
func lastIndexedSeq(tx *bolt.Tx, id string) uint64 {
	if k, v := lastBefore(tx.Bucket(bucketRuns).Cursor(), id, math.MaxUint64); k != nil {
		if refs := tailRefs(v); len(refs) > 0 {
			return refs[len(refs)-1].seq
		}
	}
	if k, _ := lastBefore(tx.Bucket(bucketEvents).Cursor(), id, math.MaxUint64); k != nil {
		return keySeq(k)
	}
	return 0
}

// dropUnlisted deletes the tail's entries that refs does not list.
func dropUnlisted(tail *bolt.Bucket, refs map[string][]tailRef) error {
	listed := map[uint64]bool{}
	for _, r := range refs {
		for _, ref := range r {
			listed[ref.g] = true
		}
	}
	var dead [][]byte
	err := tail.ForEach(func(k, _ []byte) error {
		if !listed[binary.BigEndian.Uint64(k)] {
			dead = append(dead, k)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range dead {
		if err := tail.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// putIndexed stores the watermark: every tail entry below g is in a run.
func putIndexed(tx *bolt.Tx, g uint64) error {
	return tx.Bucket(bucketState).Put(keyIndexed, binary.BigEndian.AppendUint64(nil, g))
}

// tailBatch is a commit's changes to the tail state, applied to it only
// once the commit succeeded.
type tailBatch struct {
	st   *tailState // as of the last commit; read-only here
	next uint64
	// heads are the entries that became their conversation's oldest, in
	// key order (all from st.next on: after st.heads).
	heads   []tailHead
	indexed uint64
	// base is the readers' index as of the last commit; refs the
	// conversations whose entries this commit changed (nil: none left).
	base *tailIndex
	refs map[string][]tailRef
}

// refsOf returns conversation id's entries in the index as of the batch.
func (b *batch) refsOf(id string) []tailRef {
	if r, ok := b.tail.refs[id]; ok {
		return r
	}
	return b.tail.st.refs[id]
}

// tailIndexDepth bounds the chain of indexes a reader's look-up may
// walk: every tailIndexDepth commits, the index is a whole map again.
// Copying the whole index at every commit, as it once was, cost the
// commit loop a copy of a map of every streaming conversation.
const tailIndexDepth = 8

// index returns the tail index as of the batch, as the bbolt transaction
// txid writes it: the batch's changes over the last commit's index, or
// the whole index.
func (tb *tailBatch) index(txid int) *tailIndex {
	if tb.base.depth < tailIndexDepth {
		return &tailIndex{txid: txid, refs: tb.refs, prev: tb.base, depth: tb.base.depth + 1}
	}
	refs := maps.Clone(tb.st.refs)
	for id, r := range tb.refs {
		if len(r) == 0 {
			delete(refs, id)
		} else {
			refs[id] = r
		}
	}
	return &tailIndex{txid: txid, refs: refs}
}

// appendTail stores ev of conversation id, already encoded as frame, in
// the tail.
func (b *batch) appendTail(id string, seq uint64, frame []byte) error {
	g := b.tail.next
	b.tail.next++
	b.key = binary.BigEndian.AppendUint64(b.key[:0], g)
	if err := b.appendOnly(bucketTail).Put(b.key, frame); err != nil {
		return err
	}
	refs := b.refsOf(id)
	if len(refs) == 0 {
		b.tail.heads = append(b.tail.heads, tailHead{g, id})
	}
	// An index published before holds this slice up to its own length
	// only: appending in place changes nothing it holds.
	refs = append(refs, tailRef{seq, g})
	b.tail.refs[id] = refs
	if len(refs) >= runMax {
		return b.writeRun(id)
	}
	return nil
}

// writeRun writes conversation id's entries in the index as a run, and
// takes them out of the index.
func (b *batch) writeRun(id string) error {
	refs := b.refsOf(id)
	if len(refs) == 0 {
		return nil
	}
	b.key = appendSeqKey(b.key[:0], id, refs[0].seq)
	// Put keeps the value, not a copy, until the commit: a run's own.
	run := appendRefs(make([]byte, 0, 1+4*len(refs)), refs)
	if err := b.appendOnly(bucketRuns).Put(b.key, run); err != nil {
		return err
	}
	b.tail.refs[id] = nil
	return nil
}

// deleteTail deletes conversation id's events, in runs and in the index,
// with the conversation.
func (b *batch) deleteTail(id string) error {
	tail := b.tx.Bucket(bucketTail)
	del := func(refs []tailRef) error {
		for _, r := range refs {
			if err := tail.Delete(tailKey(r.g)); err != nil {
				return err
			}
		}
		return nil
	}
	runs := b.tx.Bucket(bucketRuns)
	p := prefix(id)
	c := runs.Cursor()
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		if err := del(tailRefs(v)); err != nil {
			return err
		}
	}
	if err := deletePrefix(runs, p); err != nil {
		return err
	}
	if err := del(b.refsOf(id)); err != nil {
		return err
	}
	b.tail.refs[id] = nil
	return nil
}

// advance writes as runs the replies whose oldest entry is more than
// tailMaxBehind entries old, and moves the watermark to the oldest entry
// the index still lists.
func (b *batch) advance(st *tailState) error {
	below := b.tail.next
heads:
	// In key order: the first head still a conversation's oldest entry,
	// and not too old, is the lowest entry listed.
	for _, heads := range [][]tailHead{st.heads, b.tail.heads} {
		for _, h := range heads {
			if !h.oldest(b.refsOf(h.id)) {
				continue
			}
			if b.tail.next-h.g > tailMaxBehind {
				if err := b.writeRun(h.id); err != nil {
					return err
				}
				continue
			}
			below = h.g
			break heads
		}
	}
	b.tail.indexed = st.indexed
	if below == st.indexed {
		return nil
	}
	b.tail.indexed = below
	return putIndexed(b.tx, below)
}

// apply makes a committed batch's changes part of the state.
func (st *tailState) apply(tb tailBatch) {
	st.next = tb.next
	st.indexed = tb.indexed
	for id, r := range tb.refs {
		if len(r) == 0 {
			delete(st.refs, id)
		} else {
			st.refs[id] = r
		}
	}
	st.heads = append(st.heads, tb.heads...)
	for len(st.heads) > 0 {
		if h := st.heads[0]; h.oldest(st.refs[h.id]) {
			break
		}
		st.heads = st.heads[1:]
	}
}

// tailIndex is the tail's index as of one commit: for each conversation
// with events in the tail, their (seq, g) pairs in seq order. It holds
// them all (prev nil), or those the commit changed (nil: none left) over
// prev, the index of the commit before, depth indexes deep. Once
// published it is not modified (a later one may share a slice's array
// beyond the length this one holds).
type tailIndex struct {
	txid  int // the bbolt transaction whose state this is
	refs  map[string][]tailRef
	prev  *tailIndex
	depth int
}

// lookup returns conversation id's entries as of ix.
func (ix *tailIndex) lookup(id string) []tailRef {
	for ; ix != nil; ix = ix.prev {
		if r, ok := ix.refs[id]; ok {
			return r
		}
	}
	return nil
}

// tailIndexes are the indexes of the last commits, newest first: a reader
// takes the one of its own transaction.
type tailIndexes struct {
	mu  sync.Mutex
	ixs [3]*tailIndex
}

// newest returns the index of the last commit.
func (t *tailIndexes) newest() *tailIndex {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.ixs[0]
}

// publish makes ix the newest; the commit loop calls it before the
// transaction that writes ix commits, so that no reader can see that
// transaction without its index.
func (t *tailIndexes) publish(ix *tailIndex) {
	t.mu.Lock()
	defer t.mu.Unlock()
	copy(t.ixs[1:], t.ixs[:])
	t.ixs[0] = ix
}

// withdraw undoes the publish of ix, whose commit failed.
func (t *tailIndexes) withdraw(ix *tailIndex) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.ixs[0] == ix {
		copy(t.ixs[:], t.ixs[1:])
		t.ixs[len(t.ixs)-1] = nil
	}
}

// of returns the index of transaction txid, or nil when it is older than
// those kept.
func (t *tailIndexes) of(txid int) *tailIndex {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, ix := range t.ixs {
		if ix != nil && ix.txid == txid {
			return ix
		}
	}
	return nil
}
