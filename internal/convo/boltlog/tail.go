package boltlog

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/chatgateway/gateway/protocol"
)

// The tail keeps the events of turns in progress (the user message that
// starts one, its turn_start, the deltas and thinking that are the bulk
// of what a gateway stores, tool events, messages sent meanwhile) out of
// the per-conversation events bucket until the turn ends. A commit that
// stores one chunk for each of a thousand conversations would dirty a
// thousand events pages there (about 6 KiB written per event); in the
// tail, whose keys are one global sequence, it appends to the last few
// pages. A send writes its message and turn_start there too, so that a
// turn dirties its conversation's events page once, when it ends, not
// also when it starts. Only a turn_end goes to the events bucket at once,
// and moves the tail's events.
//
//	tail      <g>    JSON event, exactly as sent to clients
//
// Which of them are a conversation's is kept in memory (tailIndex): its
// (seq, g) pairs in seq order, rebuilt from the tail when the file opens.
// Files written before kept it in a tailidx bucket, rewritten with every
// event (a random page per commit and conversation); it is read once
// when such a file opens, and deleted.
//
// When a turn ends (and when a long reply has tailMoveAt events in the
// tail, or a stalled one's oldest is tailMaxBehind entries old, or its
// conversation is deleted) its events move to the events
// bucket in one contiguous run, as if they had been written there, and
// it leaves the index. The moved tail entries stay behind until every
// older entry has moved too: then each commit deletes the head of the
// tail below the oldest entry still listed, which frees whole pages
// instead of dirtying pages shared with live replies (a deleted
// conversation's entries are deleted at once). Readers see the index as
// of their own transaction (see snap), so a turn is never half moved for
// them.
var (
	bucketTail    = []byte("tail")
	bucketTailIdx = []byte("tailidx")
)

// tailMoveAt is how many events a conversation keeps in the tail before
// they move early, which bounds both its index and how far a long reply
// holds back the truncation of the tail.
const tailMoveAt = 256

// tailTruncateMax bounds the tail entries one commit deletes.
const tailTruncateMax = 4096

// tailMaxBehind bounds how far behind the newest entry a reply's oldest
// entry in the tail may be: a reply that stalls after a few chunks while
// others stream would otherwise keep the whole tail from being cut. Such
// a reply's events move out early. It is several times what a busy
// gateway stores while a short reply streams: a quarter of it moved most
// replies at 1,000 streams out twice, each move a write of their
// conversation's events page (see docs/PERFORMANCE.md). The tail it lets
// stand is some tens of MiB at most.
const tailMaxBehind = 1 << 16

// tailEvent reports whether events of type typ are stored in the tail:
// all but turn_end. The tail holds the end of a conversation's log (a
// move takes all of its events there), so readers find its newest events
// there.
func tailEvent(typ string) bool {
	return typ != protocol.EventTurnEnd
}

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

// compactRefs opens a tailidx value (files written before) in the compact
// encoding: the first pair as two uvarints, then each pair as the uvarint
// differences from the pair before. A value without the mark holds
// 8+8-byte big-endian pairs: a seq's first byte is 0.
const compactRefs = 0xff

// tailRefs decodes a tailidx value, either encoding; it stops at the
// first pair it cannot read.
func tailRefs(v []byte) []tailRef {
	if len(v) == 0 || v[0] != compactRefs {
		refs := make([]tailRef, 0, len(v)/16)
		for ; len(v) >= 16; v = v[16:] {
			refs = append(refs, tailRef{binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:])})
		}
		return refs
	}
	var refs []tailRef
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
// (the lowest of which is how far the tail can be cut), and the newest
// frames.
type tailState struct {
	next uint64
	// refs is the index as of the last commit: the commit loop's own
	// copy, which it changes in place (readers use a tailIndex).
	refs map[string][]tailRef
	// heads are, in key order, the entries that became their
	// conversation's oldest one. Those that no longer are (moved out
	// since) are skipped, and dropped once at the front, so that the
	// first that still is, the lowest, is found without looking at every
	// conversation.
	heads  []tailHead
	frames tailFrames
}

// tailHead is conversation id's oldest entry in the tail, g, when it
// became so.
type tailHead struct {
	g  uint64
	id string
}

// oldest reports whether h is still the oldest of its conversation's
// entries refs (none: all moved out).
func (h tailHead) oldest(refs []tailRef) bool { return len(refs) > 0 && refs[0].g == h.g }

// loadTail reads the tail's state at start-up and rebuilds its index:
// from a tailidx bucket (a file written before), which it deletes, or
// else from the tail's entries themselves. An entry is a live event of
// its conversation if the conversation exists, has no event of that seq
// in the events bucket, and no delete's mark of its id follows it: a
// move leaves the moved entries behind until the tail is cut below them,
// a delete deletes the others and marks the moved ones dead.
func loadTail(tx *bolt.Tx) (tailState, map[string][]tailRef, error) {
	st := tailState{next: 1}
	refs := map[string][]tailRef{}
	if k, _ := tx.Bucket(bucketTail).Cursor().Last(); k != nil {
		st.next = binary.BigEndian.Uint64(k) + 1
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
	} else {
		// lastMoved is each conversation's last seq in the events bucket
		// (0: none), or -1 when it does not exist.
		lastMoved := map[string]int64{}
		err := tx.Bucket(bucketTail).ForEach(func(k, v []byte) error {
			var ev struct {
				Conversation string `json:"conversation"`
				Seq          uint64 `json:"seq"`
			}
			if err := json.Unmarshal(v, &ev); err != nil {
				return fmt.Errorf("tail entry %d: %w", binary.BigEndian.Uint64(k), err)
			}
			id := ev.Conversation
			if ev.Seq == 0 {
				// A delete's mark (see deleteTail): the entries before it
				// are of the conversation deleted, not of one created
				// again under its id.
				delete(refs, id)
				return nil
			}
			last, ok := lastMoved[id]
			if !ok {
				last = -1
				if tx.Bucket(bucketMeta).Get([]byte(id)) != nil {
					last = int64(lastStoredSeq(tx, id))
				}
				lastMoved[id] = last
			}
			if last >= 0 && ev.Seq > uint64(last) {
				refs[id] = append(refs[id], tailRef{ev.Seq, binary.BigEndian.Uint64(k)})
			}
			return nil
		})
		if err != nil {
			return st, nil, err
		}
	}
	// The readers' index, and the commit loop's, which it changes.
	st.refs = maps.Clone(refs)
	for id, r := range refs {
		st.heads = append(st.heads, tailHead{r[0].g, id})
	}
	slices.SortFunc(st.heads, func(a, b tailHead) int { return cmp.Compare(a.g, b.g) })
	st.frames.first = st.next
	return st, refs, nil
}

// tailBatch is a commit's changes to the tail state, applied to it only
// once the commit succeeded.
type tailBatch struct {
	st   *tailState // as of the last commit; read-only here
	next uint64
	// heads are the entries that became their conversation's oldest, in
	// key order (all from st.next on: after st.heads).
	heads []tailHead
	// frames are those stored from st.next on, moved the keys of the
	// entries that left the index, below the key the tail is cut below.
	frames [][]byte
	moved  []uint64
	below  uint64
	// base is the readers' index as of the last commit; refs the
	// conversations whose entries this commit changed (nil: none left).
	base *tailIndex
	refs map[string][]tailRef
}

// frame returns the frame stored at tail key g as the batch knows it
// without reading the tail, or nil.
func (tb *tailBatch) frame(g uint64) []byte {
	if g >= tb.st.next {
		if i := g - tb.st.next; i < uint64(len(tb.frames)) {
			return tb.frames[i]
		}
		return nil
	}
	return tb.st.frames.get(g)
}

// refsOf returns conversation id's entries in the tail as of the batch.
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

// appendTail stores ev, already encoded as frame, in the tail.
func (b *batch) appendTail(id string, seq uint64, frame []byte) error {
	g := b.tail.next
	b.tail.next++
	b.key = binary.BigEndian.AppendUint64(b.key[:0], g)
	if err := b.appendOnly(bucketTail).Put(b.key, frame); err != nil {
		return err
	}
	b.tail.frames = append(b.tail.frames, frame)
	refs := b.refsOf(id)
	if len(refs) == 0 {
		b.tail.heads = append(b.tail.heads, tailHead{g, id})
	}
	// An index published before holds this slice up to its own length
	// only: appending in place changes nothing it holds.
	refs = append(refs, tailRef{seq, g})
	b.tail.refs[id] = refs
	if len(refs) >= tailMoveAt {
		return b.moveTail(id)
	}
	return nil
}

// moveTail moves conversation id's events from the tail to the events
// bucket.
func (b *batch) moveTail(id string) error {
	refs := b.refsOf(id)
	if len(refs) == 0 {
		return nil
	}
	// One cursor for the reads: Get would make one for each.
	tail, events := b.tx.Bucket(bucketTail).Cursor(), b.appendOnly(bucketEvents)
	var key [8]byte
	for _, r := range refs {
		frame := b.tail.frame(r.g)
		if frame == nil {
			binary.BigEndian.PutUint64(key[:], r.g)
			k, v := tail.Seek(key[:])
			if bytes.Equal(k, key[:]) {
				frame = v
			}
		}
		// frame is valid for the transaction's life, as Put wants: bbolt
		// copies what a written node holds from the file's memory map
		// before it remaps it.
		b.key = appendSeqKey(b.key[:0], id, r.seq)
		if err := events.Put(b.key, frame); err != nil {
			return err
		}
	}
	b.dropTail(id)
	return nil
}

// dropTail forgets conversation id's events in the tail, moved: the
// entries go with the tail's head.
func (b *batch) dropTail(id string) {
	for _, r := range b.refsOf(id) {
		b.tail.moved = append(b.tail.moved, r.g)
	}
	b.tail.refs[id] = nil
}

// deleteTail deletes conversation id's events in the tail, with the
// conversation: the index rebuilt at start-up must not find them. Its
// moved entries, left for the tail's cut, are not listed anywhere: a
// mark after them, an entry of seq 0, tells loadTail that they are dead,
// should a conversation be created again under the id. The mark is cut
// with the tail's head, after them.
func (b *batch) deleteTail(id string) error {
	tail := b.tx.Bucket(bucketTail)
	for _, r := range b.refsOf(id) {
		if err := tail.Delete(tailKey(r.g)); err != nil {
			return err
		}
	}
	b.dropTail(id)
	mark, err := json.Marshal(struct {
		Conversation string `json:"conversation"`
		Seq          uint64 `json:"seq"`
	}{id, 0})
	if err != nil {
		return err
	}
	g := b.tail.next
	b.tail.next++
	if err := tail.Put(tailKey(g), mark); err != nil {
		return err
	}
	// Kept as a frame for its key's place, forgotten as moved.
	b.tail.frames = append(b.tail.frames, mark)
	b.tail.moved = append(b.tail.moved, g)
	return nil
}

// truncateTail deletes the tail's entries that every conversation has
// moved out: those below the oldest one still listed, after moving out
// the replies more than tailMaxBehind entries old.
func (b *batch) truncateTail(st *tailState) error {
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
				if err := b.moveTail(h.id); err != nil {
					return err
				}
				continue
			}
			below = h.g
			break heads
		}
	}
	b.tail.below = below
	n := 0
	return deleteFrom(b.tx.Bucket(bucketTail), nil, func(k []byte) bool {
		n++
		return n <= tailTruncateMax && binary.BigEndian.Uint64(k) < below
	})
}

// apply makes a committed batch's changes part of the state.
func (st *tailState) apply(tb tailBatch) {
	st.frames.apply(st.next, tb.frames, tb.moved, tb.below)
	st.next = tb.next
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
