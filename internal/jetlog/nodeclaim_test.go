package jetlog_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/jetlog"
	"github.com/chatgateway/gateway/internal/jetlog/natstest"
)

// waitingForClaim is what a Store logs while it waits for another run's
// claim on its node name to run out.
const waitingForClaim = "the node name is claimed by another run"

// openNode opens a Store named node on the NATS server at url, with lease
// TTL ttl, logging to log; the test closes it when it ends.
func openNode(t *testing.T, url, node string, ttl time.Duration, log slog.Handler) (*jetlog.Store, error) {
	t.Helper()
	st, err := jetlog.OpenStore(context.Background(), url, jetlog.StoreOptions{Node: node, Logger: slog.New(log),
		Options: jetlog.Options{LeaseTTL: ttl, Timeout: time.Second}})
	if err == nil {
		t.Cleanup(func() { _ = st.Close() })
	}
	return st, err
}

// mustOpenNode is openNode, failing the test on an error.
func mustOpenNode(t *testing.T, url, node string, ttl time.Duration, log slog.Handler) *jetlog.Store {
	t.Helper()
	st, err := openNode(t, url, node, ttl, log)
	if err != nil {
		t.Fatalf("gateway %s: %v", node, err)
	}
	return st
}

// newWarnLog is a warnLog whose seen holds every warning of a test.
func newWarnLog(t *testing.T) *warnLog { return &warnLog{t: t, seen: make(chan string, 64)} }

// warned reports whether w has seen a warning that contains msg, taking
// the warnings seen so far.
func (w *warnLog) warned(msg string) bool {
	found := false
	for len(w.seen) > 0 {
		found = strings.Contains(<-w.seen, msg) || found
	}
	return found
}

// TestNodeNamesAreClaimed runs gateways under one name and under two on
// one NATS server: a second live gateway of a name is refused, one of
// another name runs beside it, a restart after a clean stop starts at
// once, and a restart after a crash waits for the dead run's claim to
// run out, then starts.
func TestNodeNamesAreClaimed(t *testing.T) {
	t.Run("SecondLiveGatewayIsRefused", func(t *testing.T) {
		t.Parallel()
		srv := natstest.Start(t)
		first := mustOpenNode(t, srv.URL(), "x", time.Second, newWarnLog(t))
		_, err := openNode(t, srv.URL(), "x", time.Second, newWarnLog(t))
		if !errors.Is(err, jetlog.ErrNodeTaken) || !strings.Contains(err.Error(), `node "x"`) {
			t.Fatalf("a second gateway named x: %v, want ErrNodeTaken naming x", err)
		}
		if !first.Ready() {
			t.Fatal("the first gateway is not ready after the second was refused")
		}
	})

	t.Run("OtherNamesRunSideBySide", func(t *testing.T) {
		t.Parallel()
		srv := natstest.Start(t)
		for _, node := range []string{"a", "b"} {
			if st := mustOpenNode(t, srv.URL(), node, time.Second, newWarnLog(t)); !st.Ready() {
				t.Fatalf("gateway %s is not ready", node)
			}
		}
	})

	t.Run("RestartAfterCleanStop", func(t *testing.T) {
		t.Parallel()
		srv := natstest.Start(t)
		// A lease TTL of a minute: a restart that waited for the claim to
		// run out would take that long, and say so.
		first := mustOpenNode(t, srv.URL(), "x", time.Minute, newWarnLog(t))
		if err := first.Close(); err != nil {
			t.Fatal(err)
		}
		log := newWarnLog(t)
		mustOpenNode(t, srv.URL(), "x", time.Minute, log)
		if log.warned(waitingForClaim) {
			t.Fatal("a restart after a clean stop waited for the claim of the run before")
		}
	})

	t.Run("RestartAfterCrash", func(t *testing.T) {
		t.Parallel()
		srv := natstest.Start(t)
		first := mustOpenNode(t, srv.URL(), "x", time.Second, newWarnLog(t))
		first.Cut() // dead to NATS: its claim is neither renewed nor released
		log := newWarnLog(t)
		mustOpenNode(t, srv.URL(), "x", time.Second, log)
		if !log.warned(waitingForClaim) {
			t.Fatal("a restart after a crash did not say why it waited")
		}
	})
}

// TestNodeNameTakenAfterPartition cuts a gateway off NATS for longer
// than the TTL, twice. The first time nobody takes its name: it claims
// it again when the partition heals, and stays ready. The second time
// another gateway starts under the name meanwhile: when the partition
// heals, the first finds its claim taken, takes no lease any more, and is
// not ready, while the other is.
func TestNodeNameTakenAfterPartition(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	px := natstest.NewProxy(t, srv)
	const ttl = time.Second
	a := mustOpenNode(t, px.URL(), "x", ttl, newWarnLog(t))
	claims := watchClaim(t, srv, "x")

	px.Cut()
	claims.waitFor(t, "a's claim to run out", jetstream.KeyValuePurge)
	px.Heal()
	claims.waitFor(t, "a's claim made again", jetstream.KeyValuePut)
	if !a.Ready() {
		t.Fatal("a is not ready once its claim is made again")
	}

	px.Cut()
	claims.waitFor(t, "a's claim to run out again", jetstream.KeyValuePurge)
	b := mustOpenNode(t, srv.URL(), "x", ttl, newWarnLog(t))
	px.Heal()
	waitClosed(t, "a to find its name taken", a.NodeTaken())
	if a.Ready() {
		t.Fatal("a is ready with its node name taken")
	}
	if _, err := a.Lease(context.Background(), "c1"); !errors.Is(err, convo.ErrLeaseHeld) {
		t.Fatalf("a lease taken by a with its name taken: %v, want held", err)
	}
	if !b.Ready() {
		t.Fatal("b, which holds the name now, is not ready")
	}
}

// claimWatch delivers the changes of a node's claim.
type claimWatch struct{ w jetstream.KeyWatcher }

// watchClaim watches the claim of node on srv, from now on.
func watchClaim(t *testing.T, srv *natstest.Server, node string) *claimWatch {
	t.Helper()
	w, err := leaseBucket(t, srv).Watch(context.Background(), jetlog.ClaimKey(node), jetstream.UpdatesOnly())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Stop() })
	return &claimWatch{w: w}
}

// waitFor waits for a change of the claim by op.
func (c *claimWatch) waitFor(t *testing.T, what string, op jetstream.KeyValueOp) {
	t.Helper()
	for {
		var e jetstream.KeyValueEntry
		waitOn(t, what, func(deadline <-chan time.Time) bool {
			select {
			case e = <-c.w.Updates():
				return true
			case <-deadline:
				return false
			}
		})
		if e != nil && e.Operation() == op {
			return
		}
	}
}

// waitClosed waits until ch is closed.
func waitClosed(t *testing.T, what string, ch <-chan struct{}) {
	t.Helper()
	waitOn(t, what, func(deadline <-chan time.Time) bool {
		select {
		case <-ch:
			return true
		case <-deadline:
			return false
		}
	})
}

// waitOn runs wait, which returns false if deadline fires first: a few
// seconds before go test's -timeout, so that the test says what it
// waited for.
func waitOn(t *testing.T, what string, wait func(deadline <-chan time.Time) bool) {
	t.Helper()
	var deadline <-chan time.Time
	if d, ok := t.Deadline(); ok {
		deadline = time.After(time.Until(d) - 5*time.Second)
	}
	if !wait(deadline) {
		t.Fatalf("gave up waiting for %s", what)
	}
}

// TestTurnStopsWhenNodeNameTaken takes gateway a's node name from under
// it while it runs a turn, as a gateway started under the same name does
// once a's claim is gone (it ran out, or was deleted by hand): at its
// next renewal a finds the claim another run's, and stops the turn,
// whose lease is valid still, for the gateway that now has the name to
// take it as its own from before.
func TestTurnStopsWhenNodeNameTaken(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	model := &hangingModel{started: make(chan struct{}), stopped: make(chan struct{})}
	a := startNode(t, "x", srv.URL(), model, time.Second)
	id := create(t, a)
	send(t, a, id, "hello", nil)
	waitClosed(t, "the turn to start", model.started)
	if _, err := leaseBucket(t, srv).Put(context.Background(), jetlog.ClaimKey("x"), []byte(`{"run":"another","host":"elsewhere"}`)); err != nil {
		t.Fatal(err)
	}
	waitClosed(t, "a to find its name taken", a.store.NodeTaken())
	waitClosed(t, "a's turn to stop", model.stopped)
}

// hangingModel starts one turn, which streams nothing and lasts until it
// is cancelled.
type hangingModel struct {
	started, stopped chan struct{}
}

func (m *hangingModel) Stream(ctx context.Context, _ convo.ModelRequest, _ func(convo.Chunk)) (convo.Result, error) {
	close(m.started)
	<-ctx.Done()
	close(m.stopped)
	return convo.Result{}, ctx.Err()
}
