package jetlog_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

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
	var prev, seq uint64
	appendOne := func(l *jetlog.Log) {
		t.Helper()
		r := rec(seq+1, `{}`)
		for {
			// Elections after a server stops make appends fail for a
			// moment; a writer tries the same record again, as the
			// service does, and it is stored once.
			pos, err := l.Append(ctx, "c", r, prev)
			if err == nil {
				prev, seq = pos, seq+1
				return
			}
			if errors.Is(err, jetlog.ErrFenced) {
				t.Fatalf("append %d: %v", seq+1, err)
			}
		}
	}
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
// another node, and that its old holder's renewal then fails.
func TestLeaseRunsOut(t *testing.T) {
	l, _ := open(t, jetlog.Options{LeaseTTL: 300 * time.Millisecond})
	ctx := context.Background()
	a, err := l.Acquire(ctx, "c", "node-a")
	if err != nil {
		t.Fatal(err)
	}
	var b *jetlog.Lease
	for b == nil {
		b, err = l.Acquire(ctx, "c", "node-b")
		if err != nil && !errors.Is(err, jetlog.ErrLeaseHeld) {
			t.Fatal(err)
		}
		if b == nil {
			time.Sleep(50 * time.Millisecond) // polling the bucket, as the service does
		}
	}
	if a.Valid() {
		t.Fatal("a lease that ran out is still valid for its old holder")
	}
	if err := a.Renew(ctx); !errors.Is(err, jetlog.ErrLeaseLost) {
		t.Fatalf("renewing a lease taken over: %v", err)
	}
}
