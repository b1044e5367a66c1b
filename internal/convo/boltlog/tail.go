package boltlog

import (
	"bytes"
	"encoding/binary"

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
//	tailidx   <id>   (seq, g) pairs in seq order (see compactRefs):
//	                 conversation id's events that are in the tail
//
// When a turn ends (and when a long reply has tailMoveAt events in the
// tail, or a stalled one's oldest is tailMaxBehind entries old, or its
// conversation is deleted) its events move to the events
// bucket in one contiguous run, as if they had been written there, and
// its tailidx key is deleted. The moved tail entries stay behind until
// every older entry has moved too: then each commit deletes the head of
// the tail below the oldest entry still listed, which frees whole pages
// instead of dirtying pages shared with live replies. Readers see the
// tail through tailidx in their own transaction, so a reply is never
// half moved for them.
var (
	bucketTail    = []byte("tail")
	bucketTailIdx = []byte("tailidx")
)

// tailMoveAt is how many events a reply keeps in the tail before they
// move early, which bounds both a tailidx value and how far a long reply
// holds back the truncation of the tail.
const tailMoveAt = 256

// tailTruncateMax bounds the tail entries one commit deletes.
const tailTruncateMax = 4096

// tailMaxBehind bounds how far behind the newest entry a reply's oldest
// entry in the tail may be: a reply that stalls after a few chunks while
// others stream would otherwise keep the whole tail from being cut. Such
// a reply's events move out early.
const tailMaxBehind = 1 << 14

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

// tailRef is one tailidx pair: an event's seq and its key in the tail.
type tailRef struct{ seq, g uint64 }

// compactRefs opens a tailidx value in the compact encoding: the first
// pair as two uvarints, then each pair as the uvarint differences from
// the pair before (a delta's seq is mostly its predecessor's + 1, and its
// g a few thousand further on: 3 or 4 bytes a pair instead of 16). The
// index of a conversation grows by a pair with every delta and is
// rewritten each time, so its size is what most of a streaming commit's
// page writes are made of. A value without the mark, from a file written
// before, holds 8+8-byte big-endian pairs: a seq's first byte is 0.
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

// appendRef returns the tailidx value old with r added after its pairs,
// in the compact encoding (whichever old's was), and the number of pairs
// it holds. A compact value is only read through, to its last pair: r
// goes after its bytes as they are.
func appendRef(old []byte, r tailRef) ([]byte, int) {
	if last, n, ok := lastRef(old); ok {
		v := make([]byte, len(old), len(old)+2*binary.MaxVarintLen64)
		copy(v, old)
		v = binary.AppendUvarint(v, r.seq-last.seq)
		return binary.AppendUvarint(v, r.g-last.g), n + 1
	}
	refs := append(tailRefs(old), r)
	v := make([]byte, 0, len(old)+1+2*binary.MaxVarintLen64)
	v = append(v, compactRefs)
	var prev tailRef
	for _, ref := range refs {
		v = binary.AppendUvarint(v, ref.seq-prev.seq)
		v = binary.AppendUvarint(v, ref.g-prev.g)
		prev = ref
	}
	return v, len(refs)
}

// lastRef returns the last pair of a compact tailidx value and how many
// it holds; ok is false for any other value, and for one that does not
// end with a whole pair.
func lastRef(v []byte) (last tailRef, n int, ok bool) {
	if len(v) == 0 || v[0] != compactRefs {
		return tailRef{}, 0, false
	}
	for v = v[1:]; len(v) > 0; n++ {
		ds, i := binary.Uvarint(v)
		if i <= 0 {
			return tailRef{}, 0, false
		}
		dg, j := binary.Uvarint(v[i:])
		if j <= 0 {
			return tailRef{}, 0, false
		}
		v = v[i+j:]
		last = tailRef{last.seq + ds, last.g + dg}
	}
	return last, n, true
}

// tailState is what the commit loop remembers of the tail between
// commits: the next key, and for each conversation with events in it the
// key of its oldest one, whose minimum is how far the tail can be cut.
type tailState struct {
	next  uint64
	first map[string]uint64
}

// loadTail reads the tail's state at start-up.
func loadTail(tx *bolt.Tx) tailState {
	st := tailState{next: 1, first: map[string]uint64{}}
	if k, _ := tx.Bucket(bucketTail).Cursor().Last(); k != nil {
		st.next = binary.BigEndian.Uint64(k) + 1
	}
	_ = tx.Bucket(bucketTailIdx).ForEach(func(k, v []byte) error {
		if refs := tailRefs(v); len(refs) > 0 {
			st.first[string(k)] = refs[0].g
		}
		return nil
	})
	return st
}

// tailBatch is a commit's changes to the tail state, applied to it only
// once the commit succeeded.
type tailBatch struct {
	next  uint64
	first map[string]uint64 // 0: no events in the tail any more
}

// appendTail stores ev, already encoded as frame, in the tail.
func (b *batch) appendTail(id string, seq uint64, frame []byte) error {
	g := b.tail.next
	b.tail.next++
	b.key = binary.BigEndian.AppendUint64(b.key[:0], g)
	if err := b.appendOnly(bucketTail).Put(b.key, frame); err != nil {
		return err
	}
	idx := b.tx.Bucket(bucketTailIdx)
	old := idx.Get([]byte(id))
	if len(old) == 0 {
		b.tail.first[id] = g
	}
	v, n := appendRef(old, tailRef{seq, g})
	if err := idx.Put([]byte(id), v); err != nil {
		return err
	}
	if n >= tailMoveAt {
		return b.moveTail(id)
	}
	return nil
}

// moveTail moves conversation id's events from the tail to the events
// bucket.
func (b *batch) moveTail(id string) error {
	refs := tailSeqs(b.tx, id)
	if len(refs) == 0 {
		return nil
	}
	// One cursor for the reads: Get would make one for each.
	tail, events := b.tx.Bucket(bucketTail).Cursor(), b.appendOnly(bucketEvents)
	var key [8]byte
	for _, r := range refs {
		binary.BigEndian.PutUint64(key[:], r.g)
		k, frame := tail.Seek(key[:])
		if !bytes.Equal(k, key[:]) {
			frame = nil // as Get: missing
		}
		// frame is valid for the transaction's life, as Put wants: bbolt
		// copies what a written node holds from the file's memory map
		// before it remaps it.
		b.key = appendSeqKey(b.key[:0], id, r.seq)
		if err := events.Put(b.key, frame); err != nil {
			return err
		}
	}
	return b.dropTail(id)
}

// dropTail forgets conversation id's events in the tail: moved, or
// deleted with the conversation. The entries go with the tail's head.
func (b *batch) dropTail(id string) error {
	b.tail.first[id] = 0
	return b.tx.Bucket(bucketTailIdx).Delete([]byte(id))
}

// truncateTail deletes the tail's entries that every conversation has
// moved out: those below the oldest one still listed, after moving out
// the replies more than tailMaxBehind entries old.
func (b *batch) truncateTail(st *tailState) error {
	first := func(id string) uint64 {
		if g, changed := b.tail.first[id]; changed {
			return g
		}
		return st.first[id]
	}
	below := b.tail.next
	for _, ids := range []map[string]uint64{st.first, b.tail.first} {
		for id := range ids {
			g := first(id)
			if g != 0 && b.tail.next-g > tailMaxBehind {
				if err := b.moveTail(id); err != nil {
					return err
				}
				continue
			}
			if g != 0 {
				below = min(below, g)
			}
		}
	}
	n := 0
	return deleteFrom(b.tx.Bucket(bucketTail), nil, func(k []byte) bool {
		n++
		return n <= tailTruncateMax && binary.BigEndian.Uint64(k) < below
	})
}

// apply makes a committed batch's changes part of the state.
func (st *tailState) apply(tb tailBatch) {
	st.next = tb.next
	for id, g := range tb.first {
		if g == 0 {
			delete(st.first, id)
		} else {
			st.first[id] = g
		}
	}
}

// tailSeqs returns conversation id's events in the tail, as of tx.
func tailSeqs(tx *bolt.Tx, id string) []tailRef {
	return tailRefs(tx.Bucket(bucketTailIdx).Get([]byte(id)))
}
