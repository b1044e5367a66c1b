package convo

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/chatgateway/gateway/protocol"
)

// appendEvents stores evs in conversation id in one commit.
func appendEvents(t *testing.T, st *store, id string, evs ...*protocol.Event) {
	t.Helper()
	err := st.do(func(b *batch) error {
		m, err := b.meta(id)
		if err != nil {
			return err
		}
		for _, ev := range evs {
			if err := b.append(m, ev); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// checkLog reads conversation id's events through readEvents in every
// way a replay does (from each after, with and without upTo, in pages of
// each of limits, default 1, 7 and 1000) and checks they are seqs
// 1…want, in order, each with its own seq.
func checkLog(t *testing.T, st *store, id string, want uint64, limits ...int) {
	t.Helper()
	if got := st.lastSeq(id); got != want {
		t.Fatalf("lastSeq = %d, want %d", got, want)
	}
	for _, after := range []uint64{0, 1, want / 3, want / 2, want - 1, want} {
		for _, upTo := range []uint64{0, want, (after + want + 1) / 2} {
			if upTo != 0 && upTo < after {
				continue
			}
			end := upTo
			if end == 0 {
				end = want
			}
			if limits == nil {
				limits = []int{1, 7, 1000}
			}
			for _, limit := range limits {
				pos := after
				for pos < end {
					frames, err := st.readEvents(id, pos, upTo, limit)
					if err != nil {
						t.Fatal(err)
					}
					if len(frames) == 0 || len(frames) > limit {
						t.Fatalf("after %d upTo %d limit %d: %d frames at pos %d", after, upTo, limit, len(frames), pos)
					}
					for _, f := range frames {
						ev, err := decodeEvent(f)
						if err != nil {
							t.Fatal(err)
						}
						if pos++; ev.Seq != pos {
							t.Fatalf("after %d upTo %d limit %d: seq %d where %d was due", after, upTo, limit, ev.Seq, pos)
						}
					}
				}
				if pos != end {
					t.Fatalf("after %d upTo %d limit %d: read up to %d, want %d", after, upTo, limit, pos, end)
				}
			}
		}
	}
}

// tailLen counts the entries in the tail and tailidx buckets.
func tailLen(t *testing.T, st *store) (entries, conversations int) {
	t.Helper()
	err := st.db.View(func(tx *bolt.Tx) error {
		entries = tx.Bucket(bucketTail).Stats().KeyN
		conversations = tx.Bucket(bucketTailIdx).Stats().KeyN
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return entries, conversations
}

func delta(text string) *protocol.Event {
	return &protocol.Event{Type: protocol.EventDelta, Turn: "t1", Text: text}
}

// TestTailKeepsTheLogWhole stores replies in progress in the tail,
// interleaved with events that go straight to the events bucket, and
// checks that readers see one gapless log before and after the reply
// moves out of the tail, across a restart, and that the tail empties.
func TestTailKeepsTheLogWhole(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gateway.db")
	s, err := Open(path, &scriptModel{gate: make(chan struct{})}, Config{DefaultModel: "m", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a, err := s.Create(ctx, "u1", &protocol.Create{Conversation: "a"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Create(ctx, "u1", &protocol.Create{Conversation: "b"})
	if err != nil {
		t.Fatal(err)
	}
	// A reply in conversation a with actions among its deltas, longer
	// than tailMoveAt, while b's reply streams alongside.
	appendEvents(t, s.st, a.ID, &protocol.Event{Type: protocol.EventTurnStart, Turn: "t1"})
	appendEvents(t, s.st, b.ID, &protocol.Event{Type: protocol.EventTurnStart, Turn: "t1"})
	var last uint64 = 1
	for i := range tailMoveAt + 40 {
		evs := []*protocol.Event{delta(fmt.Sprint(i, " "))}
		if i%50 == 7 {
			evs = append(evs, &protocol.Event{Type: protocol.EventAction, Turn: "t1", Name: fmt.Sprint("tool", i)}, delta("after"))
		}
		appendEvents(t, s.st, a.ID, evs...)
		appendEvents(t, s.st, b.ID, delta("b"))
		last += uint64(len(evs))
	}
	checkLog(t, s.st, a.ID, last)
	if entries, convs := tailLen(t, s.st); convs != 2 || entries < 40 {
		t.Fatalf("tail has %d entries of %d conversations mid-reply, want ≥ 40 of 2", entries, convs)
	}

	// A crash mid-reply: the tail is read back at start-up.
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, &scriptModel{}, Config{DefaultModel: "m", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	// Open ended both replies as interrupted: their deltas moved.
	last++
	checkLog(t, s.st, a.ID, last)
	h, err := s.History(ctx, "u1", a.ID, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	if got := h.Messages[0]; got.Role != protocol.RoleAssistant || len(got.Text) < tailMoveAt {
		t.Fatalf("interrupted reply stored as %s %q", got.Role, got.Text)
	}
	// The next commit cuts the tail below the oldest entry still listed:
	// none.
	appendEvents(t, s.st, b.ID, &protocol.Event{Type: protocol.EventTurnStart, Turn: "t2"}, delta("new"))
	if entries, convs := tailLen(t, s.st); entries != 1 || convs != 1 {
		t.Fatalf("tail has %d entries of %d conversations, want b's one delta", entries, convs)
	}
	// Deleting a conversation mid-reply drops its tail entries.
	if err := s.Delete(ctx, "u1", b.ID); err != nil {
		t.Fatal(err)
	}
	appendEvents(t, s.st, a.ID, &protocol.Event{Type: protocol.EventTurnStart, Turn: "t3"})
	if entries, convs := tailLen(t, s.st); entries != 0 || convs != 0 {
		t.Fatalf("tail has %d entries of %d conversations after the delete, want none", entries, convs)
	}
	checkLog(t, s.st, a.ID, last+1)
}

// TestStalledReplyDoesNotPinTheTail streams a long reply in one
// conversation while another reply stalls after one chunk: the stalled
// reply's event moves out of the tail once it is tailMaxBehind entries
// old, so the tail stays bounded, and its log stays whole.
func TestStalledReplyDoesNotPinTheTail(t *testing.T) {
	s, _ := openTest(t, &scriptModel{gate: make(chan struct{})})
	ctx := context.Background()
	for _, id := range []string{"stalled", "busy"} {
		if _, err := s.Create(ctx, "u1", &protocol.Create{Conversation: id}); err != nil {
			t.Fatal(err)
		}
		appendEvents(t, s.st, id, &protocol.Event{Type: protocol.EventTurnStart, Turn: "t1"})
	}
	appendEvents(t, s.st, "stalled", delta("only"))
	const perCommit = 1000
	batch := make([]*protocol.Event, perCommit)
	for i := range batch {
		batch[i] = delta("x")
	}
	commits := tailMaxBehind/perCommit + 3
	for range commits {
		appendEvents(t, s.st, "busy", batch...)
	}
	// Without the bound, the stalled reply's one delta would keep every
	// busy delta after it in the tail.
	if entries, _ := tailLen(t, s.st); entries > tailMaxBehind {
		t.Fatalf("tail has %d entries, want at most %d", entries, tailMaxBehind)
	}
	checkLog(t, s.st, "stalled", 2)
	checkLog(t, s.st, "busy", uint64(1+commits*perCommit), 4096)
	appendEvents(t, s.st, "stalled", delta("more"))
	checkLog(t, s.st, "stalled", 3)
}
