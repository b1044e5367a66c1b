package convo_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

// TestSubscribeCreatedAt resumes a conversation that was deleted and
// created again under its id while the client was away: the new one has
// more events than the client had seen of the old one, so only the
// created_at the client sends back tells the two apart. With the old
// created_at the subscribe is refused as not found; with none it resumes
// the new log after a seq of the old (the defect this guards against); with
// the new one it works.
func TestSubscribeCreatedAt(t *testing.T) {
	s := openTest(t, &scriptModel{})
	ctx := context.Background()
	const id = "reused"
	old := createWithActions(t, s, id, 2)
	seen := newRecorder(10)
	first := subscribeOK(t, s, &protocol.Subscribe{Conversation: id}, seen)
	if first.Seq != 2 || !first.CreatedAt.Equal(old.CreatedAt) || first.CreatedAt.Location() != time.UTC {
		t.Fatalf("subscribed %+v, want seq 2 and created_at %v in UTC", first, old.CreatedAt)
	}
	if err := s.Delete(ctx, "u1", id); err != nil {
		t.Fatal(err)
	}
	for want := uint64(1); want <= 3; want++ {
		if ev := seen.next(t); want <= 2 && ev.Seq != want || want == 3 && ev.Type != "gone" {
			t.Fatalf("got %s %d, want seq 1, 2, then the deletion", ev.Type, ev.Seq)
		}
	}

	// The new conversation is shorter than what the client saw: refused
	// already without created_at (bad_request), and not_found with it.
	createWithActions(t, s, id, 1)
	err := s.Subscribe(ctx, "u1", &protocol.Subscribe{Conversation: id, After: 2}, newRecorder(10), noReady(t))
	if code := protocol.AsError(err).Code; code != protocol.CodeBadRequest {
		t.Fatalf("after beyond the new end without created_at: %v, want bad_request", err)
	}
	err = s.Subscribe(ctx, "u1", &protocol.Subscribe{Conversation: id, After: 2, CreatedAt: first.CreatedAt}, newRecorder(10), noReady(t))
	if !errors.Is(err, convo.ErrReplaced) || protocol.AsError(err).Code != protocol.CodeNotFound {
		t.Fatalf("old created_at on a shorter conversation: %v, want not_found (ErrReplaced)", err)
	}

	// Now longer than what the client saw.
	if err := s.Delete(ctx, "u1", id); err != nil {
		t.Fatal(err)
	}
	replacement := createWithActions(t, s, id, 4)
	if replacement.CreatedAt.Equal(old.CreatedAt) {
		t.Fatalf("both conversations created at %v", old.CreatedAt)
	}
	err = s.Subscribe(ctx, "u1", &protocol.Subscribe{Conversation: id, After: 2, CreatedAt: first.CreatedAt}, newRecorder(10), noReady(t))
	if !errors.Is(err, convo.ErrReplaced) {
		t.Fatalf("old created_at on a longer conversation: %v, want ErrReplaced", err)
	}

	// Without created_at, as before: seqs 1 and 2 of the new log are
	// silently skipped.
	blind := newRecorder(10)
	subscribeOK(t, s, &protocol.Subscribe{Conversation: id, After: 2}, blind)
	if ev := blind.next(t); ev.Seq != 3 {
		t.Fatalf("blind resume starts at seq %d", ev.Seq)
	}

	// A refused subscribe leaves the subscription the subscriber had: it
	// still gets the new conversation's events live.
	err = s.Subscribe(ctx, "u1", &protocol.Subscribe{Conversation: id, After: 4, CreatedAt: first.CreatedAt}, blind, noReady(t))
	if !errors.Is(err, convo.ErrReplaced) {
		t.Fatalf("resubscribe with the old created_at: %v, want ErrReplaced", err)
	}

	// With the new created_at, from the list, the new log replays whole.
	list, err := s.List(ctx, "u1", "", 0)
	if err != nil || len(list.Conversations) != 1 {
		t.Fatalf("list: %+v, %v", list, err)
	}
	listed := list.Conversations[0].CreatedAt
	fresh := newRecorder(10)
	got := subscribeOK(t, s, &protocol.Subscribe{Conversation: id, CreatedAt: listed}, fresh)
	if !got.CreatedAt.Equal(listed) || got.Seq != 4 {
		t.Fatalf("subscribed %+v, want seq 4 and the listed created_at %v", got, listed)
	}
	for want := uint64(1); want <= 4; want++ {
		if ev := fresh.next(t); ev.Seq != want {
			t.Fatalf("replay gave seq %d, want %d", ev.Seq, want)
		}
	}
	if _, err := s.PublishAction(ctx, "u1", id, convo.Action{Name: "later"}); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*recorder{fresh, blind} {
		for ev := r.next(t); ev.Seq != 5; ev = r.next(t) {
			if ev.Seq > 5 {
				t.Fatalf("seq %d past 5", ev.Seq)
			}
		}
	}
}

// TestEventsCreatedAt reads the events of a conversation deleted and
// created again under its id, longer than the old one: with the old
// created_at the read is ErrReplaced, as a subscribe is, before after is
// checked against the new log; with none or the new one it reads the new
// log and says whose events they are.
func TestEventsCreatedAt(t *testing.T) {
	s := openTest(t, &scriptModel{})
	ctx := context.Background()
	const id = "reused"
	old := createWithActions(t, s, id, 2)
	if err := s.Delete(ctx, "u1", id); err != nil {
		t.Fatal(err)
	}
	current := createWithActions(t, s, id, 4)
	for _, after := range []uint64{2, 9} {
		if _, _, err := s.Events(ctx, "u1", id, old.CreatedAt, after, 10); !errors.Is(err, convo.ErrReplaced) {
			t.Fatalf("events after %d with the old created_at: %v, want ErrReplaced", after, err)
		}
	}
	for _, created := range []time.Time{{}, current.CreatedAt} {
		frames, of, err := s.Events(ctx, "u1", id, created, 2, 10)
		if err != nil || len(frames) != 2 || !of.Equal(current.CreatedAt) {
			t.Fatalf("events with created_at %v: %d, of %v, %v; want 2 of %v", created, len(frames), of, err, current.CreatedAt)
		}
	}
}

// createWithActions creates conversation id for u1 with n action events
// and returns its metadata as created.
func createWithActions(t *testing.T, s *testService, id string, n int) *protocol.Conversation {
	t.Helper()
	ctx := context.Background()
	info, err := s.Create(ctx, "u1", &protocol.Create{Conversation: id})
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		if _, err := s.PublishAction(ctx, "u1", id, convo.Action{Name: "step"}); err != nil {
			t.Fatal(err)
		}
	}
	return info
}

// subscribeOK subscribes sub as req asks and returns the subscribed reply.
func subscribeOK(t *testing.T, s *testService, req *protocol.Subscribe, sub convo.Subscriber) protocol.Subscribed {
	t.Helper()
	var got *protocol.Subscribed
	if err := s.Subscribe(context.Background(), "u1", req, sub, func(r *protocol.Subscribed) { got = r }); err != nil {
		t.Fatalf("subscribe %+v: %v", req, err)
	}
	if got == nil || got.Conversation != req.Conversation {
		t.Fatalf("subscribe %+v: ready gave %+v", req, got)
	}
	return *got
}

// noReady is the ready function of a subscribe that must be refused.
func noReady(t *testing.T) func(*protocol.Subscribed) {
	return func(r *protocol.Subscribed) { t.Errorf("refused subscribe got ready with %+v", r) }
}
