package jetlog

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// readPage is how many records one read asks for at most.
const readPage = 256

// lagRetries bounds how often a read waits for a lagging replica to have
// records the leader has acknowledged.
const lagRetries = 50

// markCacheSize bounds the Store's read marks.
const markCacheSize = 4096

// readMark is where a scan of a conversation's events stopped before the
// log's end, so that the next page of a replay goes on from there: it
// reads neither the newest record (near a MiB after a long reply) to
// find the end again nor the records a search for its start would.
type readMark struct {
	// pos is a position after the record of the seq before the mark's
	// and at or before the record of its seq.
	pos uint64
	// last is the newest seq the scan knew of, at position lastPos.
	last, lastPos uint64
}

// markKey names the mark of the scan of conversation id that stopped
// before seq next.
type markKey struct {
	id   string
	next uint64
}

// errStaleMark means that a mark's records are gone: the conversation
// was deleted since, and maybe created again.
var errStaleMark = errors.New("jetlog: the records of a read mark are gone")

// scan calls fn with each event of conversation id with after < seq ≤
// upTo (upTo 0: to the end), in order, until fn returns false; want,
// when not 0, is how many events fn takes at most, and no read asks for
// more records. A scan that goes on from where another stopped, up to a
// seq that one knew of, starts from its mark.
func (s *Store) scan(ctx context.Context, id string, after, upTo uint64, want int, fn func(seq uint64, frame []byte) bool) error {
	if m, ok := s.takeMark(id, after+1); ok && upTo > 0 && upTo <= m.last {
		sc := &logScan{s: s, id: id, next: after + 1, upTo: upTo, pos: m.pos, end: m.last, endPos: m.lastPos, want: want, marked: true}
		err := sc.read(ctx, fn)
		if !errors.Is(err, errStaleMark) {
			return err
		}
	}
	end, ok, err := s.newest(ctx, id)
	if err != nil || !ok {
		return err
	}
	if upTo == 0 || upTo > end.last {
		upTo = end.last
	}
	if after >= upTo {
		return nil
	}
	// A read from position 1 starts at the conversation's first record.
	pos := uint64(1)
	if after > 0 {
		if pos, err = s.log.locate(ctx, id, after+1, end); err != nil {
			return err
		}
	}
	sc := &logScan{s: s, id: id, next: after + 1, upTo: upTo, pos: pos, end: end.last, endPos: end.pos, want: want}
	return sc.read(ctx, fn)
}

// newest returns the head of conversation id's newest record, and false
// if it has none (ErrNotFound if the conversation does not exist). The
// record kept here serves while it is still the newest (see knownMeta):
// two reads of about the size of the metadata, instead of the record,
// which may hold a whole reply.
func (s *Store) newest(ctx context.Context, id string) (head, bool, error) {
	if m, t, err := s.knownMeta(ctx, id); err != nil || m != nil {
		return t.head, m != nil, err
	}
	last, err := s.lastKept(ctx, id)
	if err != nil {
		return head{}, false, err
	}
	if last == nil {
		// No events: the conversation exists or it does not.
		_, _, err := s.log.Meta(ctx, id)
		return head{}, false, err
	}
	return headOfRecord(last), true, nil
}

// logScan is one scan's way through a conversation's log.
type logScan struct {
	s  *Store
	id string
	// next is the seq fn gets next, and upTo the last it may get.
	next, upTo uint64
	// pos is where the next read starts (see readMark).
	pos uint64
	// end is the newest seq the scan knows of, at position endPos.
	end, endPos uint64
	// want is how many events fn takes at most (0: no bound), and given
	// how many it has had.
	want, given int
	// marked is set for a scan that starts from a mark.
	marked bool
}

// read calls fn with the events from sc.next to sc.upTo, in order, until
// fn returns false, and keeps a mark if it stops before sc.end. One from
// a mark, of a conversation deleted since, fails with errStaleMark as
// long as fn has had no event.
func (sc *logScan) read(ctx context.Context, fn func(seq uint64, frame []byte) bool) error {
	for lag := 0; sc.next <= sc.upTo; {
		// Each record holds an event at least: a page of a replay reads
		// no more than it sends.
		limit := readPage
		if sc.want > 0 {
			limit = min(limit, sc.want-sc.given)
		}
		recs, err := sc.s.log.Read(ctx, sc.id, sc.pos, sc.endPos, limit)
		if err != nil {
			return err
		}
		if len(recs) == 0 {
			// The conversation was deleted since its newest record was
			// read (its subject purged), or the replica that answered
			// has not stored what the leader acknowledged yet.
			if gone, err := sc.s.log.purged(ctx, sc.id, sc.pos, sc.endPos); err != nil {
				return err
			} else if gone && sc.marked && sc.given == 0 {
				return errStaleMark
			} else if gone {
				return fmt.Errorf("%w: conversation %s was deleted while read", ErrNotFound, sc.id)
			}
			if lag++; lag > lagRetries {
				return fmt.Errorf("jetlog: conversation %s: seq %d is missing", sc.id, sc.next)
			}
			time.Sleep(time.Millisecond)
			continue
		}
		for _, rec := range recs {
			for i, f := range rec.Frames {
				seq := rec.Seq + uint64(i)
				if seq < sc.next {
					continue
				}
				if seq != sc.next {
					return fmt.Errorf("jetlog: conversation %s: seq %d follows %d", sc.id, seq, sc.next-1)
				}
				if seq > sc.upTo {
					sc.keepMark()
					return nil
				}
				sc.next++
				sc.given++
				if !fn(seq, f) {
					if seq == rec.Last() {
						sc.pos = rec.Pos + 1
					} else {
						sc.pos = rec.Pos
					}
					sc.keepMark()
					return nil
				}
			}
			sc.pos = rec.Pos + 1
		}
	}
	sc.keepMark()
	return nil
}

// keepMark keeps where the scan stopped, if the log it knows of goes on.
func (sc *logScan) keepMark() {
	if sc.next > sc.end {
		return
	}
	s := sc.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.marks) >= markCacheSize {
		clear(s.marks)
	}
	s.marks[markKey{sc.id, sc.next}] = readMark{pos: sc.pos, last: sc.end, lastPos: sc.endPos}
}

// takeMark removes and returns the mark of a scan of conversation id
// that stopped before seq next, if there is one.
func (s *Store) takeMark(id string, next uint64) (readMark, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := markKey{id, next}
	m, ok := s.marks[k]
	delete(s.marks, k)
	return m, ok
}
