package jetlog

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/chatgateway/gateway/internal/convo"
)

// followRetry is how long a follow waits before trying again to start
// when JetStream cannot be reached.
const followRetry = 500 * time.Millisecond

// deliver reports the events of rec that were not reported yet to the
// committed function, first reading any records between the last
// reported one and rec, so that each conversation's events are reported
// in seq order, without gaps, whichever gateway stored them. born (nil
// for other gateways' records) says when each event's first chunk came;
// durable is when the record was acknowledged or received; gen is the
// generation of the follower that delivers it (see conv.gen).
func (s *Store) deliver(c *conv, rec *Record, born []time.Time, durable time.Time, gen uint64) {
	s.keepTail(c.id, rec)
	c.repMu.Lock()
	defer c.repMu.Unlock()
	if born == nil {
		// A record of this gateway's that the append has not reported
		// yet: the append calls Durable first, then reports it.
		for c.own[rec.ID] {
			c.ownCond.Wait()
		}
	} else {
		delete(c.own, rec.ID)
		defer c.ownCond.Broadcast()
	}
	if !c.current(rec, born != nil, gen) {
		return
	}
	if rec.Last() <= c.reported {
		return
	}
	// A followed conversation's hubs expect every event after the seq
	// they follow from, the first ones too (reported 0): this gateway's
	// own record may come before its follower has delivered the other
	// gateways' records ahead of it.
	if (c.reported > 0 || c.follows > 0) && rec.Seq > c.reported+1 && !s.fillGap(c, rec) {
		// Reported now, rec would leave a gap that nothing fills: the
		// hubs hand on what they get, and the follower skips what is
		// reported. Left out, rec comes again from the follower, after
		// the records before it (this gateway's own records too: the
		// follower delivers every record of the subject in order). A
		// conversation nobody follows here has no hub to tell.
		return
	}
	s.report(c, rec, born, durable)
}

// current reports whether rec is a record of the conversation whose
// events c reports, and starts afresh if this gateway appended rec to a
// conversation created again under the id (appends go to the log's end,
// which is the newest conversation's). A follower's record of another
// conversation is left out: a follow of that one reports it. own is set
// for this gateway's appends, gen for a follower's records. Call with
// c.repMu held.
func (c *conv) current(rec *Record, own bool, gen uint64) bool {
	if !own && gen != c.gen {
		return false
	}
	created := createdOf(rec)
	switch {
	case created.IsZero() || created.Equal(c.created):
		return true
	case c.created.IsZero():
		c.created = created
		return true
	case own:
		c.created, c.reported = created, 0
		return true
	}
	return false
}

// createdOf returns the CreatedAt in the metadata that rec carries
// (zero if it has none).
func createdOf(rec *Record) time.Time {
	var m struct {
		CreatedAt time.Time `json:"created_at"`
	}
	_ = json.Unmarshal(rec.Meta, &m) // the writer's encoding of a Meta
	return m.CreatedAt
}

// fillGap reports the records between the last reported one and rec, and
// reports whether it got them all. Call with c.repMu held.
func (s *Store) fillGap(c *conv, rec *Record) bool {
	ctx, cancel := context.WithTimeout(context.Background(), s.log.opts.Timeout)
	defer cancel()
	from := c.reportedPos + 1
	for lag := 0; c.reported+1 < rec.Seq; {
		recs, err := s.log.Read(ctx, c.id, from, rec.Pos-1, readPage)
		if err != nil || len(recs) == 0 && lag >= lagRetries {
			s.logger.Warn("read the records before a followed one: it waits for the follower", "conversation", c.id, "seq", rec.Seq, "err", err)
			return false
		}
		if len(recs) == 0 {
			lag++
			time.Sleep(time.Millisecond)
			continue
		}
		for _, r := range recs {
			// A record this gateway's append has stored and not yet
			// reported: the append reports it once its Durable ran.
			for c.own[r.ID] {
				c.ownCond.Wait()
			}
			if r.Last() > c.reported {
				s.report(c, r, nil, time.Now())
			}
			from = r.Pos + 1
		}
	}
	return true
}

// report hands rec's events after the last reported one to the committed
// function. Call with c.repMu held.
func (s *Store) report(c *conv, rec *Record, born []time.Time, durable time.Time) {
	var out []convo.Committed
	for i, f := range rec.Frames {
		seq := rec.Seq + uint64(i)
		if seq <= c.reported {
			continue
		}
		cm := convo.Committed{Conversation: c.id, Type: convo.FrameType(f), Seq: seq, Frame: f, Durable: durable}
		if born != nil {
			cm.Born = born[i]
		}
		out = append(out, cm)
	}
	c.reported, c.reportedPos = rec.Last(), rec.Pos
	if len(out) == 0 || s.committed == nil {
		return
	}
	s.reportMu.Lock()
	defer s.reportMu.Unlock()
	s.committed(out)
}

// Follow implements convo.Log: it follows the conversation's subject in
// JetStream, so that the events other gateways store are reported too.
func (s *Store) Follow(id string, after uint64, created time.Time) (stop func()) {
	c, err := s.acquire(id)
	if err != nil {
		return func() {}
	}
	c.repMu.Lock()
	if !c.created.IsZero() && !c.created.Equal(created) {
		// The conversation reported so far was deleted on another
		// gateway, and this follow is of the one created since (or of
		// none yet): its log starts from seq 1, and the follower of the
		// old one delivers nothing more.
		c.gen++
		c.reported = 0
	}
	c.created = created
	if c.reported < after {
		c.reported = after
	}
	c.follows++
	start := c.follows == 1 || c.followGen != c.gen
	var old *Follower
	if start {
		if c.follows > 1 {
			close(c.stopping) // a follower still starting gives up
			old, c.follower = c.follower, nil
		}
		c.stopping = make(chan struct{})
		c.followGen = c.gen
	}
	stopping, gen := c.stopping, c.gen
	c.repMu.Unlock()
	if old != nil {
		s.stopFollower(old)
	}
	if start {
		go s.follow(c, after, stopping, gen)
	}
	var once sync.Once
	return func() {
		// Not done here: the caller may hold a lock that a delivery in
		// progress waits for while it holds c.repMu (convo drops a hub
		// under the lock its committed function takes). Close waits for
		// it; s.mu orders the start with Close's wait, and once the
		// store is closed there is nothing to undo: Close stops every
		// follower.
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if !s.closed {
				s.stops.Go(func() { s.unfollow(c) })
			}
		})
	}
}

// stopFollower stops f, a follower no follow uses any more, on a
// goroutine that Close waits for; once the store is closed, at once
// (Close halts only the followers in use).
func (s *Store) stopFollower(f *Follower) {
	s.mu.Lock()
	closed := s.closed
	if !closed {
		s.stops.Go(f.Stop)
	}
	s.mu.Unlock()
	if closed {
		f.halt()
	}
}

// unfollow undoes one Follow of conversation c, stopping its follower
// after the last one.
func (s *Store) unfollow(c *conv) {
	c.repMu.Lock()
	c.follows--
	var f *Follower
	if c.follows == 0 {
		close(c.stopping)
		f, c.follower = c.follower, nil
	}
	c.repMu.Unlock()
	if f != nil {
		f.Stop()
	}
	s.release(c)
}

// follow starts following conversation c after seq after, for
// generation gen, trying again while JetStream cannot be reached, until
// stopping is closed.
func (s *Store) follow(c *conv, after uint64, stopping chan struct{}, gen uint64) {
	for {
		f, err := s.startFollower(c, after, gen)
		if err == nil {
			c.repMu.Lock()
			select {
			case <-stopping:
				c.repMu.Unlock()
				f.Stop()
			case <-s.done:
				c.repMu.Unlock()
				f.Stop()
			default:
				c.follower = f
				c.repMu.Unlock()
			}
			return
		}
		s.logger.Warn("follow a conversation", "conversation", c.id, "err", err)
		select {
		case <-stopping:
			return
		case <-s.done:
			return
		case <-time.After(followRetry):
		}
	}
}

// startFollower starts an ordered consumer on c's subject from the record
// that holds seq after+1 (or the next one stored).
func (s *Store) startFollower(c *conv, after, gen uint64) (*Follower, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.log.opts.Timeout)
	defer cancel()
	from, err := s.followFrom(ctx, c.id, after)
	if err != nil {
		return nil, err
	}
	c.repMu.Lock()
	if gen == c.gen && c.reportedPos < from-1 && c.reported <= after {
		c.reportedPos = from - 1
	}
	c.repMu.Unlock()
	return s.log.Follow(ctx, c.id, from, s.logger, func(rec *Record) {
		s.deliver(c, rec, nil, time.Now(), gen)
	})
}

// followFrom returns the position of conversation id's record that holds
// seq after+1, or where the next record will be stored. When the newest
// record kept here (see keepTail) holds after or an earlier seq, and the
// stream's leader has no newer one, that is right after it: one small
// read, not the newest record, which may hold a whole reply.
func (s *Store) followFrom(ctx context.Context, id string, after uint64) (uint64, error) {
	if t, ok := s.tailOf(id); ok && after >= t.last {
		newer, err := s.log.Newer(ctx, id, t.pos)
		if err != nil {
			return 0, err
		}
		if !newer {
			return t.pos + 1, nil
		}
	}
	last, err := s.log.Last(ctx, id)
	if err != nil {
		return 0, err
	}
	// A conversation with no record yet is followed from the stream's
	// start: the consumer delivers every record of its subject stored
	// from then on, and the server skips the records of other subjects
	// by its index of subjects, without reading them. (The stream's end,
	// read first, would cost a request to its leader per follow.)
	if last == nil {
		return 1, nil
	}
	if after < last.Last() {
		return s.log.Locate(ctx, id, after+1, last)
	}
	return last.Pos + 1, nil
}
