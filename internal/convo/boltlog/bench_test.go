package boltlog

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

// BenchmarkAppend measures storing delta events through the commit loop,
// from one writer (each append pays a commit) and from many in parallel
// (appends share commits), against bare bbolt Updates of the same size on
// the same disk.
func BenchmarkAppend(b *testing.B) {
	b.Run("bare-bolt-update", func(b *testing.B) {
		db, err := bolt.Open(filepath.Join(b.TempDir(), "bare.db"), 0o600, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		val := make([]byte, 120)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			err := db.Update(func(tx *bolt.Tx) error {
				bk, err := tx.CreateBucketIfNotExists([]byte("b"))
				if err != nil {
					return err
				}
				return bk.Put(seqKey("c", uint64(i)), val)
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, parallel := range []bool{false, true} {
		b.Run(fmt.Sprint("parallel=", parallel), func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), "db"), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			appendOne := func(id string) {
				_, err := s.Append(ctx, &convo.Append{Conversation: id, Build: func(*convo.Meta) ([]convo.Draft, error) {
					return []convo.Draft{{Event: &protocol.Event{Type: protocol.EventDelta, Turn: "t", Text: "a few words of text"}}}, nil
				}})
				if err != nil {
					b.Error(err)
				}
			}
			var ids atomic.Int64
			newConvo := func() string {
				id := fmt.Sprint("c", ids.Add(1))
				_, err := s.Append(ctx, &convo.Append{Conversation: id, New: &convo.Meta{Owner: "u"},
					Build: func(*convo.Meta) ([]convo.Draft, error) { return nil, nil }})
				if err != nil {
					b.Fatal(err)
				}
				return id
			}
			c0, o0 := s.Stats()
			b.ReportAllocs()
			b.ResetTimer()
			if parallel {
				b.SetParallelism(64)
				b.RunParallel(func(pb *testing.PB) {
					id := newConvo()
					for pb.Next() {
						appendOne(id)
					}
				})
			} else {
				id := newConvo()
				for i := 0; i < b.N; i++ {
					appendOne(id)
				}
			}
			b.StopTimer()
			c1, o1 := s.Stats()
			b.ReportMetric(float64(o1-o0)/float64(c1-c0), "ops/commit")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkHistory reads the whole history (200 messages) of a
// conversation of 10,000 events, 100 turns of 97 deltas each, as a turn
// does at its start: the walk over the conversation's events that
// history makes since messages are read from the events that carry them.
func BenchmarkHistory(b *testing.B) {
	l, err := Open(filepath.Join(b.TempDir(), "db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	_, err = l.Append(ctx, &convo.Append{Conversation: "c", New: &convo.Meta{Owner: "u"},
		Build: func(*convo.Meta) ([]convo.Draft, error) { return nil, nil }})
	if err != nil {
		b.Fatal(err)
	}
	for turn := range 100 {
		t := fmt.Sprint("t", turn)
		drafts := []convo.Draft{{Event: &protocol.Event{Type: protocol.EventMessage,
			Message: &protocol.Message{ID: "m" + t, Role: protocol.RoleUser, Text: "a question", Turn: t}}},
			{Event: &protocol.Event{Type: protocol.EventTurnStart, Turn: t}}}
		for range 97 {
			drafts = append(drafts, convo.Draft{Event: &protocol.Event{Type: protocol.EventDelta, Turn: t, Text: "a few words "}})
		}
		drafts = append(drafts, convo.Draft{Event: &protocol.Event{Type: protocol.EventTurnEnd, Turn: t, StopReason: protocol.StopEndTurn,
			Message: &protocol.Message{ID: "r" + t, Role: protocol.RoleAssistant, Text: "a few words", Turn: t}}})
		_, err := l.Append(ctx, &convo.Append{Conversation: "c", Build: func(*convo.Meta) ([]convo.Draft, error) { return drafts, nil }})
		if err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		msgs, _, err := l.Messages(ctx, "c", 0, 0, 0)
		if err != nil || len(msgs) != 200 {
			b.Fatalf("%d messages, %v", len(msgs), err)
		}
	}
}
