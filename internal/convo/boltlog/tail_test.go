package boltlog

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

// appendEvents stores evs in conversation id in one commit.
func appendEvents(t *testing.T, l *Log, id string, evs ...*protocol.Event) {
	t.Helper()
	_, err := l.Append(context.Background(), &convo.Append{Conversation: id, Build: func(*convo.Meta) ([]convo.Draft, error) {
		drafts := make([]convo.Draft, len(evs))
		for i, ev := range evs {
			c := *ev
			drafts[i] = convo.Draft{Event: &c}
		}
		return drafts, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
}

// create makes an empty conversation id.
func create(t *testing.T, l *Log, id string) {
	t.Helper()
	_, err := l.Append(context.Background(), &convo.Append{Conversation: id, New: &convo.Meta{Owner: "u1"},
		Build: func(*convo.Meta) ([]convo.Draft, error) { return nil, nil }})
	if err != nil {
		t.Fatal(err)
	}
}

// openTest opens a Log on a fresh file in t.TempDir and closes it at the
// end of the test.
func openTest(t *testing.T) *Log {
	t.Helper()
	return openAt(t, filepath.Join(t.TempDir(), "gateway.db"))
}

// openAt opens a Log on the file at path and closes it at the end of the
// test.
func openAt(t *testing.T, path string) *Log {
	t.Helper()
	l, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// checkLog reads conversation id's events through Events in every
// way a replay does (from each after, with and without upTo, in pages of
// 1, 7 and 1000) and checks they are seqs 1…want, in order, each with its
// own seq.
func checkLog(t *testing.T, st *Log, id string, want uint64) {
	t.Helper()
	if m, err := st.Meta(context.Background(), id); err != nil || m.LastSeq != want {
		t.Fatalf("last seq = %d (%v), want %d", m.LastSeq, err, want)
	}
	for _, after := range []uint64{0, 1, want / 3, want / 2, want - 1, want} {
		for _, upTo := range []uint64{0, want, (after + want + 1) / 2} {
			if upTo != 0 && upTo < after {
				continue
			}
			for _, limit := range []int{1, 7, 1000} {
				checkRead(t, st, id, after, upTo, want, limit)
			}
		}
	}
}

// checkRead reads conversation id's events after after (up to upTo, or
// to its last seq want when upTo is 0) in pages of limit, and checks that
// they are the seqs after+1… in order.
func checkRead(t *testing.T, st *Log, id string, after, upTo, want uint64, limit int) {
	t.Helper()
	end := upTo
	if end == 0 {
		end = want
	}
	pos := after
	for pos < end {
		frames, err := st.Events(context.Background(), id, pos, upTo, limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(frames) == 0 || len(frames) > limit {
			t.Fatalf("after %d upTo %d limit %d: %d frames at pos %d", after, upTo, limit, len(frames), pos)
		}
		for _, f := range frames {
			var ev protocol.Event
			if err := json.Unmarshal(f, &ev); err != nil {
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

// tailLen counts the entries in the tail and tailidx buckets.
func tailLen(t *testing.T, st *Log) (entries, conversations int) {
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
	s := openAt(t, path)
	ctx := context.Background()
	a, b := convo.Meta{}, convo.Meta{}
	a.ID, b.ID = "a", "b"
	create(t, s, a.ID)
	create(t, s, b.ID)
	// A reply in conversation a with actions among its deltas, longer
	// than tailMoveAt, while b's reply streams alongside.
	appendEvents(t, s, a.ID, &protocol.Event{Type: protocol.EventTurnStart, Turn: "t1"})
	appendEvents(t, s, b.ID, &protocol.Event{Type: protocol.EventTurnStart, Turn: "t1"})
	var last uint64 = 1
	for i := range tailMoveAt + 40 {
		evs := []*protocol.Event{delta(fmt.Sprint(i, " "))}
		if i%50 == 7 {
			evs = append(evs, &protocol.Event{Type: protocol.EventAction, Turn: "t1", Name: fmt.Sprint("tool", i)}, delta("after"))
		}
		appendEvents(t, s, a.ID, evs...)
		appendEvents(t, s, b.ID, delta("b"))
		last += uint64(len(evs))
	}
	checkLog(t, s, a.ID, last)
	if entries, convs := tailLen(t, s); convs != 2 || entries < 40 {
		t.Fatalf("tail has %d entries of %d conversations mid-reply, want ≥ 40 of 2", entries, convs)
	}

	// A crash mid-reply: the tail is read back at start-up.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, path)
	checkLog(t, s, a.ID, last)
	// Recovery ends both replies: their deltas move.
	for _, id := range []string{a.ID, b.ID} {
		appendEvents(t, s, id, &protocol.Event{Type: protocol.EventTurnEnd, Turn: "t1", StopReason: protocol.StopInterrupted,
			Message: &protocol.Message{Role: protocol.RoleAssistant, Turn: "t1"}})
	}
	last++
	checkLog(t, s, a.ID, last)
	// The next commit cuts the tail below the oldest entry still listed:
	// none.
	appendEvents(t, s, b.ID, &protocol.Event{Type: protocol.EventTurnStart, Turn: "t2"}, delta("new"))
	if entries, convs := tailLen(t, s); entries != 2 || convs != 1 {
		t.Fatalf("tail has %d entries of %d conversations, want b's turn start and delta", entries, convs)
	}
	// Deleting a conversation mid-reply drops its tail entries.
	if err := s.Delete(ctx, b.ID, "u1"); err != nil {
		t.Fatal(err)
	}
	appendEvents(t, s, a.ID, &protocol.Event{Type: protocol.EventTurnStart, Turn: "t3"})
	if entries, convs := tailLen(t, s); entries != 1 || convs != 1 {
		t.Fatalf("tail has %d entries of %d conversations after the delete, want a's turn start only", entries, convs)
	}
	checkLog(t, s, a.ID, last+1)
}

// TestStalledReplyDoesNotPinTheTail streams a long reply in one
// conversation while another reply stalls after one chunk: the stalled
// reply's event moves out of the tail once it is tailMaxBehind entries
// old, so the tail stays bounded, and its log stays whole.
func TestStalledReplyDoesNotPinTheTail(t *testing.T) {
	s := openTest(t)
	for _, id := range []string{"stalled", "busy"} {
		create(t, s, id)
		appendEvents(t, s, id, &protocol.Event{Type: protocol.EventTurnStart, Turn: "t1"})
	}
	appendEvents(t, s, "stalled", delta("only"))
	const perCommit = 1000
	batch := make([]*protocol.Event, perCommit)
	for i := range batch {
		batch[i] = delta("x")
	}
	commits := tailMaxBehind/perCommit + 3
	for range commits {
		appendEvents(t, s, "busy", batch...)
	}
	// Without the bound, the stalled reply's one delta would keep every
	// busy delta after it in the tail.
	if entries, _ := tailLen(t, s); entries > tailMaxBehind {
		t.Fatalf("tail has %d entries, want at most %d", entries, tailMaxBehind)
	}
	checkLog(t, s, "stalled", 2)
	// The busy log is read once, whole: checkLog's every way over its
	// 19,000 events took two thirds of this test's time under -race.
	busy := uint64(1 + commits*perCommit)
	if m, err := s.Meta(context.Background(), "busy"); err != nil || m.LastSeq != busy {
		t.Fatalf("busy: last seq %d (%v), want %d", m.LastSeq, err, busy)
	}
	checkRead(t, s, "busy", 0, 0, busy, 4096)
	appendEvents(t, s, "stalled", delta("more"))
	checkLog(t, s, "stalled", 3)
}

// oldRefs encodes refs as files written before the compact encoding hold
// them: 8+8-byte big-endian pairs.
func oldRefs(refs []tailRef) []byte {
	var v []byte
	for _, r := range refs {
		v = binary.BigEndian.AppendUint64(v, r.seq)
		v = binary.BigEndian.AppendUint64(v, r.g)
	}
	return v
}

func TestTailRefsEncoding(t *testing.T) {
	refs := []tailRef{{5, 1}, {6, 40}, {7, 41}, {9, 1 << 40}, {10, 1<<40 + 3}}
	t.Run("compact", func(t *testing.T) {
		var v []byte
		for i, r := range refs {
			var n int
			v, n = appendRef(v, r)
			if n != i+1 {
				t.Fatalf("appendRef says %d pairs, want %d", n, i+1)
			}
		}
		if got := tailRefs(v); !slices.Equal(got, refs) {
			t.Fatalf("decoded %v, want %v", got, refs)
		}
		// Small steps take a few bytes a pair, not 16.
		var small []byte
		for _, r := range refs[:3] {
			small, _ = appendRef(small, r)
		}
		if len(small) > 8 {
			t.Errorf("%d bytes for 3 pairs a step apart, want at most 8", len(small))
		}
	})
	t.Run("written before", func(t *testing.T) {
		old := oldRefs(refs[:3])
		if got := tailRefs(old); !slices.Equal(got, refs[:3]) {
			t.Fatalf("decoded %v, want %v", got, refs[:3])
		}
		v, n := appendRef(old, refs[3])
		if n != 4 || v[0] != compactRefs {
			t.Fatalf("appending to an old value: %d pairs, first byte %#x", n, v[0])
		}
		if got := tailRefs(v); !slices.Equal(got, refs[:4]) {
			t.Fatalf("decoded %v, want %v", got, refs[:4])
		}
	})
}

// FuzzTailRefs decodes any tailidx value without failing, and appending a
// pair to it keeps the pairs it decoded and adds that one.
func FuzzTailRefs(f *testing.F) {
	var compact []byte
	for _, r := range []tailRef{{1, 7}, {2, 9}, {4, 1 << 33}} {
		compact, _ = appendRef(compact, r)
	}
	f.Add(compact, uint64(5), uint64(1<<33+1))
	f.Add(oldRefs([]tailRef{{1, 7}, {2, 9}}), uint64(3), uint64(10))
	f.Add([]byte{compactRefs, 0x80}, uint64(1), uint64(1))
	f.Fuzz(func(t *testing.T, v []byte, seq, g uint64) {
		refs := tailRefs(v)
		next, n := appendRef(v, tailRef{seq, g})
		got := tailRefs(next)
		if n != len(refs)+1 || len(got) != n || !slices.Equal(got[:len(refs)], refs) || got[len(refs)] != (tailRef{seq, g}) {
			t.Fatalf("appendRef(%x, {%d %d}) = %x: decodes to %v (n %d), want %v and the new pair", v, seq, g, next, got, n, refs)
		}
	})
}
