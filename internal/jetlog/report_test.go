package jetlog_test

import (
	"context"
	"slices"
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
	a, b := openStore(t, srv.URL(), "a"), openStore(t, srv.URL(), "b")
	onB := collect(b)
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
	stop := b.Follow(id, 0, time.Time{})
	defer stop()

	appendTo(a, nil, "one", "two")
	appendTo(b, func(*convo.Appended) { srv.Stop() }, "three")
	srv.Restart()
	unblockFollowers(t, srv)

	if got, want := onB.waitKey(t, "3:three"), []string{"1:one", "2:two", "3:three"}; !slices.Equal(got, want) {
		t.Fatalf("b reported %v, want %v", got, want)
	}
}
