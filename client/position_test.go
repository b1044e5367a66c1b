package client_test

import (
	"errors"
	"net/http"
	"testing"

	"github.com/chatgateway/gateway/client"
	"github.com/chatgateway/gateway/internal/conn/conntest"
	"github.com/chatgateway/gateway/protocol"
)

// TestResumeSavedPosition is a program that saves its position (the
// conversation, the seq of the last event it handled and the
// Subscription's CreatedAt), stops, and resumes with a new Client while
// the conversation was deleted, or deleted and created again under its id
// and grown past the saved seq. With CreatedAt its first Subscribe
// returns ErrDeleted (wrapping not_found) rather than the new log from the
// saved seq on, its events 1 to seq silently missed; without it, that blind
// resume is what happens. A conversation left alone resumes at the event
// after the saved one.
func TestResumeSavedPosition(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		// deleted and recreated say what happens while the program
		// is stopped; saved is whether it resumes with CreatedAt.
		deleted, recreated, saved bool
		// deletedErr is whether Subscribe returns ErrDeleted; else the
		// first event is the one after the saved seq.
		deletedErr bool
	}{
		{"left alone", false, false, true, false},
		{"deleted", true, false, true, true},
		{"recreated longer", true, true, true, true},
		{"recreated longer, resumed without created_at", true, true, false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := conntest.Start(t, conntest.Config{})
			ctx := conntest.Deadline(t)

			// The first run of the program.
			first := dial(t, srv.URL, fast)
			conv, err := first.Create(ctx, protocol.Create{Conversation: "c"})
			if err != nil {
				t.Fatal(err)
			}
			sub, err := first.Subscribe(ctx, "c", 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := first.Send(ctx, "c", "hello"); err != nil {
				t.Fatal(err)
			}
			seen := readTurn(t, sub)
			seq, created := seen[len(seen)-1].Seq, sub.CreatedAt()
			if !created.Equal(conv.CreatedAt) {
				t.Fatalf("Subscription.CreatedAt %v, the conversation was created at %v", created, conv.CreatedAt)
			}
			if err := first.Close(); err != nil {
				t.Fatal(err)
			}

			// Meanwhile.
			if tt.deleted {
				if status, body := conntest.Do(t, http.MethodDelete, srv.URL+"/v1/conversations/c", ""); status != http.StatusOK {
					t.Fatalf("delete: %d %s", status, body)
				}
			}
			if tt.recreated {
				if status, body := conntest.Do(t, http.MethodPost, srv.URL+"/v1/conversations", `{"conversation":"c"}`); status != http.StatusCreated {
					t.Fatalf("create: %d %s", status, body)
				}
			}
			if !tt.deleted || tt.recreated {
				for range seq + 2 { // past the saved seq
					if status, body := conntest.Do(t, http.MethodPost, srv.URL+"/v1/conversations/c/actions", `{"name":"step"}`); status != http.StatusCreated {
						t.Fatalf("action: %d %s", status, body)
					}
				}
			}

			// The next run, from the saved position.
			var opts []client.SubscribeOption
			if tt.saved {
				opts = append(opts, client.CreatedAt(created))
			}
			next := dial(t, srv.URL, fast)
			sub, err = next.Subscribe(ctx, "c", seq, opts...)
			if tt.deletedErr {
				var perr *protocol.Error
				if !errors.Is(err, client.ErrDeleted) || !errors.As(err, &perr) || perr.Code != protocol.CodeNotFound || sub != nil {
					t.Fatalf("Subscribe from the saved position: subscribed %t, %v; want ErrDeleted and not_found", sub != nil, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ev, err := sub.Next(ctx); err != nil || ev.Seq != seq+1 {
				t.Fatalf("first event after resuming: seq %d, %v; want seq %d", ev.Seq, err, seq+1)
			}
		})
	}
}
