package jetlog

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/jetlog/natstest"
	"github.com/chatgateway/gateway/protocol"
)

// TestOwnRecordAfterUnseenOnes: gateway b follows a new conversation, and
// before its follower has delivered anything, gateway a stores seqs 1–2
// and b stores seq 3. b reports 1 and 2 before 3: a hub that follows from
// the start must see every event, not the first one b itself stored.
func TestOwnRecordAfterUnseenOnes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := natstest.Start(t)
	open := func(node string) *Store {
		s, err := OpenStore(ctx, srv.URL(), StoreOptions{Node: node, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	a, b := open("a"), open("b")
	var mu sync.Mutex
	var got []uint64
	b.Start(func(cs []convo.Committed) {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range cs {
			got = append(got, c.Seq)
		}
	})
	const id = "c1"
	appendTo := func(s *Store, a *convo.Append) {
		t.Helper()
		if _, err := s.Append(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	deltas := func(texts ...string) func(*convo.Meta) ([]convo.Draft, error) {
		return func(*convo.Meta) ([]convo.Draft, error) {
			var out []convo.Draft
			for _, text := range texts {
				out = append(out, convo.Draft{Event: &protocol.Event{Type: protocol.EventDelta, Turn: "t1", Text: text}})
			}
			return out, nil
		}
	}
	appendTo(a, &convo.Append{Conversation: id, New: &convo.Meta{Owner: "u", Conversation: protocol.Conversation{ID: id, Model: "m"}},
		Build: func(*convo.Meta) ([]convo.Draft, error) { return nil, nil }})

	// What Follow does at once; its follower, which starts in the
	// background, is left out, as if it had not delivered yet.
	c, err := b.acquire(id)
	if err != nil {
		t.Fatal(err)
	}
	c.repMu.Lock()
	c.follows++
	c.repMu.Unlock()
	defer b.release(c)

	appendTo(a, &convo.Append{Conversation: id, Build: deltas("one", "two")})
	appendTo(b, &convo.Append{Conversation: id, Build: deltas("three")})
	mu.Lock()
	defer mu.Unlock()
	if want := []uint64{1, 2, 3}; !slices.Equal(got, want) {
		t.Fatalf("b reported seqs %v, want %v", got, want)
	}
}
