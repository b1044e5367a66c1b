package jetlog_test

import (
	"context"
	"testing"
	"time"

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
	ctx := context.Background()
	srv := natstest.Start(t)
	gate := make(chan struct{})
	started := make(chan int, 1)
	// Leases that no sweep looks for within the test: only a's runner can
	// run the new turn.
	a := startNode(t, "a", srv.URL(), &words{n: 1, gate: gate, started: started}, time.Hour)
	b := startNode(t, "b", srv.URL(), &words{n: 1}, time.Hour)
	const id = "reused"
	createWithActions(t, a, id, 0)
	onOld := subscribe(t, a, id, 0)
	send(t, a, id, "one", nil)
	<-started // the turn runs on a, which holds the lease

	if err := b.store.Delete(ctx, id, user); err != nil { // no notice
		t.Fatal(err)
	}
	createWithActions(t, b, id, 0)
	onNew := subscribe(t, b, id, 0)
	send(t, b, id, "three", nil)
	close(gate)

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
	evs := onNew.waitFor(t, "the new turn's end", turnEnds(1))
	checkLog(t, evs)
	if end := evs[len(evs)-1]; end.StopReason != protocol.StopEndTurn || end.Message.Text != "w0 " {
		t.Fatalf("the new turn ended %q with %q, want end_turn with its reply", end.StopReason, end.Message.Text)
	}
}
