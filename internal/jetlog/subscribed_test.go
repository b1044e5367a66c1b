package jetlog_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

// TestSubscribedAfterALaggingHub resumes a client on gateway b, whose hub
// of the conversation lags the log: b follows it, but its follower
// cannot start yet (the stream is at its consumer limit) while gateway a
// stores seqs 1–3. The client saw 3 (on a) and subscribes on b after 3:
// its subscribed reply must not name a seq below 3, one it has seen and
// that is part of the conversation; and once b's follower runs, the
// events after 3 come to it, gapless and in order, as they come to a
// subscriber b had from the start.
func TestSubscribedAfterALaggingHub(t *testing.T) {
	ctx := context.Background()
	a, b, srv := startPair(t)
	id := create(t, a)
	blockFollowers(t, srv)
	watch := subscribe(t, b, id, 0) // b's hub, at seq 0
	act := func(i int) {
		t.Helper()
		if _, err := a.svc.PublishAction(ctx, user, id, convo.Action{Name: fmt.Sprint("a", i)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		act(i)
	}

	resumed := newSubscriber()
	var subscribed uint64
	if err := b.svc.Subscribe(ctx, user, &protocol.Subscribe{Conversation: id, After: 3}, resumed, func(r *protocol.Subscribed) { subscribed = r.Seq }); err != nil {
		t.Fatal(err)
	}
	if subscribed < 3 {
		t.Errorf("subscribed after 3 answered seq %d", subscribed)
	}

	unblockFollowers(t, srv)
	act(3)
	all := watch.waitFor(t, "seqs 1–4 on b", func(evs []*protocol.Event) bool { return len(evs) >= 4 })
	checkLog(t, all)
	got := resumed.waitFor(t, "seq 4 after 3", func(evs []*protocol.Event) bool { return len(evs) >= 1 })
	if describe(got) != describe(all[3:]) {
		t.Fatalf("resumed after 3 got %s; want %s", describe(got), describe(all[3:]))
	}
}
