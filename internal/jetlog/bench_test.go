package jetlog_test

import (
	"context"
	"fmt"
	"log/slog"
	"testing"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/jetlog"
	"github.com/chatgateway/gateway/internal/jetlog/natstest"
	"github.com/chatgateway/gateway/protocol"
)

// BenchmarkMessages reads back the messages of a conversation of 100
// turns, each a question, its turn_start, 20 deltas and a turn_end with
// the reply, as a turn reads its history in cluster mode: the whole log.
func BenchmarkMessages(b *testing.B) {
	const turns, chunks = 100, 20
	srv := natstest.Start(b)
	s, err := jetlog.OpenStore(context.Background(), srv.URL(), jetlog.StoreOptions{Node: "a", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	ctx := context.Background()
	const id = "c"
	if _, err := s.Append(ctx, &convo.Append{Conversation: id, New: &convo.Meta{Owner: "u", Conversation: protocol.Conversation{ID: id, Model: "m"}},
		Build: func(*convo.Meta) ([]convo.Draft, error) { return nil, nil }}); err != nil {
		b.Fatal(err)
	}
	for i := range turns {
		turn := fmt.Sprint("t", i)
		evs := []*protocol.Event{
			{Type: protocol.EventMessage, Message: &protocol.Message{ID: "m" + turn, Role: protocol.RoleUser, Text: "a question of a few words", Turn: turn}},
			{Type: protocol.EventTurnStart, Turn: turn, Model: "m"},
		}
		for range chunks {
			evs = append(evs, &protocol.Event{Type: protocol.EventDelta, Turn: turn, Text: "1764864000000000000 chunk"})
		}
		evs = append(evs, &protocol.Event{Type: protocol.EventTurnEnd, Turn: turn, StopReason: protocol.StopEndTurn,
			Usage:   &protocol.Usage{InputTokens: 100, OutputTokens: 200},
			Message: &protocol.Message{ID: "r" + turn, Role: protocol.RoleAssistant, Text: "the reply, all its chunks together", Turn: turn}})
		if _, err := s.Append(ctx, &convo.Append{Conversation: id, Build: func(*convo.Meta) ([]convo.Draft, error) {
			drafts := make([]convo.Draft, len(evs))
			for j, ev := range evs {
				c := *ev
				drafts[j] = convo.Draft{Event: &c}
			}
			return drafts, nil
		}}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		msgs, _, err := s.Messages(ctx, id, 0, 0, 0)
		if err != nil {
			b.Fatal(err)
		}
		if len(msgs) != 2*turns {
			b.Fatalf("%d messages, want %d", len(msgs), 2*turns)
		}
	}
}
