package jetlog_test

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/jetlog"
	"github.com/chatgateway/gateway/internal/jetlog/natstest"
	"github.com/chatgateway/gateway/protocol"
)

// TestDeleteFailsPartWay: a delete fails part-way on gateway b, whose
// NATS user may not purge the stream (JetStream refuses that one step,
// as a cut connection or a lost leader could). Another gateway must then
// be able to finish it, and an id created again must start a log of its
// own, not continue the deleted one's events.
func TestDeleteFailsPartWay(t *testing.T) {
	ctx := context.Background()
	srv := natstest.StartWith(t, func(o *server.Options) {
		o.Users = []*server.User{
			{Username: "full", Password: "pw"},
			{Username: "nopurge", Password: "pw", Permissions: &server.Permissions{
				Publish: &server.SubjectPermission{Allow: []string{">"}, Deny: []string{"$JS.API.STREAM.PURGE.>"}}}},
		}
	})
	open := func(node, user string) *jetlog.Store {
		s, err := jetlog.OpenStore(ctx, srv.URL(), jetlog.StoreOptions{Node: node, Logger: slog.New(slog.DiscardHandler),
			Options: jetlog.Options{Timeout: time.Second}}, nats.UserInfo(user, "pw"),
			nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {})) // the refused purge
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	a, b, c := open("a", "full"), open("b", "nopurge"), open("c", "full")
	create := func(s *jetlog.Store, id, owner, text string) *convo.Appended {
		t.Helper()
		res, err := s.Append(ctx, &convo.Append{Conversation: id, New: &convo.Meta{Owner: owner, Conversation: protocol.Conversation{ID: id, Model: "m"}},
			Build: func(*convo.Meta) ([]convo.Draft, error) {
				return []convo.Draft{{Event: &protocol.Event{Type: protocol.EventDelta, Turn: "t1", Text: text}}}, nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	failedDelete := func(id string) {
		t.Helper()
		create(a, id, "u", "old")
		if _, err := b.Delete(ctx, id, "u"); err == nil {
			t.Fatal("b deleted the conversation without purging the stream")
		}
	}

	t.Run("retried", func(t *testing.T) {
		const id = "c1"
		failedDelete(id)
		if _, err := c.Delete(ctx, id, "u"); err != nil {
			t.Fatalf("delete again on c: %v", err)
		}
		if _, err := c.Events(ctx, id, 0, 0, 10); !errors.Is(err, convo.ErrNotFound) {
			t.Fatalf("events after the delete: %v, want not found", err)
		}
	})
	t.Run("created again", func(t *testing.T) {
		const id = "c2"
		failedDelete(id)
		res := create(c, id, "v", "new")
		if seq := res.Events[0].Seq; seq != 1 {
			t.Errorf("the new conversation's first event has seq %d, want 1", seq)
		}
		if res.Meta.Owner != "v" {
			t.Errorf("the new conversation's owner is %q, want v", res.Meta.Owner)
		}
		frames, err := a.Events(ctx, id, 0, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(frames) != 1 {
			t.Errorf("the new conversation has %d events, want 1: %q", len(frames), frames)
		}
	})
}

// TestFirstAppendRacesDelete: gateway b appends the first events of a
// conversation that gateway a deletes between b's read of its end and
// b's publish (a deletes from inside b's Build, which runs in between).
// The purged subject is as empty as a new one, so b's condition (no
// record yet) still holds; b's append must fail as not found anyway,
// and leave nothing behind.
func TestFirstAppendRacesDelete(t *testing.T) {
	ctx := context.Background()
	srv := natstest.Start(t)
	a, b := openStore(t, srv.URL(), "a"), openStore(t, srv.URL(), "b")
	const id = "c1"
	if _, err := a.Append(ctx, &convo.Append{Conversation: id, New: &convo.Meta{Owner: "u", Conversation: protocol.Conversation{ID: id, Model: "m"}},
		Build: func(*convo.Meta) ([]convo.Draft, error) { return nil, nil }}); err != nil {
		t.Fatal(err)
	}
	deleted := false
	_, err := b.Append(ctx, &convo.Append{Conversation: id, Build: func(*convo.Meta) ([]convo.Draft, error) {
		if !deleted {
			deleted = true
			if _, err := a.Delete(ctx, id, "u"); err != nil {
				return nil, err
			}
		}
		return []convo.Draft{{Event: &protocol.Event{Type: protocol.EventDelta, Turn: "t1", Text: "late"}}}, nil
	}})
	if !errors.Is(err, convo.ErrNotFound) {
		t.Errorf("b's append after the delete: %v, want not found", err)
	}
	for _, s := range []*jetlog.Store{a, b} {
		if _, err := s.Events(ctx, id, 0, 0, 10); !errors.Is(err, convo.ErrNotFound) {
			t.Errorf("events on %s after the delete: %v, want not found", s.Node(), err)
		}
	}
	last, err := a.Log().Last(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if last != nil {
		t.Errorf("the deleted conversation's subject holds seq %d", last.Seq)
	}
}

// TestDeleteAsksNoStreamInfo deletes conversations: each delete purges
// the conversation's subject without asking the stream's leader for
// the stream's info first (one request each, before).
func TestDeleteAsksNoStreamInfo(t *testing.T) {
	ctx := context.Background()
	srv := natstest.Start(t)
	a := openStoreWith(t, srv.URL(), "a", longOpts)
	infos := watchStreamInfos(t, srv)
	for _, id := range []string{"c1", "c2"} {
		appendDelta(t, a, id, "u", "hello")
		if _, err := a.Delete(ctx, id, "u"); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Events(ctx, id, 0, 0, 10); !errors.Is(err, convo.ErrNotFound) {
			t.Fatalf("events of %s after its delete: %v, want not found", id, err)
		}
	}
	if n := infos.count(t, a); n > 0 {
		t.Fatalf("2 deletes asked for the stream's info %d times", n)
	}
}
