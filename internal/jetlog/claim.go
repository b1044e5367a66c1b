package jetlog

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// ErrNodeTaken means that another gateway, alive, runs under the node
// name a Store was given: two gateways of one name would each take the
// other's turn leases for their own. The error that matches it names
// the node and the other gateway's host.
var ErrNodeTaken = errors.New("jetlog: another gateway runs under this node name")

// nodeTakenError is ErrNodeTaken for one node, held by holder.
type nodeTakenError struct {
	node   string
	holder claimRecord
}

func (e *nodeTakenError) Error() string {
	msg := fmt.Sprintf("jetlog: another gateway runs as node %q", e.node)
	if e.holder.Host != "" {
		msg += fmt.Sprintf(" (on host %q since %s)", e.holder.Host, e.holder.Since.Format(time.RFC3339))
	}
	return msg
}

func (e *nodeTakenError) Is(target error) bool { return target == ErrNodeTaken }

// nodeClaim is one run's claim on its node name: a key in the leases
// bucket (so with its TTL) that holds the run's id, renewed every third
// of the TTL while the run lasts and deleted when it stops cleanly. A
// gateway acts on the turn leases held in its name only while its claim
// is its own.
type nodeClaim struct {
	l      *Log
	key    string
	node   string
	value  []byte
	logger *slog.Logger

	// rev is the claim's revision, owned by renew while it runs.
	rev uint64

	// taken is closed when the renewal finds the claim held by another
	// run (it ran out during a partition, and another gateway of the name
	// started meanwhile); stopped, when the renewal returns. stop ends
	// the renewal, and cuts short the request it waits for.
	taken, stopped chan struct{}
	ctx            context.Context
	stop           context.CancelFunc
}

// claimRecord is what a node's claim holds: which run holds it, for
// operators and for the error of a gateway that finds it taken.
type claimRecord struct {
	Run   string    `json:"run"`
	Host  string    `json:"host"`
	Since time.Time `json:"since"`
}

// claimKey is node's claim key: node names are free text, keys are not.
func claimKey(node string) string {
	return "n." + base64.RawURLEncoding.EncodeToString([]byte(node))
}

// claimNode claims node for this run. While another run's claim is there
// it waits: a claim that runs out (a run that stopped without releasing
// it) is taken; one that is renewed meanwhile (a gateway of that name
// runs) fails the claim with ErrNodeTaken. The wait lasts about a TTL at
// most. The claim is renewed until release.
func claimNode(ctx context.Context, l *Log, node string, logger *slog.Logger) (*nodeClaim, error) {
	value, err := json.Marshal(claimRecord{Run: nuid.Next(), Host: hostName(), Since: time.Now().UTC()})
	if err != nil {
		return nil, err
	}
	c := &nodeClaim{l: l, key: claimKey(node), node: node, value: value, logger: logger,
		taken: make(chan struct{}), stopped: make(chan struct{})}
	for {
		rctx, cancel := l.reqCtx(ctx)
		rev, err := l.leases.Create(rctx, c.key, value)
		cancel()
		if err == nil {
			c.rev = rev
			c.ctx, c.stop = context.WithCancel(context.Background())
			go c.renew()
			return c, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, fmt.Errorf("jetlog: claim node %q: %w", node, err)
		}
		if err := c.waitOut(ctx); err != nil {
			return nil, err
		}
	}
}

// waitOut waits until the claim of another run on c's node is gone
// (deleted or run out), or fails with ErrNodeTaken once it is renewed.
func (c *nodeClaim) waitOut(ctx context.Context) error {
	ttl := c.l.opts.LeaseTTL
	w, err := c.l.leases.Watch(ctx, c.key)
	if err != nil {
		return fmt.Errorf("jetlog: claim node %q: %w", c.node, err)
	}
	defer func() { _ = w.Stop() }()
	// A live holder renews within a third of the TTL, a dead one's claim
	// runs out within the TTL: past twice the TTL the bucket is not what
	// this gateway expects (another gateway keeps it with a longer TTL).
	wait := 2*ttl + c.l.opts.Timeout
	limit := time.NewTimer(wait)
	defer limit.Stop()
	var holder *claimRecord
	for {
		var e jetstream.KeyValueEntry
		var ok bool
		select {
		case e, ok = <-w.Updates():
		case <-limit.C:
			return fmt.Errorf("jetlog: claim node %q: another run's claim neither ran out nor was renewed in %v", c.node, wait)
		case <-ctx.Done():
			return fmt.Errorf("jetlog: claim node %q: %w", c.node, ctx.Err())
		}
		switch {
		case !ok:
			return fmt.Errorf("jetlog: claim node %q: the watch of its claim stopped", c.node)
		case e == nil && holder == nil:
			return nil // gone before the watch began
		case e == nil:
			c.logger.Warn("the node name is claimed by another run: waiting for its claim to run out (a run that stopped without releasing it) or be renewed (another gateway runs under this name)",
				"node", c.node, "host", holder.Host, "since", holder.Since, "wait", ttl)
		case e.Operation() != jetstream.KeyValuePut:
			return nil // released, or ran out
		case holder == nil:
			holder = &claimRecord{}
			_ = json.Unmarshal(e.Value(), holder) // a record of an unknown shape names no host
		default:
			return &nodeTakenError{node: c.node, holder: *holder}
		}
	}
}

// renew renews the claim every third of the TTL until release. A claim
// that ran out meanwhile (NATS was unreachable for longer) is made again
// if nobody holds it; one that another run holds closes taken.
func (c *nodeClaim) renew() {
	defer close(c.stopped)
	t := time.NewTicker(c.l.opts.LeaseTTL / 3)
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		err := c.renewOnce()
		if errors.Is(err, ErrNodeTaken) {
			c.logger.Error("another gateway took this gateway's node name: this one takes no turn leases any more and is not ready; stop one of them, and give each its own -node",
				"node", c.node, "err", err)
			close(c.taken)
			return
		}
		if err != nil {
			c.logger.Debug("renew the node's claim", "node", c.node, "err", err)
		}
	}
}

// renewOnce renews the claim, makes it again if it ran out, or fails with
// ErrNodeTaken if another run holds it.
func (c *nodeClaim) renewOnce() error {
	ctx, cancel := c.l.reqCtx(c.ctx)
	defer cancel()
	rev, err := c.l.leases.Update(ctx, c.key, c.value, c.rev)
	if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyNotFound) {
		if err == nil {
			c.rev = rev
		}
		return err
	}
	// The claim ran out, and is gone or another run's now.
	rev, err = c.l.leases.Create(ctx, c.key, c.value)
	if err == nil {
		c.logger.Warn("this gateway's node claim ran out while NATS was unreachable: claimed again", "node", c.node)
		c.rev = rev
		return nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return err
	}
	e, err := c.l.leases.Get(ctx, c.key)
	if err != nil {
		return err
	}
	if bytes.Equal(e.Value(), c.value) {
		// A renewal whose answer was lost (a leader change) stored it.
		c.rev = e.Revision()
		return nil
	}
	taken := &nodeTakenError{node: c.node}
	_ = json.Unmarshal(e.Value(), &taken.holder) // a record of an unknown shape names no host
	return taken
}

// isTaken reports whether another run took the claim.
func (c *nodeClaim) isTaken() bool {
	select {
	case <-c.taken:
		return true
	default:
		return false
	}
}

// release stops the renewals and deletes the claim, if it is still this
// run's, so that a restart under the name need not wait for it to run
// out. It waits a third of the TTL at most (NATS may be unreachable):
// then a restart waits two thirds more at most.
func (c *nodeClaim) release() {
	c.stop()
	<-c.stopped
	if c.isTaken() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), min(c.l.opts.Timeout, c.l.opts.LeaseTTL/3))
	defer cancel()
	err := c.l.leases.Delete(ctx, c.key, jetstream.LastRevision(c.rev))
	if err != nil && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !errors.Is(err, jetstream.ErrKeyExists) {
		c.logger.Warn("release the node's claim: a restart under its name waits for it to run out", "node", c.node, "err", err)
	}
}
