package jetlog

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/chatgateway/gateway/internal/convo"
)

// Lease implements convo.Leaser: it takes conversation id's turn lease
// for this gateway and renews it every third of its TTL until Release.
// Lost is closed when a renewal finds the lease taken, or when no renewal
// succeeded for long enough that another gateway may take it (NATS cut
// off), or when another gateway took this one's node name: the turn must
// stop writing then. While the name is another's, every lease is held
// (by that gateway).
func (s *Store) Lease(ctx context.Context, id string) (convo.TurnLease, error) {
	if s.claim.isTaken() {
		return nil, convo.ErrLeaseHeld
	}
	ls, err := s.log.Acquire(ctx, id, s.node)
	if errors.Is(err, ErrLeaseHeld) {
		return nil, convo.ErrLeaseHeld
	}
	if err != nil {
		return nil, unavailable(err)
	}
	s.metrics.LeaseChanges.WithLabelValues("acquired").Inc()
	tl := &turnLease{s: s, id: id, ls: ls, lost: make(chan struct{}), done: make(chan struct{})}
	go tl.renew()
	return tl, nil
}

// LeaseTTL implements convo.Leaser.
func (s *Store) LeaseTTL() time.Duration { return s.log.LeaseTTL() }

type turnLease struct {
	s    *Store
	id   string
	ls   *Lease
	lost chan struct{}
	done chan struct{}
	once sync.Once
}

func (tl *turnLease) Lost() <-chan struct{} { return tl.lost }

// renew renews the lease until Release, and closes lost when it cannot
// act on it any more.
func (tl *turnLease) renew() {
	every := tl.s.log.LeaseTTL() / 3
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-tl.done:
			return
		case <-tl.s.claim.taken:
			// The gateway that took the node name takes this lease as
			// its own from before, and ends the turn.
			tl.s.logger.Warn("lost a turn lease: another gateway took this node's name", "conversation", tl.id)
			tl.s.metrics.LeaseChanges.WithLabelValues("lost").Inc()
			close(tl.lost)
			return
		case <-t.C:
		}
		// A renewal that NATS does not answer before the lease stops
		// being usable (a partition) fails then, not at the request
		// timeout, which may be later: the turn stops before the server
		// lets the lease run out, and another gateway may take it.
		ctx, cancel := context.WithDeadline(context.Background(), tl.ls.until())
		err := tl.ls.Renew(ctx)
		cancel()
		switch {
		case errors.Is(err, ErrLeaseLost):
			tl.s.logger.Warn("lost a turn lease", "conversation", tl.id)
			tl.s.metrics.LeaseChanges.WithLabelValues("lost").Inc()
			close(tl.lost)
			return
		case err != nil && !tl.ls.Valid():
			tl.s.logger.Warn("a turn lease ran out: NATS is unreachable", "conversation", tl.id, "err", err)
			tl.s.metrics.LeaseChanges.WithLabelValues("lost").Inc()
			close(tl.lost)
			return
		}
	}
}

// Release stops the renewals and gives the lease up.
func (tl *turnLease) Release() {
	tl.once.Do(func() {
		close(tl.done)
		ctx, cancel := context.WithTimeout(context.Background(), tl.s.log.opts.Timeout)
		defer cancel()
		if err := tl.ls.Release(ctx); err != nil {
			tl.s.logger.Debug("release a turn lease", "conversation", tl.id, "err", err)
		}
		tl.s.metrics.LeaseChanges.WithLabelValues("released").Inc()
	})
}
