package jetlog_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/jetlog"
	"github.com/chatgateway/gateway/internal/jetlog/natstest"
	"github.com/chatgateway/gateway/protocol"
)

// TestGatewaysShareConversations runs two gateways on a three-server
// JetStream cluster, each connected to a server of its own.
func TestGatewaysShareConversations(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	model := &words{n: 5}
	a := startNode(t, "a", c.Servers[0].URL(), model, 0)
	b := startNode(t, "b", c.Servers[1].URL(), model, 0)

	t.Run("CrossNodeStreaming", func(t *testing.T) {
		id := create(t, a)
		onB := subscribe(t, b, id, 0)
		onA := newSubscriber()
		send(t, a, id, "hello", onA)
		fromA := onA.waitFor(t, "the turn on a", turnEnds(1))
		fromB := onB.waitFor(t, "the turn on b", turnEnds(1))
		checkLog(t, fromB)
		if describe(fromA) != describe(fromB) {
			t.Fatalf("a saw %s\nb saw %s", describe(fromA), describe(fromB))
		}
		// A client that dropped from a resumes on b.
		resumed := subscribe(t, b, id, 2)
		evs := resumed.waitFor(t, "the resumed events", turnEnds(1))
		if describe(evs) != describe(fromB[2:]) {
			t.Fatalf("resumed after 3: %s", describe(evs))
		}
	})

	t.Run("ConcurrentSends", func(t *testing.T) {
		id := create(t, a)
		watch := subscribe(t, b, id, 0)
		var wg sync.WaitGroup
		for _, n := range []*node{a, b} {
			wg.Go(func() {
				for i := range 4 {
					send(t, n, id, n.name+string(rune('0'+i)), nil)
				}
			})
		}
		wg.Wait()
		evs := watch.waitFor(t, "eight turns", turnEnds(8))
		checkLog(t, evs)
		if got, want := describe(a.read(t, id)), describe(b.read(t, id)); got != want {
			t.Fatalf("a stored %s\nb stored %s", got, want)
		}
	})
}

// TestOrphansSkipsOthersLeases runs a turn on gateway a: gateway b's
// look for conversations left with work does not list it (a holds its
// lease), and a's does (a gateway may take its own lease back after a
// restart). TestNodeKilledMidTurn shows another gateway's listing it
// once a's lease ends.
func TestOrphansSkipsOthersLeases(t *testing.T) {
	srv := natstest.Start(t)
	started := make(chan int, 1)
	a := startNode(t, "a", srv.URL(), &words{n: 1, gate: make(chan struct{}), started: started}, 15*time.Second)
	b := startNode(t, "b", srv.URL(), &words{n: 1}, 15*time.Second)
	id := create(t, a)
	send(t, a, id, "hello", nil)
	<-started // a holds the lease while its model waits
	for _, n := range []*node{a, b} {
		ms, err := n.store.Orphans(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		listed := len(ms) == 1 && ms[0].ID == id
		if want := n == a; listed != want || len(ms) > 1 {
			t.Errorf("%s's orphans: %d, listing %s: %v; want %v", n.name, len(ms), id, listed, want)
		}
	}
}

// TestCloseWhileCutOff closes a gateway that follows a conversation
// while a partition cuts it off NATS: Close does not wait for NATS to
// delete the follow's consumer (with this hour-long request timeout it
// would hang until go test's timeout), and leaves it to the server's
// idle threshold.
func TestCloseWhileCutOff(t *testing.T) {
	srv := natstest.Start(t)
	px := natstest.NewProxy(t, srv)
	a := startNodeWith(t, "a", px.URL(), &words{n: 1}, jetlog.Options{Timeout: time.Hour})
	b := startNode(t, "b", srv.URL(), &words{n: 1}, 15*time.Second)
	id := create(t, a)
	watch := subscribe(t, a, id, 0)
	send(t, b, id, "hello", nil)
	// b's events reach a's subscriber through a's follow: it runs.
	watch.waitFor(t, "b's turn", turnEnds(1))
	px.Cut()
	if err := a.store.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestNodeKilledMidTurn cuts a gateway off NATS in the middle of a turn:
// once its lease ends, the gateway that takes the conversation over ends
// that turn interrupted, and runs the turn queued behind it.
func TestNodeKilledMidTurn(t *testing.T) {
	srv := natstest.Start(t)
	gate := make(chan struct{}, 1)
	gate <- struct{}{} // one word, then the turn hangs
	started := make(chan int, 1)
	a := startNode(t, "a", srv.URL(), &words{n: 3, gate: gate, started: started}, longLease)
	b := startNode(t, "b", srv.URL(), &words{n: 2}, 500*time.Millisecond)
	id := create(t, a)
	watch := subscribe(t, b, id, 0)
	send(t, a, id, "first", nil)
	<-started
	watch.waitFor(t, "the first word", hasDelta)
	send(t, b, id, "second", nil) // queued behind a's turn
	kill(t, srv, a, id, func() { startNode(t, "c", srv.URL(), &words{n: 2}, longLease) })
	evs := watch.waitFor(t, "both turns", turnEnds(2))
	checkLog(t, evs)
	var ends []*protocol.Event
	for _, ev := range evs {
		if ev.Type == protocol.EventTurnEnd {
			ends = append(ends, ev)
		}
	}
	if ends[0].StopReason != protocol.StopInterrupted || ends[0].Message.Text != "w0 " {
		t.Fatalf("the cut-off turn ended %s with %q", ends[0].StopReason, ends[0].Message.Text)
	}
	if ends[1].StopReason != protocol.StopEndTurn || ends[1].Message.Text != "w0 w1 " {
		t.Fatalf("the queued turn ended %s with %q", ends[1].StopReason, ends[1].Message.Text)
	}
}

// TestSweepTakesOverACutOffTurn cuts a gateway off NATS in the middle of
// a turn while another runs: the running one's sweep, not a start, finds
// the conversation with work that nobody runs once the cut-off gateway's
// lease is gone, takes it over and ends the turn interrupted, counted
// among its ended turns. Gateway b starts first with a short lease, so
// that it sweeps every quarter second; a, started next with an hour's,
// sets the leases bucket's TTL to that (see Log's buckets), so that its
// lease ends when the test ends it, not when a renewal comes late.
func TestSweepTakesOverACutOffTurn(t *testing.T) {
	srv := natstest.Start(t)
	b := startNode(t, "b", srv.URL(), &words{n: 2}, 500*time.Millisecond)
	gate := make(chan struct{}, 1)
	gate <- struct{}{} // one word, then the turn hangs
	a := startNode(t, "a", srv.URL(), &words{n: 3, gate: gate}, longLease)
	id := create(t, a)
	watch := subscribe(t, b, id, 0)
	send(t, a, id, "first", nil)
	watch.waitFor(t, "the first word", hasDelta)
	a.store.Cut()
	expire(t, srv, jetlog.LeaseKey(id))
	evs := watch.waitFor(t, "the turn's end", turnEnds(1))
	checkLog(t, evs)
	if end := evs[len(evs)-1]; end.StopReason != protocol.StopInterrupted || end.Message.Text != "w0 " {
		t.Fatalf("the cut-off turn ended %s with %q, want interrupted with %q", end.StopReason, end.Message.Text, "w0 ")
	}
	b.stop() // once its runners are done, b has counted what they ended
	got, err := b.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if n := got["gateway_turns_ended_total"]; n != 1 {
		t.Fatalf("the gateway that ended the turn counts %v ended turns, want 1", n)
	}
}

// TestEveryNodeRestarts stops both gateways in the middle of a turn,
// without a word to NATS, and starts them again: the turn ends
// interrupted, and nothing acknowledged is lost.
func TestEveryNodeRestarts(t *testing.T) {
	srv := natstest.Start(t)
	gate := make(chan struct{}, 1)
	gate <- struct{}{}
	hang := &words{n: 3, gate: gate}
	a := startNode(t, "a", srv.URL(), hang, longLease)
	b := startNode(t, "b", srv.URL(), hang, longLease)
	id := create(t, a)
	watch := subscribe(t, a, id, 0)
	acked := []*protocol.Ack{send(t, a, id, "one", nil), send(t, b, id, "two", nil)}
	watch.waitFor(t, "the first word", hasDelta)
	for _, n := range []*node{a, b} {
		n.store.Cut()
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		_ = n.svc.Close(ctx)
		cancel()
		// Its claim of its name runs out, as a dead gateway's does; the
		// turn's lease is a's still, for a's restart to take back.
		expire(t, srv, jetlog.ClaimKey(n.name))
	}
	model := &words{n: 1}
	a2 := startNode(t, "a", srv.URL(), model, longLease)
	startNode(t, "b", srv.URL(), model, longLease)
	evs := subscribe(t, a2, id, 0).waitFor(t, "both turns", turnEnds(2))
	checkLog(t, evs)
	msgs := map[string]bool{}
	for _, ev := range evs {
		if ev.Type == protocol.EventMessage {
			msgs[ev.Message.ID] = true
		}
		if ev.Type == protocol.EventTurnEnd && ev.Seq < 6 && ev.StopReason != protocol.StopInterrupted {
			t.Fatalf("the cut-off turn ended %s: %s", ev.StopReason, describe(evs))
		}
	}
	for _, ack := range acked {
		if !msgs[ack.Message.ID] {
			t.Fatalf("acknowledged message %s is lost: %s", ack.Message.ID, describe(evs))
		}
	}
}

// TestNATSUnavailable stops the only NATS server: sends fail with
// unavailable and the store is not ready; once it is back, sends work and
// every acknowledged message is there.
func TestNATSUnavailable(t *testing.T) {
	srv := natstest.Start(t)
	a := startNode(t, "a", srv.URL(), &words{n: 1}, 500*time.Millisecond)
	id := create(t, a)
	acked := []*protocol.Ack{send(t, a, id, "before", nil)}
	srv.Stop()
	_, err := a.svc.Send(context.Background(), user, &protocol.Send{Conversation: id, Text: "during"}, nil)
	if !errors.Is(err, convo.ErrUnavailable) {
		t.Fatalf("send without NATS: %v, want unavailable", err)
	}
	if a.store.Ready() {
		t.Fatal("the store says it is ready without NATS")
	}
	back := a.store.Conn().StatusChanged(nats.CONNECTED)
	srv.Restart()
	<-back // the client reconnects on its own
	acked = append(acked, send(t, a, id, "after", nil))
	evs := subscribe(t, a, id, 0).waitFor(t, "the turns", turnEnds(2))
	got := map[string]bool{}
	for _, ev := range evs {
		if ev.Message != nil {
			got[ev.Message.ID] = true
		}
	}
	for _, ack := range acked {
		if !got[ack.Message.ID] {
			t.Fatalf("acknowledged message %s is lost: %s", ack.Message.ID, describe(evs))
		}
	}
}

// TestClientMsgIDAcrossGateways sends the same client_msg_id to two
// gateways at the same moment, as a client that retries on another node
// would: the message is stored once, and both acks name it.
func TestClientMsgIDAcrossGateways(t *testing.T) {
	srv := natstest.Start(t)
	model := &words{n: 1}
	a := startNode(t, "a", srv.URL(), model, 0)
	b := startNode(t, "b", srv.URL(), model, 0)
	for round := range 10 {
		id := create(t, a)
		req := &protocol.Send{Conversation: id, Text: "once", ClientMsgID: "k"}
		start := make(chan struct{})
		var acks [2]*protocol.Ack
		var wg sync.WaitGroup
		for i, n := range []*node{a, b} {
			wg.Go(func() {
				<-start
				ack, err := n.svc.Send(context.Background(), user, req, nil)
				if err != nil {
					t.Errorf("round %d: send on %s: %v", round, n.name, err)
				}
				acks[i] = ack
			})
		}
		close(start)
		wg.Wait()
		if t.Failed() {
			return
		}
		if acks[0].Message.ID != acks[1].Message.ID {
			t.Fatalf("round %d: a acked message %s, b acked %s", round, acks[0].Message.ID, acks[1].Message.ID)
		}
		var stored []string
		for _, ev := range a.read(t, id) {
			if ev.Type == protocol.EventMessage && ev.Message.Role == protocol.RoleUser {
				stored = append(stored, ev.Message.ID)
			}
		}
		if len(stored) != 1 || stored[0] != acks[0].Message.ID {
			t.Fatalf("round %d: stored user messages %v, want only %s", round, stored, acks[0].Message.ID)
		}
	}
}

// TestPartitionedGatewayStopsWriting cuts a gateway off NATS in the middle
// of a turn without closing its connection (a partition): the other
// gateway ends the turn interrupted and runs the one queued behind it,
// and once the partition heals nothing the cut-off gateway sent meanwhile
// is stored: both gateways read the same history.
func TestPartitionedGatewayStopsWriting(t *testing.T) {
	srv := natstest.Start(t)
	px := natstest.NewProxy(t, srv)
	gate := make(chan struct{}, 2)
	gate <- struct{}{} // one word, then the turn waits
	started := make(chan int, 1)
	a := startNode(t, "a", px.URL(), &words{n: 3, gate: gate, started: started}, time.Second)
	b := startNode(t, "b", srv.URL(), &words{n: 2}, time.Second)
	id := create(t, a)
	watch := subscribe(t, b, id, 0)
	send(t, a, id, "first", nil)
	<-started
	watch.waitFor(t, "the first word", hasDelta)
	send(t, b, id, "second", nil) // queued behind a's turn
	px.Cut()
	gate <- struct{}{} // a's second word: its append is held by the partition
	evs := watch.waitFor(t, "both turns", turnEnds(2))
	px.Heal()
	// a's reads go after whatever it sent during the partition.
	if got, want := describe(a.read(t, id)), describe(b.read(t, id)); got != want || got != describe(evs) {
		t.Fatalf("after the partition a reads %s\nb reads %s\nb's client saw %s", got, want, describe(evs))
	}
	checkLog(t, evs)
	var ends []*protocol.Event
	for _, ev := range evs {
		if ev.Type == protocol.EventTurnEnd {
			ends = append(ends, ev)
		}
	}
	if ends[0].StopReason != protocol.StopInterrupted || ends[0].Message.Text != "w0 " {
		t.Fatalf("the cut-off turn ended %s with %q", ends[0].StopReason, ends[0].Message.Text)
	}
}

// TestCancelOnAnotherGateway runs a turn on gateway a and cancels it
// through gateway b, as a client behind a load balancer would: the turn
// ends cancelled, with the text streamed so far, and clients of both
// gateways see it.
func TestCancelOnAnotherGateway(t *testing.T) {
	srv := natstest.Start(t)
	gate := make(chan struct{}, 1)
	gate <- struct{}{} // one word, then the turn waits
	started := make(chan int, 1)
	a := startNode(t, "a", srv.URL(), &words{n: 3, gate: gate, started: started}, 15*time.Second)
	b := startNode(t, "b", srv.URL(), &words{n: 1}, 15*time.Second)
	id := create(t, a)
	onA := subscribe(t, a, id, 0)
	onB := subscribe(t, b, id, 0)
	send(t, a, id, "hello", nil)
	<-started // a holds the lease: the turn runs there
	onB.waitFor(t, "the first word", hasDelta)
	if err := b.svc.Cancel(context.Background(), user, id); err != nil {
		t.Fatalf("cancel on b: %v", err)
	}
	for _, n := range []struct {
		name string
		sub  *subscriber
	}{{"a", onA}, {"b", onB}} {
		evs := n.sub.waitFor(t, "the turn's end on "+n.name, turnEnds(1))
		checkLog(t, evs)
		end := evs[len(evs)-1]
		if end.StopReason != protocol.StopCancelled || end.Message.Text != "w0 " {
			t.Fatalf("%s saw the turn end %s with %q", n.name, end.StopReason, end.Message.Text)
		}
	}
}

// TestCancelWithoutNATS: a cancel that cannot reach the other gateways
// fails as unavailable instead of pretending.
func TestCancelWithoutNATS(t *testing.T) {
	srv := natstest.Start(t)
	a := startNode(t, "a", srv.URL(), &words{n: 1}, 0)
	srv.Stop()
	if err := a.store.Cancel(context.Background(), "c_1", "t_1"); !errors.Is(err, convo.ErrUnavailable) {
		t.Fatalf("cancel without NATS: %v, want unavailable", err)
	}
}

// TestDeleteOnAnotherGateway deletes through gateway b a conversation
// whose turn runs on gateway a: a's subscriber is told it is gone, and
// the turn stops.
func TestDeleteOnAnotherGateway(t *testing.T) {
	srv := natstest.Start(t)
	gate := make(chan struct{})
	started := make(chan int, 1)
	a := startNode(t, "a", srv.URL(), &words{n: 1, gate: gate, started: started}, 15*time.Second)
	b := startNode(t, "b", srv.URL(), &words{n: 1}, 15*time.Second)
	id := create(t, a)
	onA := subscribe(t, a, id, 0)
	send(t, a, id, "hello", nil)
	<-started // the turn runs on a
	if err := b.svc.Delete(context.Background(), user, id); err != nil {
		t.Fatalf("delete on b: %v", err)
	}
	<-onA.gone
	// a's runner, stopped, is gone: a closes without waiting for it.
	if err := a.svc.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
}
