package jetlog_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

// TestResumeRecreatedOnAnotherGateway follows a conversation on gateway a
// while gateway b deletes it and creates another, longer one under its id.
// Resuming on a with the created_at of a's subscribed reply is refused as
// not found; the subscribed reply of either gateway carries the created_at
// of the conversation objects that list shows.
func TestResumeRecreatedOnAnotherGateway(t *testing.T) {
	a, b, _ := startPair(t)
	ctx := context.Background()
	const id = "reused"
	createWithActions(t, a, id, 2)
	onA, first, err := subscribeWith(a, &protocol.Subscribe{Conversation: id})
	if err != nil {
		t.Fatal(err)
	}
	if listed := listedCreatedAt(t, b, id); first.Seq != 2 || !first.CreatedAt.Equal(listed) {
		t.Fatalf("subscribed on a: %+v; want seq 2 and created_at %v, as b lists it", first, listed)
	}
	onA.waitFor(t, "the replay", func(evs []*protocol.Event) bool { return len(evs) == 2 })

	if err := b.svc.Delete(ctx, user, id); err != nil {
		t.Fatal(err)
	}
	<-onA.gone
	createWithActions(t, b, id, 4)

	_, reply, err := subscribeWith(a, &protocol.Subscribe{Conversation: id, After: 2, CreatedAt: first.CreatedAt})
	if !errors.Is(err, convo.ErrReplaced) || protocol.AsError(err).Code != protocol.CodeNotFound || reply != nil {
		t.Fatalf("resume on a with the old created_at: %v (reply %+v), want not_found (ErrReplaced) and no reply", err, reply)
	}
	// What a client without created_at gets: the new log from seq 3.
	blind, _, err := subscribeWith(a, &protocol.Subscribe{Conversation: id, After: 2})
	if err != nil {
		t.Fatal(err)
	}
	if evs := blind.waitFor(t, "the blind resume", func(evs []*protocol.Event) bool { return len(evs) == 2 }); evs[0].Seq != 3 {
		t.Fatalf("blind resume: %s", describe(evs))
	}

	listed := listedCreatedAt(t, a, id)
	if listed.Equal(first.CreatedAt) {
		t.Fatalf("both conversations created at %v", listed)
	}
	for _, n := range []*node{a, b} {
		sub, got, err := subscribeWith(n, &protocol.Subscribe{Conversation: id, CreatedAt: listed})
		if err != nil {
			t.Fatalf("subscribe on %s with the new created_at: %v", n.name, err)
		}
		if got.Seq != 4 || !got.CreatedAt.Equal(listed) {
			t.Fatalf("subscribed on %s: %+v, want seq 4 and created_at %v", n.name, got, listed)
		}
		checkLog(t, sub.waitFor(t, "the new log", func(evs []*protocol.Event) bool { return len(evs) == 4 }))
	}
}

// createWithActions creates conversation id on n with n action events.
func createWithActions(t *testing.T, n *node, id string, actions int) {
	t.Helper()
	createAs(t, n, user, id, actions)
}

// listedCreatedAt returns the created_at that n's list shows for id.
func listedCreatedAt(t *testing.T, n *node, id string) time.Time {
	t.Helper()
	list, err := n.svc.List(context.Background(), user, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range list.Conversations {
		if c.ID == id {
			return c.CreatedAt
		}
	}
	t.Fatalf("%s does not list %s: %+v", n.name, id, list.Conversations)
	return time.Time{}
}
