package convo

import (
	"errors"
	"time"

	"github.com/chatgateway/gateway/internal/pause"
)

// Bounds of checkDeleted's reads while the Log cannot answer: twelve
// reads over about half a minute, long enough for NATS to come back
// after a restart or a leader election.
const (
	noticeReads     = 12
	noticeReadFirst = 100 * time.Millisecond
	noticeReadMax   = 5 * time.Second
)

// deleted ends the turn of conversation, deleted, and drops its
// subscribers, calling Gone on each.
func (s *Service) deleted(conversation string) {
	if h := s.hubOf(conversation); h != nil {
		s.hubDeleted(h)
	}
}

// hubDeleted ends h's running turn and drops h and its subscribers,
// calling Gone on each: the conversation h serves is deleted. A
// conversation created later under the same id starts a new hub.
func (s *Service) hubDeleted(h *hub) {
	h.stop("", errDeleted)
	s.mu.Lock()
	h.mu.Lock()
	if s.hubs[h.id] == h {
		s.dropHub(h)
	}
	h.mu.Unlock()
	s.mu.Unlock()
	h.removeAll()
}

// deletedElsewhere handles a delete notice from any gateway (this one
// included) about conversation, created at created (zero: the notice
// does not say). It runs on the Log's notice goroutine, so the check,
// which may read the Log and wait for it, runs on a goroutine of its
// own.
func (s *Service) deletedElsewhere(conversation string, created time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.hubs[conversation]
	if h == nil || s.closed {
		return
	}
	s.notices.Add(1)
	go s.checkDeleted(h, created)
}

// checkDeleted drops h if the conversation it serves is deleted: the
// notice names it (by its creation time), or the Log has no such
// conversation now, or has another one under its id (created again
// before this check, or even before the notice: h's log is gone either
// way). A read the Log cannot answer is tried again, a few times, so
// that a notice that came while NATS was briefly unreachable is not
// lost; a conversation created again before h started keeps h.
func (s *Service) checkDeleted(h *hub, created time.Time) {
	defer s.notices.Done()
	<-h.started
	served, gone := h.state()
	if gone {
		return
	}
	if !created.IsZero() && created.Equal(served) {
		s.hubDeleted(h)
		return
	}
	wait := noticeReadFirst
	for read := 1; ; read++ {
		m, err := s.log.Meta(s.turnCtx, h.id)
		switch {
		case errors.Is(err, ErrNotFound), err == nil && h.replacedBy(m):
			s.hubDeleted(h)
			return
		case err == nil, s.turnCtx.Err() != nil, errors.Is(err, ErrClosed):
			return
		case read == noticeReads:
			s.logger.Warn("check a delete notice: subscribers here are not told", "conversation", h.id, "err", err)
			return
		}
		s.logger.Debug("check a delete notice, retrying", "conversation", h.id, "err", err)
		if pause.For(s.turnCtx, wait) != nil {
			return
		}
		wait = min(2*wait, noticeReadMax)
		if _, gone := h.state(); gone {
			return // nothing left here to tell
		}
	}
}

// acquireCurrent is acquire for a caller that then reads the
// conversation with read (as its user's): it returns the hub with the
// metadata read. The hub first, then the read: a delete that the read
// misses finds this hub. A hub that serves a conversation deleted since
// (another one has its id now) is dropped, its subscribers told, and a
// hub of the new one taken: the delete's notice may have been lost, and
// a subscriber of the old hub would miss the new log's seqs up to the
// old one's last.
func (s *Service) acquireCurrent(id string, read func() (*Meta, error)) (*hub, *Meta, error) {
	for {
		h := s.acquire(id)
		m, err := read()
		if err != nil {
			s.release(h)
			return nil, nil, err
		}
		if !h.replacedBy(m) {
			return h, m, nil
		}
		s.hubDeleted(h)
		s.release(h)
	}
}

// replacedBy reports whether m, read after h started, is of another
// conversation than the one h serves: h's was deleted.
func (h *hub) replacedBy(m *Meta) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return replaced(h.created, m)
}

// replaced reports whether m is of another conversation than the one
// created at created, under the same id; a zero created names whichever
// has the id.
func replaced(created time.Time, m *Meta) bool {
	return !created.IsZero() && !created.Equal(m.CreatedAt)
}

// state returns the CreatedAt of the conversation h serves, and whether
// h is dropped.
func (h *hub) state() (created time.Time, dropped bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.created, h.dropped
}

// createdAs records that this gateway created h's conversation, at t:
// it did not exist when h started.
func (h *hub) createdAs(t time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.created.IsZero() {
		h.created = t
	}
}
