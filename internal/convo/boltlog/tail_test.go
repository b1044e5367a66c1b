package boltlog

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

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
	return openWith(t, path, Options{})
}

// openWith is openAt with opts.
func openWith(t *testing.T, path string, opts Options) *Log {
	t.Helper()
	l, err := Open(path, opts)
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

// tailUse is what checkTail found: the tail's entries, those listed by
// runs, and those listed by the index.
type tailUse struct{ entries, inRuns, listed int }

// checkTail checks that every entry of l's tail is listed once, by a run
// or by the index, that no run or index lists anything else, and that
// the watermark stored is the commit loop's and below every entry the
// index lists.
func checkTail(t *testing.T, l *Log) tailUse {
	t.Helper()
	var u tailUse
	count := map[uint64]int{}
	var stored uint64
	err := l.db.View(func(tx *bolt.Tx) error {
		err := tx.Bucket(bucketTail).ForEach(func(k, _ []byte) error {
			count[binary.BigEndian.Uint64(k)] = 0
			return nil
		})
		if err == nil {
			err = tx.Bucket(bucketRuns).ForEach(func(k, v []byte) error {
				for _, r := range tailRefs(v) {
					if _, ok := count[r.g]; !ok {
						return fmt.Errorf("run %q lists seq %d at %d, not in the tail", k, r.seq, r.g)
					}
					count[r.g]++
					u.inRuns++
				}
				return nil
			})
		}
		stored = binary.BigEndian.Uint64(tx.Bucket(bucketState).Get(keyIndexed))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for id, refs := range l.tail.refs {
		for _, r := range refs {
			if r.g < stored {
				t.Errorf("%s's seq %d at %d is below the watermark %d", id, r.seq, r.g, stored)
			}
			if _, ok := count[r.g]; !ok {
				t.Errorf("the index lists %s's seq %d at %d, not in the tail", id, r.seq, r.g)
			}
			count[r.g]++
			u.listed++
		}
	}
	for g, n := range count {
		if n != 1 {
			t.Errorf("tail entry %d listed %d times", g, n)
		}
	}
	if stored != l.tail.indexed {
		t.Errorf("watermark stored %d, the commit loop's %d", stored, l.tail.indexed)
	}
	u.entries = len(count)
	return u
}

func delta(text string) *protocol.Event {
	return &protocol.Event{Type: protocol.EventDelta, Turn: "t1", Text: text}
}

// TestTailKeepsTheLogWhole stores replies in progress, interleaved with
// other events, and checks that readers see one gapless log before and
// after a reply's events are written as runs (early and at its end),
// across a restart, that the index empties, and that a delete takes all
// of a conversation's entries.
func TestTailKeepsTheLogWhole(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gateway.db")
	s := openAt(t, path)
	ctx := context.Background()
	a, b := convo.Meta{}, convo.Meta{}
	a.ID, b.ID = "a", "b"
	create(t, s, a.ID)
	create(t, s, b.ID)
	// A reply in conversation a with actions among its deltas, longer
	// than runMax, while b's reply streams alongside.
	appendEvents(t, s, a.ID, &protocol.Event{Type: protocol.EventTurnStart, Turn: "t1"})
	appendEvents(t, s, b.ID, &protocol.Event{Type: protocol.EventTurnStart, Turn: "t1"})
	var last uint64 = 1
	for i := range runMax + 40 {
		evs := []*protocol.Event{delta(fmt.Sprint(i, " "))}
		if i%50 == 7 {
			evs = append(evs, &protocol.Event{Type: protocol.EventAction, Turn: "t1", Name: fmt.Sprint("tool", i)}, delta("after"))
		}
		appendEvents(t, s, a.ID, evs...)
		appendEvents(t, s, b.ID, delta("b"))
		last += uint64(len(evs))
	}
	checkLog(t, s, a.ID, last)
	if u := checkTail(t, s); len(s.tail.refs) != 2 || u.listed < 40 || u.inRuns < runMax {
		t.Fatalf("index lists %d entries of %d conversations mid-reply, runs %d, want ≥ 40 of 2 and a run of %d", u.listed, len(s.tail.refs), u.inRuns, runMax)
	}

	// A crash mid-reply: the tail is read back at start-up.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, path)
	checkLog(t, s, a.ID, last)
	checkTail(t, s)
	// Recovery ends both replies: each is written as a run.
	for _, id := range []string{a.ID, b.ID} {
		appendEvents(t, s, id, &protocol.Event{Type: protocol.EventTurnEnd, Turn: "t1", StopReason: protocol.StopInterrupted,
			Message: &protocol.Message{Role: protocol.RoleAssistant, Turn: "t1"}})
	}
	last++
	checkLog(t, s, a.ID, last)
	if u := checkTail(t, s); u.listed != 0 {
		t.Fatalf("index lists %d entries once both replies ended", u.listed)
	}
	appendEvents(t, s, b.ID, &protocol.Event{Type: protocol.EventTurnStart, Turn: "t2"}, delta("new"))
	if u := checkTail(t, s); u.listed != 2 {
		t.Fatalf("index lists %d entries, want b's turn start and delta", u.listed)
	}
	// Deleting a conversation mid-reply deletes its entries, in runs and
	// in the index.
	if _, err := s.Delete(ctx, b.ID, "u1"); err != nil {
		t.Fatal(err)
	}
	appendEvents(t, s, a.ID, &protocol.Event{Type: protocol.EventTurnStart, Turn: "t3"})
	if u := checkTail(t, s); u.entries != int(last+1) || u.listed != 1 {
		t.Fatalf("tail has %d entries, the index %d, after the delete; want a's %d, its turn start listed", u.entries, u.listed, last+1)
	}
	checkLog(t, s, a.ID, last+1)
}

// TestStalledReplyDoesNotHoldTheWatermark streams a long reply in one
// conversation while another reply stalls after one chunk: the stalled
// reply's events are written as a run once its oldest is tailMaxBehind
// entries old, so the watermark (and what an open reads of the tail)
// stays that close to the tail's end, and its log stays whole.
func TestStalledReplyDoesNotHoldTheWatermark(t *testing.T) {
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
	// Without the bound, the stalled reply's one delta would hold the
	// watermark below every busy delta.
	if behind := s.tail.next - s.tail.indexed; behind > tailMaxBehind {
		t.Fatalf("watermark %d entries behind, want at most %d", behind, tailMaxBehind)
	}
	checkTail(t, s)
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

// TestTailRefsEncoding decodes runs, and the tailidx values of files
// written before, in both encodings.
func TestTailRefsEncoding(t *testing.T) {
	refs := []tailRef{{5, 1}, {6, 40}, {7, 41}, {9, 1 << 40}, {10, 1<<40 + 3}}
	for name, v := range map[string][]byte{"compact": appendRefs(nil, refs), "pairs": oldRefs(refs)} {
		if got := tailRefs(v); !slices.Equal(got, refs) {
			t.Errorf("%s: decoded %v, want %v", name, got, refs)
		}
	}
}

// FuzzTailRefs decodes any run or tailidx value without failing, and a value
// encoded from pairs back to them.
func FuzzTailRefs(f *testing.F) {
	f.Add(appendRefs(nil, []tailRef{{1, 7}, {2, 9}, {4, 1 << 33}}), uint64(5), uint64(1<<33+1))
	f.Add(oldRefs([]tailRef{{1, 7}, {2, 9}}), uint64(3), uint64(10))
	f.Add([]byte{compactRefs, 0x80}, uint64(1), uint64(1))
	f.Fuzz(func(t *testing.T, v []byte, seq, g uint64) {
		refs := tailRefs(v)
		// Pairs in order, as an index holds them.
		next := append(slices.Clone(refs), tailRef{seq, g})
		for i := 1; i < len(next); i++ {
			if next[i].seq < next[i-1].seq || next[i].g < next[i-1].g {
				return
			}
		}
		if got := tailRefs(appendRefs(nil, next)); !slices.Equal(got, next) {
			t.Fatalf("%v encoded and decoded: %v", next, got)
		}
	})
}

// TestTailIndexRebuiltAtOpen reopens a file whose tail holds entries of
// every kind: replies in progress (an older one holds the watermark
// back), ended turns in runs, and a deleted conversation whose id was
// created again. The index rebuilt from the tail lists the events of
// the replies in progress only.
func TestTailIndexRebuiltAtOpen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "gateway.db")
	l := openAt(t, path)
	for _, id := range []string{"old", "a", "c"} {
		create(t, l, id)
	}
	appendEvents(t, l, "old", &protocol.Event{Type: protocol.EventTurnStart, Turn: "t1"}, delta("holds the tail"))
	appendEvents(t, l, "a", &protocol.Event{Type: protocol.EventTurnStart, Turn: "t1"}, delta("one"))
	appendEvents(t, l, "a", &protocol.Event{Type: protocol.EventTurnEnd, Turn: "t1", StopReason: protocol.StopEndTurn,
		Message: &protocol.Message{ID: "r1", Role: protocol.RoleAssistant, Text: "one", Turn: "t1"}})
	appendEvents(t, l, "a", &protocol.Event{Type: protocol.EventTurnStart, Turn: "t2"}, delta("two"))
	appendEvents(t, l, "c", &protocol.Event{Type: protocol.EventTurnStart, Turn: "t1"}, delta("gone"), delta("soon"))
	if _, err := l.Delete(ctx, "c", "u1"); err != nil {
		t.Fatal(err)
	}
	create(t, l, "c")
	appendEvents(t, l, "c", &protocol.Event{Type: protocol.EventTurnStart, Turn: "t9"})
	checkTail(t, l)
	want := maps.Clone(l.tail.refs)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l = openAt(t, path)
	if got := l.tails.newest().refs; !maps.EqualFunc(got, want, slices.Equal) {
		t.Errorf("index rebuilt: %v, want %v", got, want)
	}
	if got := l.tail.refs; !maps.EqualFunc(got, want, slices.Equal) {
		t.Errorf("commit loop's index rebuilt: %v, want %v", got, want)
	}
	checkLog(t, l, "old", 2)
	checkLog(t, l, "a", 5)
	checkLog(t, l, "c", 1)
}

// updateFile changes the closed bbolt file at path with fn, as a file
// written before would have it.
func updateFile(t *testing.T, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, BoltOptions(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(fn)
	if err == nil {
		err = db.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestOpensFileWithTailIdx opens a file as an earlier gateway left it,
// with the tail's index in a tailidx bucket: the index comes from there,
// and the bucket goes.
func TestOpensFileWithTailIdx(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gateway.db")
	l := openAt(t, path)
	create(t, l, "a")
	appendEvents(t, l, "a", &protocol.Event{Type: protocol.EventTurnStart, Turn: "t1"}, delta("x"), delta("y"))
	refs := l.tail.refs["a"]
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	updateFile(t, path, func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucket(bucketTailIdx)
		if err != nil {
			return err
		}
		return bk.Put([]byte("a"), appendRefs(nil, refs))
	})

	l = openAt(t, path)
	checkLog(t, l, "a", 3)
	err := l.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketTailIdx) != nil {
			t.Error("the tailidx bucket is still there")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestReadersSeeTheirCommitsIndex reads a conversation again and again
// while turns stream into it and end (their events move out of the tail):
// every read is a gapless prefix of the log, as of its own transaction.
func TestReadersSeeTheirCommitsIndex(t *testing.T) {
	ctx := context.Background()
	l := openTest(t)
	create(t, l, "a")
	done := make(chan error, 1)
	go func() {
		store := func(ev *protocol.Event) error {
			_, err := l.Append(ctx, &convo.Append{Conversation: "a", Build: func(*convo.Meta) ([]convo.Draft, error) {
				c := *ev
				return []convo.Draft{{Event: &c}}, nil
			}})
			return err
		}
		for turn := range 40 {
			tid := fmt.Sprint("t", turn)
			evs := []*protocol.Event{{Type: protocol.EventTurnStart, Turn: tid}}
			for range 5 {
				evs = append(evs, delta("x"))
			}
			evs = append(evs, &protocol.Event{Type: protocol.EventTurnEnd, Turn: tid, StopReason: protocol.StopEndTurn,
				Message: &protocol.Message{ID: "r" + tid, Role: protocol.RoleAssistant, Text: "xxxxx", Turn: tid}})
			for _, ev := range evs {
				if err := store(ev); err != nil {
					done <- err
					return
				}
			}
		}
		done <- nil
	}()
	for reading := true; reading; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			reading = false
		default:
		}
		frames, err := l.Events(ctx, "a", 0, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for i, f := range frames {
			var ev protocol.Event
			if err := json.Unmarshal(f, &ev); err != nil {
				t.Fatal(err)
			}
			if ev.Seq != uint64(i+1) {
				t.Fatalf("event %d of a read has seq %d", i, ev.Seq)
			}
		}
	}
	checkLog(t, l, "a", 40*7)
}

// TestTailIndexSkipsMovedEntriesOfDeletedID deletes conversations whose
// ended turns' entries are still in the tail (moved out, not cut yet: an
// older reply holds the tail's head) and creates them again under the
// same id, as a client may. The index rebuilt at start-up must not take
// the deleted conversations' entries for the new ones' events.
func TestTailIndexSkipsMovedEntriesOfDeletedID(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "gateway.db")
	l := openAt(t, path)
	create(t, l, "old")
	appendEvents(t, l, "old", &protocol.Event{Type: protocol.EventTurnStart, Turn: "t1"}, delta("holds the tail"))
	for _, id := range []string{"empty", "short", "open"} {
		create(t, l, id)
		appendEvents(t, l, id, &protocol.Event{Type: protocol.EventTurnStart, Turn: "t1"}, delta("deleted "), delta("text"), delta("here"))
		appendEvents(t, l, id, turnEnd())
		if _, err := l.Delete(ctx, id, "u1"); err != nil {
			t.Fatal(err)
		}
		create(t, l, id)
	}
	// "empty" has no events; "short" one ended turn, shorter than the
	// deleted one's; "open" a turn in progress.
	appendEvents(t, l, "short", &protocol.Event{Type: protocol.EventTurnStart, Turn: "t2"})
	appendEvents(t, l, "short", turnEnd())
	appendEvents(t, l, "open", &protocol.Event{Type: protocol.EventTurnStart, Turn: "t2"})
	want := maps.Clone(l.tail.refs)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l = openAt(t, path)
	if got := l.tail.refs; !maps.EqualFunc(got, want, slices.Equal) {
		t.Errorf("index rebuilt: %v, want %v", got, want)
	}
	for id, last := range map[string]uint64{"old": 2, "empty": 0, "short": 2, "open": 1} {
		m, err := l.Meta(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		frames, err := l.Events(ctx, id, 0, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		if m.LastSeq != last || len(frames) != int(last) {
			t.Errorf("%s after reopening: last seq %d, %d events, want %d", id, m.LastSeq, len(frames), last)
		}
		for _, f := range frames {
			if strings.Contains(string(f), "deleted ") {
				t.Errorf("%s after reopening shows a deleted conversation's event %s", id, f)
			}
		}
	}
}
