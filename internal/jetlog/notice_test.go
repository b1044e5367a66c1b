package jetlog_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/jetlog"
	"github.com/chatgateway/gateway/internal/jetlog/natstest"
	"github.com/chatgateway/gateway/protocol"
)

// TestDeleteNoticeAfterRecreate: gateway b deletes a conversation that a
// subscriber on gateway a follows, and creates another under its id,
// before a handles the delete notice (b publishes it only after the
// create, as a notice that a handles late would be). a must still tell
// its subscriber that the conversation is gone, rather than keep it on a
// hub of the old log, whose seq would hide the new log's first events
// and hand it the later ones as if they continued the old; and a new
// subscriber on a must get the new log, 1 to n, live after the replay.
// A notice from a gateway of before created_at was in it must do too;
// and if the notice is lost, the new subscribe on a finds the old hub
// out and tells its subscriber.
func TestDeleteNoticeAfterRecreate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		notice  bool // b publishes the notice
		created bool // the notice carries the deleted conversation's created_at
	}{
		{"notice with created_at", true, true},
		{"notice of an older gateway", true, false},
		{"notice lost", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, b, _ := startPair(t)
			ctx := context.Background()
			const id = "reused"
			createWithActions(t, b, id, 3)
			old, first, err := subscribeWith(a, &protocol.Subscribe{Conversation: id})
			if err != nil {
				t.Fatal(err)
			}
			old.waitFor(t, "the old log", func(evs []*protocol.Event) bool { return len(evs) == 3 })

			// b's delete without its notice, the create, then the notice.
			if _, err := b.store.Delete(ctx, id, user); err != nil {
				t.Fatal(err)
			}
			createWithActions(t, b, id, 2)
			var created time.Time
			if tc.created {
				created = first.CreatedAt
			}
			if tc.notice {
				if err := b.store.NotifyDeleted(ctx, id, created); err != nil {
					t.Fatal(err)
				}
				waitGone(t, old)
			}

			fresh := subscribe(t, a, id, 0)
			if !tc.notice {
				waitGone(t, old)
			}
			for range 3 {
				if _, err := b.svc.PublishAction(ctx, user, id, convo.Action{Name: "new"}); err != nil {
					t.Fatal(err)
				}
			}
			evs := fresh.waitFor(t, "the new log", func(evs []*protocol.Event) bool {
				return len(evs) > 0 && evs[len(evs)-1].Seq >= 5
			})
			checkLog(t, evs)
			old.mu.Lock()
			got := slices.Clone(old.events)
			old.mu.Unlock()
			if len(got) != 3 {
				t.Errorf("the old subscriber got %s, want the old log's 3 events only", describe(got))
			}
		})
	}
}

// TestFollowRecreated: a follow of a conversation that was deleted and
// created again under its id (on another gateway) starts while a follow
// of the old one is still held, as a new hub's does while the old hub's
// stop has not run yet. The store must report the new log's events after
// the new follow's seq, every one of them, however far the old log went.
func TestFollowRecreated(t *testing.T) {
	ctx := context.Background()
	srv := natstest.Start(t)
	a, b := openStore(t, srv.URL(), "a"), openStore(t, srv.URL(), "b")
	onA := collect(a)
	const id = "c1"
	create := func(text string, n int) *convo.Appended {
		t.Helper()
		res, err := b.Append(ctx, &convo.Append{Conversation: id, New: &convo.Meta{Owner: "u", Conversation: protocol.Conversation{ID: id, Model: "m"}},
			Build: func(*convo.Meta) ([]convo.Draft, error) { return deltas(text, n), nil }})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	old := create("old", 3)
	stopOld := a.Follow(id, 3, old.Meta.CreatedAt)
	defer stopOld()
	if _, err := b.Delete(ctx, id, "u"); err != nil {
		t.Fatal(err)
	}
	recreated := create("new", 2)
	stopNew := a.Follow(id, 2, recreated.Meta.CreatedAt)
	defer stopNew()
	if _, err := b.Append(ctx, &convo.Append{Conversation: id,
		Build: func(*convo.Meta) ([]convo.Draft, error) { return deltas("new", 3), nil }}); err != nil {
		t.Fatal(err)
	}
	if got, want := onA.waitKey(t, "5:new"), []string{"3:new", "4:new", "5:new"}; !slices.Equal(got, want) {
		t.Fatalf("a reported %v, want %v", got, want)
	}
}

// TestDeleteNoticeReadFails: a delete notice of an older gateway (without
// created_at) comes to gateway a, whose read of the conversation then
// fails because NATS has stopped. a must read again once NATS is back,
// and tell its subscriber that the conversation is gone.
func TestDeleteNoticeReadFails(t *testing.T) {
	srv, b, gated, onA := startHeld(t)
	ctx := context.Background()
	if _, err := b.store.Delete(ctx, heldID, user); err != nil {
		t.Fatal(err)
	}
	if err := b.store.NotifyDeleted(ctx, heldID, time.Time{}); err != nil {
		t.Fatal(err)
	}
	<-gated.held // a handles the notice: it is about to read
	srv.Stop()
	close(gated.release)
	if err := <-gated.failed; errors.Is(err, convo.ErrNotFound) {
		t.Fatalf("a's read with NATS stopped: %v, want it to fail", err)
	}
	srv.Restart()
	waitGone(t, onA)
}

// TestDeleteNoticeNamesConversation: a delete notice with created_at is
// about the conversation a's hub serves: a tells its subscriber without
// reading the log, which NATS might not answer just then.
func TestDeleteNoticeNamesConversation(t *testing.T) {
	_, b, gated, onA := startHeld(t)
	if err := b.svc.Delete(context.Background(), user, heldID); err != nil {
		t.Fatal(err)
	}
	select {
	case <-gated.held:
		close(gated.release)
		t.Fatal("a read the conversation to handle a notice that names it")
	case <-onA.gone:
	}
}

// heldID is the conversation of startHeld.
const heldID = "c1"

// startHeld runs gateway a, on the heldMeta store it returns, and
// gateway b on one embedded NATS server, creates conversation heldID on
// b with one event, subscribes onA to it on a, and then arms a's store:
// its next read of the conversation waits.
func startHeld(t *testing.T) (srv *natstest.Server, b *node, gated *heldMeta, onA *subscriber) {
	t.Helper()
	srv = natstest.Start(t)
	st, err := jetlog.OpenStore(context.Background(), srv.URL(), jetlog.StoreOptions{Node: "a", Logger: testLogger(t),
		Options: jetlog.Options{Timeout: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	gated = &heldMeta{Store: st, held: make(chan struct{}), release: make(chan struct{}), failed: make(chan error, 1)}
	svc, err := convo.New(gated, &words{n: 1}, convo.Config{DefaultModel: "test", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	a := &node{name: "a", store: st, svc: svc}
	t.Cleanup(a.stop)
	b = startNode(t, "b", srv.URL(), &words{n: 1}, 0)
	createWithActions(t, b, heldID, 1)
	onA = subscribe(t, a, heldID, 0)
	onA.waitFor(t, "the log", func(evs []*protocol.Event) bool { return len(evs) == 1 })
	gated.id.Store(heldID)
	return srv, b, gated, onA
}

// heldMeta is a Store whose next Meta of conversation id (once set)
// waits until release, and reports its error on failed.
type heldMeta struct {
	*jetlog.Store
	id      atomic.Value // string
	held    chan struct{}
	release chan struct{}
	failed  chan error
}

func (h *heldMeta) Meta(ctx context.Context, id string) (*convo.Meta, error) {
	if h.id.CompareAndSwap(id, "") {
		close(h.held)
		<-h.release
		m, err := h.Store.Meta(ctx, id)
		h.failed <- err
		return m, err
	}
	return h.Store.Meta(ctx, id)
}

// waitGone waits until sub is told its conversation is gone, giving up
// just before the test binary's deadline.
func waitGone(t *testing.T, sub *subscriber) {
	t.Helper()
	var timeout <-chan time.Time
	if deadline, ok := t.Deadline(); ok {
		timeout = time.After(time.Until(deadline) - 5*time.Second)
	}
	select {
	case <-sub.gone:
	case <-timeout:
		sub.mu.Lock()
		defer sub.mu.Unlock()
		t.Fatalf("the subscriber was never told the conversation is gone; it has %s", describe(sub.events))
	}
}

// deltas are n delta events with text.
func deltas(text string, n int) []convo.Draft {
	out := make([]convo.Draft, n)
	for i := range out {
		out[i] = convo.Draft{Event: &protocol.Event{Type: protocol.EventDelta, Turn: "t1", Text: text}}
	}
	return out
}
