package boltlog

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

// Readers run in their own read transactions, concurrently with the commit
// loop, and see what the last commit left.

// Meta implements convo.Log: from the cache when the conversation was
// written lately, which is as fresh as the file (the cache is updated
// before a commit's events are reported), else from the file. Only the
// commit loop fills the cache: a reader that did could put back metadata
// a commit had just replaced.
func (l *Log) Meta(ctx context.Context, id string) (*convo.Meta, error) {
	if c, ok := l.cache.get(id); ok {
		return c.m.Clone(), nil
	}
	var m *convo.Meta
	err := l.view(ctx, func(tx snap) error {
		var err error
		m, _, err = readMeta(tx, id)
		return err
	})
	return m, err
}

// snap is a consistent view of the file: a bbolt transaction and the
// tail index as of it.
type snap struct {
	*bolt.Tx
	tail func(id string) []tailRef
}

// view runs fn in a read transaction, unless ctx has ended; a failure to
// start one is storage being unavailable.
func (l *Log) view(ctx context.Context, fn func(tx snap) error) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		tx, err := l.db.Begin(false)
		if err != nil {
			return fmt.Errorf("%w (%w)", convo.ErrUnavailable, err)
		}
		ix := l.tails.of(tx.ID())
		if ix == nil {
			// Commits went past this transaction before it found its
			// index: begin again, on the newest.
			tx.Rollback()
			continue
		}
		err = fn(snap{tx, func(id string) []tailRef { return ix.lookup(id) }})
		tx.Rollback()
		return err
	}
}

// readMeta reads conversation id's metadata as of the end of its log:
// the copy stored at its last checkpoint with the events stored since
// applied (see metaEvery), and its last seq. stored is the seq the
// stored copy was written at.
func readMeta(tx snap, id string) (m *convo.Meta, stored uint64, err error) {
	v := tx.Bucket(bucketMeta).Get([]byte(id))
	if v == nil {
		return nil, 0, convo.ErrNotFound
	}
	m = &convo.Meta{}
	if err := json.Unmarshal(v, m); err != nil {
		return nil, 0, fmt.Errorf("boltlog: conversation %s: corrupt metadata: %w", id, err)
	}
	stored = m.LastSeq
	// The last event, if a delta or thinking: only its time matters.
	var stream []byte
	err = walk(tx, id, stored, func(seq uint64, frame []byte) (bool, error) {
		// The walk goes to the end of the log: the last seq it visits is
		// the conversation's.
		m.LastSeq = seq
		// A delta or thinking event changes nothing but the last seq and
		// the update time.
		if convo.StreamFrame(frame) {
			stream = frame
			return true, nil
		}
		stream = nil
		var ev protocol.Event
		if err := json.Unmarshal(frame, &ev); err != nil {
			return false, fmt.Errorf("boltlog: conversation %s: event %d: corrupt event: %w", id, seq, err)
		}
		m.Apply(&ev)
		return true, nil
	})
	if err != nil {
		return nil, 0, err
	}
	if stream != nil {
		var ev struct {
			TS time.Time `json:"ts"`
		}
		if err := json.Unmarshal(stream, &ev); err != nil {
			return nil, 0, fmt.Errorf("boltlog: conversation %s: corrupt event: %w", id, err)
		}
		m.UpdatedAt = ev.TS
	}
	return m, stored, nil
}

// Events implements convo.Log (see walk).
func (l *Log) Events(ctx context.Context, id string, after, upTo uint64, limit int) ([][]byte, error) {
	var out [][]byte
	err := l.view(ctx, func(tx snap) error {
		if tx.Bucket(bucketMeta).Get([]byte(id)) == nil {
			return convo.ErrNotFound
		}
		return walk(tx, id, after, func(seq uint64, frame []byte) (bool, error) {
			if upTo > 0 && seq > upTo || len(out) == limit {
				return false, nil
			}
			out = append(out, bytes.Clone(frame))
			return true, nil
		})
	})
	return out, err
}

// visit is called with a conversation's events one by one, until it
// returns false or an error. The frame is valid during the transaction.
type visit func(seq uint64, frame []byte) (bool, error)

// walk calls fn with conversation id's events after seq after, in seq
// order: those in the events bucket (a file of the first layout), then
// those in runs, then those the tail index lists. Each of the three
// holds a conversation's events after those of the one before.
func walk(tx snap, id string, after uint64, fn visit) error {
	if after == math.MaxUint64 {
		return nil
	}
	tail := tx.Bucket(bucketTail).Cursor()
	more, err := walkStored(tx.Tx, id, after+1, false, fn)
	if more && err == nil {
		more, err = walkRuns(tx.Tx, tail, id, after+1, false, fn)
	}
	if more && err == nil {
		refs := tx.tail(id)
		_, err = visitRefs(tail, id, refs[firstAt(refs, after+1):], false, fn)
	}
	return err
}

// walkBack calls fn with conversation id's events before seq before (0:
// all), newest first, as walk does.
func walkBack(tx snap, id string, before uint64, fn visit) error {
	if before == 0 {
		before = math.MaxUint64
	}
	tail := tx.Bucket(bucketTail).Cursor()
	refs := tx.tail(id)
	more, err := visitRefs(tail, id, refs[:firstAt(refs, before)], true, fn)
	if more && err == nil {
		more, err = walkRuns(tx.Tx, tail, id, before, true, fn)
	}
	if more && err == nil {
		_, err = walkStored(tx.Tx, id, before, true, fn)
	}
	return err
}

// firstAt is the index in refs of the first ref at or after seq.
func firstAt(refs []tailRef, seq uint64) int {
	i, _ := slices.BinarySearchFunc(refs, seq, func(r tailRef, seq uint64) int { return cmp.Compare(r.seq, seq) })
	return i
}

// lastBefore moves c to the last key of conversation id below seq's
// (math.MaxUint64: its last key) and returns it, or nil if there is none.
func lastBefore(c *bolt.Cursor, id string, seq uint64) (k, v []byte) {
	if seq == math.MaxUint64 {
		c.Seek(append([]byte(id), 1))
	} else {
		c.Seek(seqKey(id, seq))
	}
	if k, v = c.Prev(); k == nil || !bytes.HasPrefix(k, prefix(id)) {
		return nil, nil
	}
	return k, v
}

// visitRefs calls fn with the events refs lists, read from the tail
// (newest first when back), and reports whether fn asked for more.
func visitRefs(tail *bolt.Cursor, id string, refs []tailRef, back bool, fn visit) (bool, error) {
	var key [8]byte
	var at uint64 // the cursor's key, when it is on one (0: unknown)
	for i := range refs {
		r := refs[i]
		if back {
			r = refs[len(refs)-1-i]
		}
		// Events written one after another are neighbours in the tail:
		// the cursor steps to them, where a seek walks down from the root.
		var k, frame []byte
		switch {
		case at != 0 && !back && r.g == at+1:
			k, frame = tail.Next()
		case at != 0 && back && r.g == at-1:
			k, frame = tail.Prev()
		default:
			binary.BigEndian.PutUint64(key[:], r.g)
			k, frame = tail.Seek(key[:])
		}
		if len(k) != 8 || binary.BigEndian.Uint64(k) != r.g {
			return false, fmt.Errorf("boltlog: conversation %s: event %d is missing from the tail", id, r.seq)
		}
		at = r.g
		if more, err := fn(r.seq, frame); !more || err != nil {
			return false, err
		}
	}
	return true, nil
}

// walkRuns calls fn with conversation id's events in runs from seq on,
// in seq order, or (back) before seq, newest first, and reports whether
// fn asked for more.
func walkRuns(tx *bolt.Tx, tail *bolt.Cursor, id string, seq uint64, back bool, fn visit) (bool, error) {
	p := prefix(id)
	c := tx.Bucket(bucketRuns).Cursor()
	step := c.Next
	var k, v []byte
	switch {
	case back:
		// The last run that begins before seq.
		k, v = lastBefore(c, id, seq)
		step = c.Prev
	default:
		// The run holding seq begins at or before it, unless the
		// conversation has no run that early.
		if k, v = lastBefore(c, id, seq+1); k == nil {
			k, v = c.Seek(p)
		}
	}
	for ; k != nil && bytes.HasPrefix(k, p); k, v = step() {
		refs := tailRefs(v)
		if i := firstAt(refs, seq); back {
			refs = refs[:i]
		} else {
			refs = refs[i:]
		}
		if more, err := visitRefs(tail, id, refs, back, fn); !more || err != nil {
			return false, err
		}
	}
	return true, nil
}

// walkStored calls fn with conversation id's events in the events bucket
// as walkRuns does with those in runs.
func walkStored(tx *bolt.Tx, id string, seq uint64, back bool, fn visit) (bool, error) {
	p := prefix(id)
	c := tx.Bucket(bucketEvents).Cursor()
	step := c.Next
	var k, v []byte
	if back {
		k, v = lastBefore(c, id, seq)
		step = c.Prev
	} else {
		k, v = c.Seek(seqKey(id, seq))
	}
	for ; k != nil && bytes.HasPrefix(k, p); k, v = step() {
		if more, err := fn(keySeq(k), v); !more || err != nil {
			return false, err
		}
	}
	return true, nil
}

// Messages implements convo.Log: newest first (see walkBack), it keeps
// the events that carry a message.
func (l *Log) Messages(ctx context.Context, id string, before uint64, limit, maxBytes int) ([]protocol.Message, bool, error) {
	msgs := []protocol.Message{}
	more := false
	size := 0
	err := l.view(ctx, func(tx snap) error {
		return walkBack(tx, id, before, func(seq uint64, frame []byte) (bool, error) {
			m, err := convo.MessageOf(frame)
			if err != nil {
				return false, fmt.Errorf("boltlog: conversation %s: event %d: %w", id, seq, err)
			}
			if m == nil {
				return true, nil
			}
			if limit > 0 && len(msgs) == limit {
				more = true
				return false, nil
			}
			size += convo.MessageBytes(m)
			if maxBytes > 0 && size > maxBytes && len(msgs) > 0 {
				more = true
				return false, nil
			}
			msgs = append(msgs, *m)
			return true, nil
		})
	})
	slices.Reverse(msgs)
	return msgs, more, err
}

// List implements convo.Log. The owners index is in id order, so it
// reads the metadata of every conversation of owner and keeps a page.
func (l *Log) List(ctx context.Context, owner string, after convo.ListCursor, limit, maxBytes int) ([]protocol.Conversation, bool, error) {
	page := convo.NewListPage(after, limit, maxBytes)
	p := prefix(owner)
	err := l.view(ctx, func(tx snap) error {
		c := tx.Bucket(bucketOwners).Cursor()
		for k, _ := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, _ = c.Next() {
			m, _, err := readMeta(tx, string(k[len(p):]))
			if err != nil {
				return err
			}
			page.Add(m.Conversation)
		}
		return nil
	})
	if err != nil {
		return nil, false, err
	}
	list, more := page.Page()
	return list, more, nil
}

// Unfinished implements convo.Log.
func (l *Log) Unfinished(ctx context.Context) ([]*convo.Meta, error) {
	var out []*convo.Meta
	err := l.view(ctx, func(tx snap) error {
		return tx.Bucket(bucketMeta).ForEach(func(k, _ []byte) error {
			m, _, err := readMeta(tx, string(k))
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
