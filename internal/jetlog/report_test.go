package jetlog_test

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/jetlog"
	"github.com/chatgateway/gateway/internal/jetlog/natstest"
	"github.com/chatgateway/gateway/protocol"
)

// TestGapReadFailsMidTurn: gateway b follows a conversation whose
// follower cannot start yet (the stream is at its consumer limit), a
// stores seqs 1–2, then b stores seq 3 and NATS stops right after its
// acknowledgement, so that b cannot read 1–2 before it reports 3. b must
// still report 1, 2 and 3, in order, once NATS is back: a gap is never
// reported, or the hubs would hand it on to their subscribers.
func TestGapReadFailsMidTurn(t *testing.T) {
	ctx := context.Background()
	srv := natstest.Start(t)
	open := func(node string) *jetlog.Store {
		s, err := jetlog.OpenStore(ctx, srv.URL(), jetlog.StoreOptions{Node: node, Logger: slog.New(slog.DiscardHandler),
			Options: jetlog.Options{Timeout: time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	a, b := open("a"), open("b")
	var mu sync.Mutex
	var got []uint64
	reported := make(chan struct{}, 1)
	b.Start(func(cs []convo.Committed) {
		mu.Lock()
		for _, c := range cs {
			got = append(got, c.Seq)
		}
		mu.Unlock()
		select {
		case reported <- struct{}{}:
		default:
		}
	})
	const id = "c1"
	appendTo := func(s *jetlog.Store, durable func(*convo.Appended), texts ...string) {
		t.Helper()
		_, err := s.Append(ctx, &convo.Append{Conversation: id, Durable: durable,
			Build: func(*convo.Meta) ([]convo.Draft, error) {
				var out []convo.Draft
				for _, text := range texts {
					out = append(out, convo.Draft{Event: &protocol.Event{Type: protocol.EventDelta, Turn: "t1", Text: text}})
				}
				return out, nil
			}})
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.Append(ctx, &convo.Append{Conversation: id, New: &convo.Meta{Owner: "u", Conversation: protocol.Conversation{ID: id, Model: "m"}},
		Build: func(*convo.Meta) ([]convo.Draft, error) { return nil, nil }}); err != nil {
		t.Fatal(err)
	}

	// The stream takes no more consumers: b's follower keeps trying to
	// start.
	blockFollowers(t, srv)
	stop := b.Follow(id, 0)
	defer stop()

	appendTo(a, nil, "one", "two")
	appendTo(b, func(*convo.Appended) { srv.Stop() }, "three")
	srv.Restart()
	unblockFollowers(t, srv)

	for {
		mu.Lock()
		seqs := slices.Clone(got)
		mu.Unlock()
		if slices.Contains(seqs, 3) {
			if want := []uint64{1, 2, 3}; !slices.Equal(seqs, want) {
				t.Fatalf("b reported seqs %v, want %v", seqs, want)
			}
			return
		}
		<-reported
	}
}
