package jetlog_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/jetlog"
	"github.com/chatgateway/gateway/internal/jetlog/natstest"
	"github.com/chatgateway/gateway/protocol"
)

// TestTurnOfRecreatedAfterLostNotice: gateway b deletes a conversation
// whose turn runs on gateway a, and the notice is lost; b creates it again
// under its id and sends there, but a holds the conversation's lease, so
// the new turn waits. When a's turn stops (its next chunk finds another
// turn open), a finds the new turn: it must not run it on the hub of the
// deleted conversation, whose subscriber would get the new log's events
// after the old one's last seq, as if they continued it. It tells that
// subscriber the conversation is gone, and runs the new turn on a hub of
// its own.
func TestTurnOfRecreatedAfterLostNotice(t *testing.T) {
	r := recreateWhileRunning(t)
	onOld := r.onOld
	close(r.gate)

	for done := false; !done; {
		select {
		case <-onOld.gone:
			done = true
		case <-onOld.added:
			onOld.mu.Lock()
			evs := onOld.events
			onOld.mu.Unlock()
			if len(evs) > 2 {
				t.Fatalf("the deleted conversation's subscriber got %s", describe(evs))
			}
		}
	}
	r.newTurnEnds(t)
}

// TestTurnOfRecreatedAfterDeleteNotice: as TestTurnOfRecreatedAfterLostNotice,
// but the notice comes, after b's runner of the new conversation has found
// the lease held by a's runner of the deleted one. The notice stops a's
// turn (its context is cancelled); a's runner, letting the lease go, looks
// for work queued meanwhile: that look must not use the cancelled context,
// whose read fails, or the new turn waits for the sweep (half a lease TTL,
// here half an hour).
func TestTurnOfRecreatedAfterDeleteNotice(t *testing.T) {
	r := recreateWhileRunning(t)
	<-r.held // b's runner found a's lease: a's runner must run the new turn

	if err := r.b.store.NotifyDeleted(context.Background(), r.id, r.created); err != nil {
		t.Fatal(err)
	}
	<-r.onOld.gone // a's turn is stopped: its context was cancelled first
	close(r.gate)

	r.newTurnEnds(t)
}

// recreated is what recreateWhileRunning leaves.
type recreated struct {
	a, b    *node
	id      string
	created time.Time     // of the deleted conversation
	gate    chan struct{} // a's model waits on it before its word
	held    <-chan string // b's runner found a's lease
	// onOld follows the deleted conversation on a, onNew the new one on b.
	onOld, onNew *subscriber
}

// recreateWhileRunning starts gateways a and b and runs a turn on a, which
// holds the lease, waiting on its gate; then b deletes the conversation
// (with no notice), creates it again under its id and sends there. Leases
// are such that no sweep looks for work within the test: only a's runner
// can run the new turn.
func recreateWhileRunning(t *testing.T) *recreated {
	t.Helper()
	ctx := context.Background()
	srv := natstest.Start(t)
	r := &recreated{id: "reused", gate: make(chan struct{})}
	started := make(chan int, 2)
	r.a = startNode(t, "a", srv.URL(), &words{n: 1, gate: r.gate, started: started}, time.Hour)
	r.b, r.held = startNodeHeld(t, "b", srv.URL(), &words{n: 1}, time.Hour)
	createWithActions(t, r.a, r.id, 0)
	r.created = listedCreatedAt(t, r.a, r.id)
	r.onOld = subscribe(t, r.a, r.id, 0)
	send(t, r.a, r.id, "one", nil)
	<-started // the turn runs on a, which holds the lease

	if _, err := r.b.store.Delete(ctx, r.id, user); err != nil { // no notice
		t.Fatal(err)
	}
	createWithActions(t, r.b, r.id, 0)
	r.onNew = subscribe(t, r.b, r.id, 0)
	send(t, r.b, r.id, "three", nil)
	return r
}

// newTurnEnds waits until the new conversation's turn ends, and checks
// that it ended with its reply and that the new log is gapless from seq 1.
func (r *recreated) newTurnEnds(t *testing.T) {
	t.Helper()
	evs := r.onNew.waitFor(t, "the new turn's end", turnEnds(1))
	checkLog(t, evs)
	if end := evs[len(evs)-1]; end.StopReason != protocol.StopEndTurn || end.Message.Text != "w0 " {
		t.Fatalf("the new turn ended %q with %q, want end_turn with its reply", end.StopReason, end.Message.Text)
	}
}

// heldStore is a Store that tells, on held, each conversation whose lease
// it found held by another gateway.
type heldStore struct {
	*jetlog.Store
	held chan string
}

func (s *heldStore) Lease(ctx context.Context, id string) (convo.TurnLease, error) {
	l, err := s.Store.Lease(ctx, id)
	if errors.Is(err, convo.ErrLeaseHeld) {
		select {
		case s.held <- id:
		default:
		}
	}
	return l, err
}

// startNodeHeld is startNode on a heldStore, whose held channel it returns.
func startNodeHeld(t *testing.T, name, urls string, model convo.Model, lease time.Duration) (*node, <-chan string) {
	t.Helper()
	st, err := jetlog.OpenStore(context.Background(), urls, jetlog.StoreOptions{Node: name, Logger: testLogger(t),
		Options: jetlog.Options{LeaseTTL: lease, Timeout: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	hs := &heldStore{Store: st, held: make(chan string, 1)}
	svc, err := convo.New(hs, model, convo.Config{DefaultModel: "test", Logger: testLogger(t), Agents: toolAgents{}})
	if err != nil {
		t.Fatal(err)
	}
	n := &node{name: name, store: st, svc: svc}
	t.Cleanup(func() { n.stop() })
	return n, hs.held
}
