package jetlog

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrLeaseHeld means another node holds the lease.
var ErrLeaseHeld = errors.New("jetlog: the lease is held by another node")

// ErrLeaseLost means a lease ran out, or was taken over, before its
// holder renewed it: the holder must stop writing for it.
var ErrLeaseLost = errors.New("jetlog: the lease was lost")

// Lease is the right of one node to run the turns of one conversation.
// The leases bucket forgets a lease LeaseTTL after its last renewal, so a
// dead node's lease runs out by itself; a live holder renews it well
// before then. Its methods are safe for concurrent use.
type Lease struct {
	l    *Log
	key  string
	node string

	mu  sync.Mutex
	rev uint64
	// valid is until when the holder may act on the lease: its last
	// successful renewal plus the TTL, less a margin for clock rates.
	valid time.Time
}

// leaseMargin is the part of the TTL that a holder does not use, so that
// it stops writing before another node may take over.
const leaseMargin = 5 // a fifth

// Acquire takes the lease of conversation id for node, if nobody holds it
// (or node itself held it before a restart). It fails with ErrLeaseHeld
// while another node holds it.
func (l *Log) Acquire(ctx context.Context, id, node string) (*Lease, error) {
	key := "l." + token(id)
	start := time.Now()
	ctx, cancel := l.reqCtx(ctx)
	defer cancel()
	rev, err := l.leases.Create(ctx, key, []byte(node))
	if errors.Is(err, jetstream.ErrKeyExists) {
		// A lease of our own from before a restart is ours to take back.
		e, gerr := l.leases.Get(ctx, key)
		if gerr != nil {
			if errors.Is(gerr, jetstream.ErrKeyNotFound) {
				return nil, ErrLeaseHeld // it ran out just now: try again later
			}
			return nil, fmt.Errorf("jetlog: lease %s: %w", id, gerr)
		}
		if string(e.Value()) != node {
			return nil, ErrLeaseHeld
		}
		rev, err = l.leases.Update(ctx, key, []byte(node), e.Revision())
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
			return nil, ErrLeaseHeld
		}
	}
	if err != nil {
		return nil, fmt.Errorf("jetlog: lease %s: %w", id, err)
	}
	return &Lease{l: l, key: key, node: node, rev: rev, valid: start.Add(l.usable())}, nil
}

// usable is how long after a renewal the holder may act on a lease.
func (l *Log) usable() time.Duration {
	return l.opts.LeaseTTL - l.opts.LeaseTTL/leaseMargin
}

// Holder returns the node holding conversation id's lease, or "".
func (l *Log) Holder(ctx context.Context, id string) (string, error) {
	ctx, cancel := l.reqCtx(ctx)
	defer cancel()
	e, err := l.leases.Get(ctx, "l."+token(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("jetlog: lease %s: %w", id, err)
	}
	return string(e.Value()), nil
}

// Renew extends the lease by the TTL. It fails with ErrLeaseLost if the
// lease ran out or another node took it; other errors (NATS unreachable)
// leave the lease as it was, valid until Valid says.
func (ls *Lease) Renew(ctx context.Context) error {
	ls.mu.Lock()
	rev := ls.rev
	ls.mu.Unlock()
	start := time.Now()
	ctx, cancel := ls.l.reqCtx(ctx)
	defer cancel()
	next, err := ls.l.leases.Update(ctx, ls.key, []byte(ls.node), rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyNotFound) {
		ls.mu.Lock()
		ls.valid = time.Time{}
		ls.mu.Unlock()
		return ErrLeaseLost
	}
	if err != nil {
		return fmt.Errorf("jetlog: renew lease: %w", err)
	}
	ls.mu.Lock()
	ls.rev = next
	ls.valid = start.Add(ls.l.usable())
	ls.mu.Unlock()
	return nil
}

// Valid reports whether the holder may still act on the lease: it was
// renewed recently enough that no other node can have taken it.
func (ls *Lease) Valid() bool {
	return time.Now().Before(ls.until())
}

// until is when the holder stops acting on the lease, short of a
// renewal.
func (ls *Lease) until() time.Time {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	return ls.valid
}

// Release gives the lease up, if it is still held.
func (ls *Lease) Release(ctx context.Context) error {
	ls.mu.Lock()
	rev := ls.rev
	ls.valid = time.Time{}
	ls.mu.Unlock()
	ctx, cancel := ls.l.reqCtx(ctx)
	defer cancel()
	err := ls.l.leases.Delete(ctx, ls.key, jetstream.LastRevision(rev))
	if err != nil && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !errors.Is(err, jetstream.ErrKeyExists) {
		return fmt.Errorf("jetlog: release lease: %w", err)
	}
	return nil
}
