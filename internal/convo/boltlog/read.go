package boltlog

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
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
	m.LastSeq = lastEventSeq(tx, id)
	return m, stored, nil
}

// lastEventSeq is the seq of conversation id's newest event: its last
// events key or its last event in the tail (0 without events).
func lastEventSeq(tx snap, id string) uint64 {
	last := lastStoredSeq(tx.Tx, id)
	if refs := tx.tail(id); len(refs) > 0 {
		last = max(last, refs[len(refs)-1].seq)
	}
	return last
}

// lastStoredSeq is the seq of conversation id's last event in the events
// bucket (0: none).
func lastStoredSeq(tx *bolt.Tx, id string) uint64 {
	c := tx.Bucket(bucketEvents).Cursor()
	// The last key below the next prefix ("<id>\x01") is the newest event.
	c.Seek(append([]byte(id), 1))
	if k, _ := c.Prev(); k != nil && bytes.HasPrefix(k, prefix(id)) {
		return keySeq(k)
	}
	return 0
}

// Events implements convo.Log, merging the events bucket and the tail.
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

// walk calls fn with conversation id's events after seq after, in seq
// order, merging the events bucket and the tail, until fn returns false
// or an error. The frame is valid during tx.
func walk(tx snap, id string, after uint64, fn func(seq uint64, frame []byte) (bool, error)) error {
	refs := tx.tail(id)
	for len(refs) > 0 && refs[0].seq <= after {
		refs = refs[1:]
	}
	c := tx.Bucket(bucketEvents).Cursor()
	k, v := c.Seek(seqKey(id, after+1))
	return merge(tx, id, stored(id, k, v, c.Next), refs, func(a, b uint64) bool { return a < b }, fn)
}

// walkBack calls fn with conversation id's events before seq before (0:
// all), newest first, as walk does.
func walkBack(tx snap, id string, before uint64, fn func(seq uint64, frame []byte) (bool, error)) error {
	refs := slices.Clone(tx.tail(id))
	for len(refs) > 0 && before != 0 && refs[len(refs)-1].seq >= before {
		refs = refs[:len(refs)-1]
	}
	slices.Reverse(refs)
	c := tx.Bucket(bucketEvents).Cursor()
	if before == 0 {
		c.Seek(append([]byte(id), 1))
	} else {
		c.Seek(seqKey(id, before))
	}
	k, v := c.Prev()
	return merge(tx, id, stored(id, k, v, c.Prev), refs, func(a, b uint64) bool { return a > b }, fn)
}

// stored returns the events bucket's events of conversation id one by
// one, from the cursor's position (k, v) on, moved by step.
func stored(id string, k, v []byte, step func() ([]byte, []byte)) func() (uint64, []byte, bool) {
	p := prefix(id)
	return func() (uint64, []byte, bool) {
		if k == nil || !bytes.HasPrefix(k, p) {
			return 0, nil, false
		}
		seq, frame := keySeq(k), v
		k, v = step()
		return seq, frame, true
	}
}

// merge calls fn with the events of the events bucket (next) and of the
// tail (refs), both in the order first says (whether seq a comes before
// seq b), merged in that order.
func merge(tx snap, id string, next func() (uint64, []byte, bool), refs []tailRef, first func(a, b uint64) bool,
	fn func(seq uint64, frame []byte) (bool, error)) error {
	tail := tx.Bucket(bucketTail)
	kseq, kframe, ok := next()
	for {
		var seq uint64
		var frame []byte
		switch {
		case ok && (len(refs) == 0 || first(kseq, refs[0].seq)):
			seq, frame = kseq, kframe
			kseq, kframe, ok = next()
		case len(refs) > 0:
			if seq, frame = refs[0].seq, tail.Get(tailKey(refs[0].g)); frame == nil {
				return fmt.Errorf("boltlog: conversation %s: event %d is missing from the tail", id, seq)
			}
			refs = refs[1:]
		default:
			return nil
		}
		if more, err := fn(seq, frame); !more || err != nil {
			return err
		}
	}
}

// Messages implements convo.Log: newest first, it merges the events
// bucket and the tail (where a turn's events are until it ends), keeping
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
