package jetlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

// Meta implements convo.Log: the metadata after the conversation's
// newest record. It reads that record from the stream's leader only when
// this gateway does not know it already (see knownMeta).
func (s *Store) Meta(ctx context.Context, id string) (*convo.Meta, error) {
	m, _, err := s.knownMeta(ctx, id)
	if m != nil || err != nil {
		return m, unavailable(err)
	}
	end, err := s.end(ctx, id)
	if err != nil {
		return nil, unavailable(err)
	}
	return end.meta, nil
}

// tail is a conversation's record, of which it keeps the head and the
// metadata (as the record carries it, without the system prompt).
type tail struct {
	head
	meta []byte
}

// keepTail keeps rec, a record of conversation id, as its newest known
// record, unless a newer one is kept.
func (s *Store) keepTail(id string, rec *Record) {
	if len(rec.Meta) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.tails[id]; ok && t.pos >= rec.Pos {
		return
	}
	if len(s.tails) >= endCacheSize {
		clear(s.tails)
	}
	s.tails[id] = tail{head: headOfRecord(rec), meta: rec.Meta}
}

// lastKept reads conversation id's newest record from the stream's
// leader (nil when it has none) and keeps it as its newest known record.
func (s *Store) lastKept(ctx context.Context, id string) (*Record, error) {
	last, err := s.log.Last(ctx, id)
	if err == nil && last != nil {
		s.keepTail(id, last)
	}
	return last, err
}

// tailOf returns the newest record kept of conversation id.
func (s *Store) tailOf(id string) (tail, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tails[id]
	return t, ok
}

// knownMeta returns the metadata of conversation id from the newest
// record this gateway knows of it, and that record, if that is still the
// log's newest, and nil otherwise. Two reads, in this order, each about the size of
// the metadata however long the record, tell: the stream's leader has no record of
// the id after it; then the conversation's metadata key, read from its
// bucket's leader, is still the one it was created with (a delete
// removes it first, and a conversation created again under the id has
// another creation time). So when both hold, the conversation was
// there, with that record the newest, at the first read: a record
// appended since, on any gateway, or a delete, is seen as a reading of
// the newest record would see it. The metadata key also gives the
// system prompt, which records leave out.
func (s *Store) knownMeta(ctx context.Context, id string) (*convo.Meta, tail, error) {
	t, ok := s.tailOf(id)
	if !ok {
		return nil, t, nil
	}
	if newer, err := s.log.Newer(ctx, id, t.pos); err != nil || newer {
		return nil, t, err
	}
	data, err := s.log.LeaderMeta(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil, t, convo.ErrNotFound
	}
	if err != nil {
		return nil, t, err
	}
	var created convo.Meta
	if err := json.Unmarshal(data, &created); err != nil {
		return nil, t, fmt.Errorf("jetlog: conversation %s: corrupt metadata: %w", id, err)
	}
	m, err := metaOf(id, &Record{Pos: t.pos, Meta: t.meta})
	if err != nil || !m.CreatedAt.Equal(created.CreatedAt) {
		return nil, t, err
	}
	m.System = created.System
	return m, t, nil
}

// Events implements convo.Log.
func (s *Store) Events(ctx context.Context, id string, after, upTo uint64, limit int) ([][]byte, error) {
	out := [][]byte{}
	err := s.scan(ctx, id, after, upTo, limit, func(seq uint64, frame []byte) bool {
		out = append(out, frame)
		return len(out) < limit
	})
	if err != nil {
		return nil, unavailable(err)
	}
	return out, nil
}

// Messages implements convo.Log. It reads the conversation's whole log
// (cluster mode keeps no separate index of messages) and keeps the newest
// page of messages.
func (s *Store) Messages(ctx context.Context, id string, before uint64, limit, maxBytes int) ([]protocol.Message, bool, error) {
	var msgs []protocol.Message
	size, more := 0, false
	upTo := uint64(0)
	if before > 0 {
		if before == 1 {
			if _, err := s.Meta(ctx, id); err != nil {
				return nil, false, err
			}
			return []protocol.Message{}, false, nil
		}
		upTo = before - 1
	}
	var decodeErr error
	err := s.scan(ctx, id, 0, upTo, 0, func(seq uint64, frame []byte) bool {
		msg, err := convo.MessageOf(frame)
		if err != nil {
			decodeErr = fmt.Errorf("jetlog: conversation %s: event %d: %w", id, seq, err)
			return false
		}
		if msg != nil {
			msgs = append(msgs, *msg)
			size += convo.MessageBytes(msg)
			// Drop the oldest while the page is over its limits.
			for limit > 0 && len(msgs) > limit || maxBytes > 0 && size > maxBytes && len(msgs) > 1 {
				size -= convo.MessageBytes(&msgs[0])
				msgs[0] = protocol.Message{}
				msgs, more = msgs[1:], true
			}
		}
		return true
	})
	if err == nil {
		err = decodeErr
	}
	if err != nil {
		return nil, false, unavailable(err)
	}
	if msgs == nil {
		msgs = []protocol.Message{}
	}
	return slices.Clone(msgs), more, nil
}

// List implements convo.Log. The owner index has no order, so it reads
// the metadata of every conversation of owner and keeps a page; it holds
// every id meanwhile (a few dozen bytes each), not every metadata.
func (s *Store) List(ctx context.Context, owner string, after convo.ListCursor, limit, maxBytes int) ([]protocol.Conversation, bool, error) {
	ids, err := s.log.Owned(ctx, owner)
	if err != nil {
		return nil, false, unavailable(err)
	}
	page := convo.NewListPage(after, limit, maxBytes)
	for _, id := range ids {
		m, err := s.Meta(ctx, id)
		if errors.Is(err, convo.ErrNotFound) {
			continue // its metadata was never written, or it was deleted
		}
		if err != nil {
			return nil, false, err
		}
		if m.Owner == owner {
			page.Add(m.Conversation)
		}
	}
	list, more := page.Page()
	return list, more, nil
}

// Unfinished implements convo.Log: the conversations marked as having
// work, whichever gateway stored it.
func (s *Store) Unfinished(ctx context.Context) ([]*convo.Meta, error) {
	return s.withWork(ctx, nil)
}

// Orphans implements convo.Leaser: the conversations with work whose
// lease no other gateway holds. The others' metadata is not read, and
// the Service makes no hub (and no consumer) for them on each look. A
// gateway whose node name another took has none: its leases are that
// gateway's.
func (s *Store) Orphans(ctx context.Context) ([]*convo.Meta, error) {
	if s.claim.isTaken() {
		return nil, nil
	}
	return s.withWork(ctx, func(id string) (bool, error) {
		holder, err := s.log.Holder(ctx, id)
		return holder == "" || holder == s.node, err
	})
}

// withWork returns the conversations marked as having work that keep
// (when not nil) keeps.
func (s *Store) withWork(ctx context.Context, keep func(id string) (bool, error)) ([]*convo.Meta, error) {
	ids, err := s.log.Work(ctx)
	if err != nil {
		return nil, unavailable(err)
	}
	var out []*convo.Meta
	for _, id := range ids {
		if keep != nil {
			ok, err := keep(id)
			if err != nil {
				return nil, unavailable(err)
			}
			if !ok {
				continue
			}
		}
		m, err := s.Meta(ctx, id)
		if errors.Is(err, convo.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if hasWork(m) {
			out = append(out, m)
		}
	}
	return out, nil
}

// Delete implements convo.Log.
func (s *Store) Delete(ctx context.Context, id, owner string) (time.Time, error) {
	c, err := s.acquire(id)
	if err != nil {
		return time.Time{}, err
	}
	defer s.release(c)
	c.appendMu.Lock()
	defer c.appendMu.Unlock()
	m, err := s.Meta(ctx, id)
	if errors.Is(err, convo.ErrNotFound) {
		// A delete that failed part-way may have left the events: this
		// one finishes it.
		m, err = s.leftOver(ctx, id)
	}
	if err != nil {
		return time.Time{}, err
	}
	if m.Owner != owner {
		return time.Time{}, convo.ErrNotFound
	}
	if err := s.log.Delete(ctx, id, owner); err != nil {
		return time.Time{}, unavailable(err)
	}
	c.end = nil
	s.mu.Lock()
	// Cached, it would let this gateway read left-over events (see
	// stillThere) as the conversation's.
	delete(s.system, id)
	delete(s.tails, id)
	s.mu.Unlock()
	c.repMu.Lock()
	// A conversation created again under this id starts from seq 1, and
	// the followers of this one deliver nothing more.
	c.reported, c.reportedPos, c.created = 0, 0, time.Time{}
	c.gen++
	c.repMu.Unlock()
	return m.CreatedAt, nil
}

// leftOver returns the metadata in the newest event of conversation id,
// whose metadata is gone: a delete failed after removing it (see
// Log.Delete). It is ErrNotFound if there are no events either.
func (s *Store) leftOver(ctx context.Context, id string) (*convo.Meta, error) {
	last, err := s.log.Last(ctx, id)
	if err != nil {
		return nil, unavailable(err)
	}
	if last == nil {
		return nil, convo.ErrNotFound
	}
	return metaOf(id, last)
}

// clearLeftOvers removes the events (and keys) that a delete which
// failed part-way left under id, once a conversation is created again
// under id and before it stores its first record: stored after them, it
// would continue the deleted conversation's log, seqs, owner and all.
// Records of the new conversation (created at created) are its own:
// another gateway may have appended to it already.
func (s *Store) clearLeftOvers(ctx context.Context, id string, created time.Time) error {
	last, err := s.log.Last(ctx, id)
	if err != nil || last == nil {
		return err
	}
	if m, err := metaOf(id, last); err == nil && m.CreatedAt.Equal(created) {
		return nil
	}
	return s.log.Clear(ctx, id)
}

// hostName is the default node name.
func hostName() string {
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return "gateway"
}
