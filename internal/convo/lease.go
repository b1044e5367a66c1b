package convo

import (
	"context"
	"errors"
	"time"
)

// ErrLeaseHeld is what a Leaser returns while another gateway holds the
// lease.
var ErrLeaseHeld = errors.New("convo: another gateway holds the turn lease")

// errLeaseLost stops a turn whose gateway lost its conversation's lease:
// the gateway that takes the lease over ends the turn, so this one must
// not write for it any more.
var errLeaseLost = errors.New("convo: the turn lease was lost")

// Leaser is implemented by a Log that several gateways share (cluster
// mode). A conversation's turns then run only on the gateway that holds
// its lease. A gateway that dies stops renewing its leases; once one runs
// out, another gateway takes it, ends the turn that was cut off as
// "interrupted" and runs the queued turns.
type Leaser interface {
	// Lease takes conversation id's turn lease for this gateway (also
	// when this gateway held it before a restart), or fails with
	// ErrLeaseHeld.
	Lease(ctx context.Context, id string) (TurnLease, error)
	// LeaseTTL is how long a lease outlives the last renewal of its
	// holder. The Service looks for conversations left with work by a
	// dead gateway twice per TTL.
	LeaseTTL() time.Duration
	// Orphans returns the metadata of the conversations with an open or
	// queued turn whose lease no other gateway holds: those the Service
	// looks for.
	Orphans(ctx context.Context) ([]*Meta, error)
}

// Canceller is implemented by a Log that several gateways share (cluster
// mode), where a conversation's turn runs on the gateway that holds its
// lease while the client that stops it may be on any other: a cancel
// reaches every gateway through the Log.
type Canceller interface {
	// OnCancel calls fn with the conversation and open turn of each
	// Cancel, made on any gateway (this one included), from then until
	// the Log closes; call it once, before Cancel. fn must not block, nor
	// call the Log.
	OnCancel(fn func(conversation, turn string)) error
	// Cancel asks every gateway to stop conversation's open turn turn.
	// It fails (wrapping ErrUnavailable) when the request cannot be
	// sent; a gateway cut off from the Log meanwhile does not get it, but
	// then it loses its lease and stops the turn anyway.
	Cancel(ctx context.Context, conversation, turn string) error
}

// DeleteNotifier is implemented by a Log that several gateways share:
// a conversation deleted through one gateway may have subscribers, and a
// running turn, on the others.
type DeleteNotifier interface {
	// OnDeleted calls fn with the conversation and creation time of
	// each NotifyDeleted, made on any gateway (this one included), from
	// then until the Log closes; call it once, before NotifyDeleted. The
	// creation time is zero when the notice does not say (a gateway of an
	// older version sent it). fn runs on the Log's goroutine, one notice
	// at a time: it must not block, nor call the Log.
	OnDeleted(fn func(conversation string, created time.Time)) error
	// NotifyDeleted tells every gateway that conversation, created at
	// created (zero: not known), was deleted. It fails (wrapping
	// ErrUnavailable) when the notice cannot be sent.
	NotifyDeleted(ctx context.Context, conversation string, created time.Time) error
}

// TurnLease is a held lease, renewed until Release.
type TurnLease interface {
	// Lost is closed when the lease is lost: it was taken over, or it
	// could not be renewed in time (the gateway is cut off).
	Lost() <-chan struct{}
	// Release gives the lease up.
	Release()
}

// leasedTurn is turn for a Log shared by several gateways: it runs the
// conversation's turns only while holding its lease, ending first a turn
// that a gateway which held the lease before left open (it died, or this
// gateway restarted). It returns whether another turn may be waiting.
func (s *Service) leasedTurn(ctx context.Context, l Leaser, h *hub, t *turn) bool {
	lease, err := l.Lease(ctx, h.id)
	if err != nil {
		if !errors.Is(err, ErrLeaseHeld) {
			s.logger.Warn("take a turn lease", "conversation", h.id, "err", err)
		}
		return false // the holder runs the turns
	}
	done := make(chan struct{})
	lost := false
	go func() {
		select {
		case <-lease.Lost():
			t.cancel(errLeaseLost)
		case <-done:
		}
	}()
	next := true
	if m, err := s.log.Meta(ctx, h.id); err != nil || !s.current(h, m) {
		next = false
	} else if m.OpenTurn != nil {
		// In this gateway only the runner streams turns, and it holds
		// the lease now: an open turn that has streamed was cut off.
		// (One that has not, a send opened; it runs now.)
		cut, err := s.cutTurn(m)
		if err != nil {
			s.logger.Error("read a cut-off turn", "conversation", h.id, "err", err)
			next = false
		} else if cut.streamed {
			// The calls' results must precede the turn_end: while storage
			// fails, they are retried as it is; if they cannot be stored
			// (the gateway stops), the turn stays open for the next look.
			if err := s.retry(s.turnCtx, h.id, "store the results of a cut-off turn's calls", func() error {
				return s.closeCalls(m)
			}); err != nil {
				s.logger.Error("close the calls of a cut-off turn", "conversation", h.id, "err", err)
				next = false
			} else {
				_ = s.endCutOff(s.turnCtx, m, cut)
				s.logger.Info("ended a turn cut off on another gateway", "conversation", h.id, "turn", m.OpenTurn.Turn)
			}
		}
	}
	if next {
		next = s.turn(ctx, h, nil)
	}
	close(done)
	select {
	case <-lease.Lost():
		lost = true
	default:
	}
	lease.Release()
	if !next && !lost && !s.draining.Load() {
		// A send on another gateway may have queued a turn while this
		// one held the lease: that gateway could not take it, so this
		// one looks again now that it has let go. The look does not use
		// ctx, which a delete, a cancel or a lost lease may have
		// cancelled: a conversation created again under a deleted one's
		// id, whose runner found this one's lease, would wait for the
		// sweep. s.turnCtx ends at shutdown, the Log bounds the read.
		if m, err := s.log.Meta(s.turnCtx, h.id); err == nil && (m.OpenTurn != nil || len(m.Pending) > 0) && s.current(h, m) {
			next = true
		}
	}
	return next
}

// sweep looks, twice per lease TTL until the Service closes, for
// conversations with work that no gateway runs (their gateway died, or a
// send found the lease held by a gateway that then let go), and kicks
// them: the runner takes the lease if nobody holds it.
func (s *Service) sweep(l Leaser) {
	t := time.NewTicker(l.LeaseTTL() / 2)
	defer t.Stop()
	for {
		select {
		case <-s.turnCtx.Done(): // the service is closing
			return
		case <-t.C:
		}
		orphans, err := l.Orphans(s.turnCtx)
		if err != nil {
			s.logger.Debug("look for unfinished conversations", "err", err)
			continue
		}
		for _, m := range orphans {
			h := s.acquire(m.ID)
			s.kick(h)
			s.release(h)
		}
	}
}
