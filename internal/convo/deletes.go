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
// subscribers, calling Gone on each, if its hub serves the conversation
// created at created, the one the Log deleted. A conversation created
// again under the id since (a send may have stored a turn there already)
// has a hub of its own, which stays.
func (s *Service) deleted(conversation string, created time.Time) {
	if h := s.hubOf(conversation); h != nil && !h.replacedBy(created) {
		s.hubDeleted(h)
	}
}

// hubDeleted ends h's running turn and drops h and its subscribers,
// calling Gone on each: the conversation h serves is deleted. No runner
// starts on h any more: a conversation created later under the same id
// starts a new hub, which runs its turns.
func (s *Service) hubDeleted(h *hub) {
	h.markDeleted()
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
		case errors.Is(err, ErrNotFound), err == nil && h.replacedBy(m.CreatedAt):
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
// hub of the new one taken: the delete's notice may have been lost, or
// its drop may not have come yet. A subscribe on the old hub would
// replay the new log only up to the old one's last seq; a send would run
// its turn on a hub that the delete then drops.
func (s *Service) acquireCurrent(id string, read func() (*Meta, error)) (*hub, *Meta, error) {
	for {
		h := s.acquire(id)
		m, err := read()
		if err != nil {
			s.release(h)
			return nil, nil, err
		}
		if !h.replacedBy(m.CreatedAt) {
			return h, m, nil
		}
		s.hubDeleted(h)
		s.release(h)
	}
}

// current reports whether m, which h's runner read, is of the
// conversation h serves. If it is not, that conversation was deleted and
// another created under its id (its delete has not dropped h yet, or, in
// cluster mode, the notice was lost): the runner must not run the new
// one's turns, which a runner of its own hub runs. h is dropped as a
// delete drops it, and that hub is kicked, since the new conversation's
// own kick may have found h's runner holding the lease.
func (s *Service) current(h *hub, m *Meta) bool {
	if !h.replacedBy(m.CreatedAt) {
		return true
	}
	s.hubDeleted(h)
	now := s.acquire(h.id)
	s.kick(now)
	s.release(now)
	return false
}

// replacedBy reports whether created, a conversation's CreatedAt, names
// another conversation than the one h serves: read after h started, it
// says h's was deleted.
func (h *hub) replacedBy(created time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return replaced(h.created, created)
}

// replaced reports whether the conversation created at now is another
// than the one created at created, under the same id; a zero created
// names whichever has the id.
func replaced(created, now time.Time) bool {
	return !created.IsZero() && !created.Equal(now)
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
