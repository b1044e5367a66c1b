package jetlog_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/chatgateway/gateway/internal/jetlog"
	"github.com/chatgateway/gateway/internal/jetlog/natstest"
)

// TestReplicatedLogSurvivesAServer appends to a stream kept by three
// servers, stops one, and checks that nothing acknowledged is lost, that
// appends go on, and that a follower sees every event exactly once.
func TestReplicatedLogSurvivesAServer(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	opts := jetlog.Options{Replicas: 3}
	a := connect(t, c.Servers[0].URL(), opts)
	b := connect(t, c.URLs(), opts)
	ctx := context.Background()
	got := make(chan *jetlog.Record, 100)
	f, err := b.Follow(ctx, "c", 1, slog.Default(), func(r *jetlog.Record) { got <- r })
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	var w writer
	appendOne := func(l *jetlog.Log) { w.next(t, l) }
	for range 5 {
		appendOne(a)
	}
	c.Servers[0].Stop()
	for range 5 {
		appendOne(b)
	}
	last, err := b.Last(ctx, "c")
	if err != nil || last == nil || last.Seq != 10 {
		t.Fatalf("last = %+v, %v", last, err)
	}
	for i := range 10 {
		if e := <-got; e.Seq != uint64(i+1) {
			t.Fatalf("followed seq %d, want %d", e.Seq, i+1)
		}
	}
	c.Servers[0].Restart()
	c.WaitLeader(t)
	appendOne(a)
	if e := <-got; e.Seq != 11 {
		t.Fatalf("followed seq %d after the restart, want 11", e.Seq)
	}
}

// TestLeaseRunsOut checks that a lease nobody renews can be taken by
// another node once it runs out, and that its old holder's renewal then
// fails.
func TestLeaseRunsOut(t *testing.T) {
	l, srv := open(t, jetlog.Options{LeaseTTL: 300 * time.Millisecond})
	ctx := context.Background()
	ended := leaseEnds(t, srv, "c")
	a, err := l.Acquire(ctx, "c", "node-a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Acquire(ctx, "c", "node-b"); !errors.Is(err, jetlog.ErrLeaseHeld) {
		t.Fatalf("acquiring a held lease: %v", err)
	}
	waitClosed(t, "the lease to run out", ended)
	if a.Valid() {
		t.Fatal("a lease that ran out is still valid for its old holder")
	}
	if _, err := l.Acquire(ctx, "c", "node-b"); err != nil {
		t.Fatalf("acquiring a lease that ran out: %v", err)
	}
	if err := a.Renew(ctx); !errors.Is(err, jetlog.ErrLeaseLost) {
		t.Fatalf("renewing a lease taken over: %v", err)
	}
}

// TestPartitionedWriterIsFenced cuts a node off from NATS without
// closing its connection, as a network partition does, while it holds a
// conversation's lease. It stops acting on the lease before the lease
// runs out on the server; another node takes the lease and appends; when
// the partition heals, the append the cut-off node sent meanwhile and its
// retry are refused, its lease is lost, and the log holds one history.
func TestPartitionedWriterIsFenced(t *testing.T) {
	srv := natstest.Start(t)
	px := natstest.NewProxy(t, srv)
	opts := jetlog.Options{LeaseTTL: time.Second, Timeout: 300 * time.Millisecond}
	a := connect(t, px.URL(), opts)
	b := connect(t, srv.URL(), opts)
	ctx := context.Background()
	ended := leaseEnds(t, srv, "c")
	la, err := a.Acquire(ctx, "c", "a")
	if err != nil {
		t.Fatal(err)
	}
	p1, err := a.Append(ctx, "c", rec(1, `{"by":"a"}`), 0)
	if err != nil {
		t.Fatal(err)
	}

	px.Cut()
	if err := la.Renew(ctx); err == nil || errors.Is(err, jetlog.ErrLeaseLost) {
		t.Fatalf("renewing while cut off: %v, want a timeout", err)
	}
	stale := rec(2, `{"by":"a"}`)
	if _, err := a.Append(ctx, "c", stale, p1); err == nil {
		t.Fatal("an append while cut off was acknowledged")
	}
	waitClosed(t, "the lease to run out", ended)
	if la.Valid() {
		t.Fatal("the cut-off node still acts on a lease that ran out on the server")
	}
	if _, err := b.Acquire(ctx, "c", "b"); err != nil {
		t.Fatalf("taking over the lease: %v", err)
	}
	p2, err := b.Append(ctx, "c", rec(2, `{"by":"b"}`), p1)
	if err != nil {
		t.Fatal(err)
	}

	px.Heal()
	// The held append reaches the server first, then this retry.
	if _, err := a.Append(ctx, "c", stale, p1); !errors.Is(err, jetlog.ErrFenced) {
		t.Fatalf("the cut-off node's append after the partition: %v, want ErrFenced", err)
	}
	if err := la.Renew(ctx); !errors.Is(err, jetlog.ErrLeaseLost) {
		t.Fatalf("the cut-off node's renewal after the partition: %v, want ErrLeaseLost", err)
	}
	recs, err := b.Read(ctx, "c", 1, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].Pos != p1 || recs[1].Pos != p2 || string(recs[1].Frames[0]) != `{"by":"b"}` {
		t.Fatalf("the log holds %+v, want a's seq 1 at %d and b's seq 2 at %d", recs, p1, p2)
	}
}

// leaseEnds returns a channel closed when conversation id's lease runs
// out (or is released) on srv, from a watcher started now: before the
// lease is taken, so that the watcher sees its end however late the
// test gets to wait for it.
func leaseEnds(t *testing.T, srv *natstest.Server, id string) <-chan struct{} {
	t.Helper()
	w, err := leaseBucket(t, srv).Watch(context.Background(), jetlog.LeaseKey(id), jetstream.UpdatesOnly())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Stop() })
	ended := make(chan struct{})
	go func() {
		for e := range w.Updates() {
			if e != nil && e.Operation() != jetstream.KeyValuePut {
				close(ended)
				return
			}
		}
	}()
	return ended
}

// TestTurnLeaseLostBeforeItRunsOut cuts a gateway off NATS, as a
// partition does, while it holds a turn lease, with a request timeout
// much longer than the lease's TTL: the lease is reported lost (the turn
// stops) before it runs out on the server, where another gateway may
// take it. The renewal used to wait for the request timeout: the turn
// went on acting on a lease the server had let go.
func TestTurnLeaseLostBeforeItRunsOut(t *testing.T) {
	srv := natstest.Start(t)
	px := natstest.NewProxy(t, srv)
	a := startNodeWith(t, "a", px.URL(), &words{n: 1}, jetlog.Options{LeaseTTL: 3 * time.Second, Timeout: time.Minute})
	ended := leaseEnds(t, srv, "c")
	lease, err := a.store.Lease(context.Background(), "c")
	if err != nil {
		t.Fatal(err)
	}
	defer lease.Release()
	px.Cut()
	defer px.Heal()
	waitClosed(t, "the lease to run out", ended)
	select {
	case <-lease.Lost():
	default:
		t.Fatal("the lease ran out on the server, and its holder still acts on it")
	}
}

// TestFollowResumesAfterItsServerStops stops the server of three that
// holds a follower's consumer, while the follower's connection is to
// another: the follower resumes and delivers every record, in order,
// once each. Nothing tells the client that the consumer is gone but the
// missing heartbeats of its pulls, so every pull asks the server for one
// each FollowHeartbeat (two seconds; JetStream's default for a follow
// is five): the follower makes a new consumer two missed heartbeats
// later.
func TestFollowResumesAfterItsServerStops(t *testing.T) {
	c := natstest.StartCluster(t, 3)
	opts := jetlog.Options{Replicas: 3}
	a := connect(t, c.URLs(), opts)
	b := connect(t, c.Servers[0].URL(), opts)
	pulls := watch(t, c.Servers[0], "$JS.API.CONSUMER.MSG.NEXT."+jetlog.DefaultStream+".>")
	ctx := context.Background()
	var w writer
	appendOne := func() { w.next(t, a) }
	got := make(chan *jetlog.Record, 100)
	var f *jetlog.Follower
	for {
		// JetStream places the consumer on any of the three servers:
		// the test wants it elsewhere than b's connection.
		var err error
		if f, err = b.Follow(ctx, "c", 1, slog.Default(), func(r *jetlog.Record) { got <- r }); err != nil {
			t.Fatal(err)
		}
		if f.Server() != c.Servers[0].Name() {
			break
		}
		f.Stop()
	}
	defer f.Stop()
	host := f.Server()
	const before, after = 5, 5
	for range before {
		appendOne()
	}
	next := uint64(1)
	receive := func(n int) {
		t.Helper()
		for range n {
			if r := <-got; r.Seq != next {
				t.Fatalf("followed seq %d, want %d", r.Seq, next)
			}
			next++
		}
	}
	receive(before)
	for _, s := range c.Servers {
		if s.Name() == host {
			s.Stop()
		}
	}
	for range after {
		appendOne()
	}
	receive(after)
	select {
	case r := <-got:
		t.Fatalf("followed seq %d again", r.Seq)
	default:
	}
	for len(pulls) > 0 {
		var pull struct {
			Heartbeat time.Duration `json:"idle_heartbeat"`
		}
		if err := json.Unmarshal((<-pulls).Data, &pull); err != nil {
			t.Fatal(err)
		}
		if pull.Heartbeat != jetlog.FollowHeartbeat {
			t.Fatalf("a follow's pull asks for a heartbeat each %v, want %v", pull.Heartbeat, jetlog.FollowHeartbeat)
		}
	}
}

// writer is conversation c's only writer: it appends seq 1, 2, … one
// after the other.
type writer struct{ prev, seq uint64 }

// next appends w's next record to l. Elections after a server stops
// make appends fail for a moment; it tries the same record again, as the
// service does, and it is stored once. A single writer is never fenced.
func (w *writer) next(t *testing.T, l *jetlog.Log) {
	t.Helper()
	r := rec(w.seq+1, `{}`)
	for {
		pos, err := l.Append(context.Background(), "c", r, w.prev)
		if err == nil {
			w.prev, w.seq = pos, w.seq+1
			return
		}
		if errors.Is(err, jetlog.ErrFenced) {
			t.Fatalf("append %d: %v", w.seq+1, err)
		}
	}
}
