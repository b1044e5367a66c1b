package boltlog

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

// storedMeta returns conversation id's metadata as its stored copy holds
// it, without the events since.
func storedMeta(t *testing.T, l *Log, id string) *convo.Meta {
	t.Helper()
	var m convo.Meta
	err := l.db.View(func(tx *bolt.Tx) error {
		return json.Unmarshal(tx.Bucket(bucketMeta).Get([]byte(id)), &m)
	})
	if err != nil {
		t.Fatal(err)
	}
	return &m
}

// TestMetadataFromCheckpointAndEvents runs turns without their metadata
// being written at each, then opens the file again: the metadata read
// back (open turn with a tool call, a pending message, title, last seq,
// times) is the stored copy with the events since applied, as it was
// before. Once metaEvery events followed the stored copy, the next
// change writes it again.
func TestMetadataFromCheckpointAndEvents(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "gateway.db")
	l := openAt(t, path)
	create(t, l, "c")
	user := func(turn, text string) *protocol.Event {
		return &protocol.Event{Type: protocol.EventMessage, Message: &protocol.Message{ID: "m_" + turn, Role: protocol.RoleUser, Text: text, Turn: turn}}
	}
	for _, turn := range []string{"t1", "t2", "t3"} {
		appendEvents(t, l, "c", user(turn, "question "+turn), &protocol.Event{Type: protocol.EventTurnStart, Turn: turn})
		appendEvents(t, l, "c", delta("a "), delta("reply"))
		appendEvents(t, l, "c", &protocol.Event{Type: protocol.EventTurnEnd, Turn: turn, StopReason: protocol.StopEndTurn,
			Message: &protocol.Message{ID: "r_" + turn, Role: protocol.RoleAssistant, Text: "a reply", Turn: turn}})
	}
	appendEvents(t, l, "c", user("t4", "question t4"), &protocol.Event{Type: protocol.EventTurnStart, Turn: "t4"}, delta("let me look"),
		&protocol.Event{Type: protocol.EventToolCall, Turn: "t4", Call: "call1", Name: "lookup", Status: protocol.CallRunning, Step: 1})
	appendEvents(t, l, "c", user("t5", "and then?"))

	want, err := l.Meta(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	if want.OpenTurn == nil || want.OpenTurn.Turn != "t4" || len(want.OpenTurn.Calls) != 1 || len(want.Pending) != 1 || want.Title != "question t1" {
		t.Fatalf("metadata before reopening: %+v", want)
	}
	if s := storedMeta(t, l, "c"); s.LastSeq >= want.LastSeq {
		t.Errorf("stored metadata written at seq %d of %d: every change wrote it", s.LastSeq, want.LastSeq)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l = openAt(t, path)
	got, err := l.Meta(ctx, "c")
	if err != nil || !jsonEqual(t, got, want) {
		t.Errorf("metadata after reopening:\n%+v (%v)\nwant\n%+v", got, err, want)
	}
	unfinished, err := l.Unfinished(ctx)
	if err != nil || len(unfinished) != 1 || !jsonEqual(t, unfinished[0], want) {
		t.Errorf("unfinished after reopening: %+v (%v), want c as before", unfinished, err)
	}
	list, _, err := l.List(ctx, "u1", convo.ListCursor{}, 10, 0)
	if err != nil || len(list) != 1 || !jsonEqual(t, list[0], want.Conversation) {
		t.Errorf("list after reopening: %+v (%v), want c as before", list, err)
	}

	// metaEvery events on, a change writes the metadata again.
	deltas := make([]*protocol.Event, metaEvery)
	for i := range deltas {
		deltas[i] = delta("x")
	}
	appendEvents(t, l, "c", deltas...)
	appendEvents(t, l, "c", user("t6", "one more"))
	now, err := l.Meta(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	if s := storedMeta(t, l, "c"); s.LastSeq != now.LastSeq || len(s.Pending) != 2 {
		t.Errorf("stored metadata at seq %d with %d pending, want seq %d with 2", s.LastSeq, len(s.Pending), now.LastSeq)
	}
}

// TestMetadataTimeOfAStreamingReply opens the file again while a reply
// streams: the metadata read back has the update time of the reply's
// last delta, as before, not of the turn's start, so that a list's
// order and cursors do not change with a restart or the cache.
func TestMetadataTimeOfAStreamingReply(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "gateway.db")
	l := openAt(t, path)
	clock := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	// Set before the first append: the commit loop reads it from then on.
	l.now = func() time.Time {
		clock = clock.Add(time.Second)
		return clock
	}
	create(t, l, "c")
	appendEvents(t, l, "c", &protocol.Event{Type: protocol.EventTurnStart, Turn: "t1"})
	appendEvents(t, l, "c", delta("streaming"))
	appendEvents(t, l, "c", delta(" on"))
	want, err := l.Meta(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l = openAt(t, path)
	got, err := l.Meta(ctx, "c")
	if err != nil || !got.UpdatedAt.Equal(want.UpdatedAt) || got.LastSeq != want.LastSeq {
		t.Errorf("after reopening: updated at %v, last seq %d (%v); want %v, %d", got.UpdatedAt, got.LastSeq, err, want.UpdatedAt, want.LastSeq)
	}
	list, _, err := l.List(ctx, "u1", convo.ListCursor{}, 10, 0)
	if err != nil || len(list) != 1 || !list[0].UpdatedAt.Equal(want.UpdatedAt) {
		t.Errorf("list after reopening: %+v (%v), want c updated at %v", list, err, want.UpdatedAt)
	}
}
