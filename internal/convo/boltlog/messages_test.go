package boltlog

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

// TestOpensFileWithMessagesBucket opens a file as an earlier gateway left
// it, with a copy of every message in a messages bucket besides its event,
// and one message written with a client_msg_id. History and the
// client_msg_id's duplicate come from the events (the copies are made
// wrong here to show they are not read), a new file has no messages
// bucket, and deleting a conversation empties its part of the old one.
func TestOpensFileWithMessagesBucket(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "gateway.db")
	l := openAt(t, path)
	create(t, l, "c")
	create(t, l, "other")
	user := &protocol.Message{ID: "m1", Role: protocol.RoleUser, Text: "hello", Turn: "t1"}
	appendEvents(t, l, "c", &protocol.Event{Type: protocol.EventMessage, Message: user},
		&protocol.Event{Type: protocol.EventTurnStart, Turn: "t1"}, delta("hi "), delta("there"))
	appendEvents(t, l, "c", &protocol.Event{Type: protocol.EventTurnEnd, Turn: "t1", StopReason: protocol.StopEndTurn,
		Message: &protocol.Message{ID: "m2", Role: protocol.RoleAssistant, Text: "hi there", Turn: "t1"}})
	appendEvents(t, l, "other", &protocol.Event{Type: protocol.EventMessage, Message: user})
	if _, err := l.Append(ctx, keyedSend("c", "k1", "again")); err != nil {
		t.Fatal(err)
	}
	want, _, err := l.Messages(ctx, "c", 0, 0, 0)
	if err != nil || len(want) != 3 {
		t.Fatalf("history %v, %v; want 3 messages", want, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	// The earlier layout: a messages bucket, here with wrong copies.
	updateFile(t, path, func(tx *bolt.Tx) error {
		if tx.Bucket(bucketOldMessages) != nil {
			t.Error("a new file has a messages bucket")
		}
		old, err := tx.CreateBucket(bucketOldMessages)
		if err != nil {
			return err
		}
		// The messages' seqs: c's user message, its reply and the keyed
		// send; other's message.
		for _, k := range [][]byte{seqKey("c", 1), seqKey("c", 5), seqKey("c", 6), seqKey("other", 1)} {
			if err := old.Put(k, []byte(`{"text":"a stale copy"}`)); err != nil {
				return err
			}
		}
		return nil
	})

	l = openAt(t, path)
	got, _, err := l.Messages(ctx, "c", 0, 0, 0)
	if err != nil || !jsonEqual(t, got, want) {
		t.Errorf("history after reopening:\n%v (%v)\nwant\n%v", got, err, want)
	}
	res, err := l.Append(ctx, keyedSend("c", "k1", "again"))
	if err != nil || res.Duplicate == nil || res.Duplicate.Text != "again" {
		t.Errorf("a client_msg_id sent again: %+v, %v; want the message stored under it", res, err)
	}
	if _, err := l.Delete(ctx, "c", "u1"); err != nil {
		t.Fatal(err)
	}
	err = l.db.View(func(tx *bolt.Tx) error {
		var left []string
		_ = tx.Bucket(bucketOldMessages).ForEach(func(k, _ []byte) error {
			left = append(left, string(k[:bytes.IndexByte(k, 0)]))
			return nil
		})
		if len(left) != 1 || left[0] != "other" {
			t.Errorf("the old messages bucket holds copies of %q after the delete, want other's only", left)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func jsonEqual(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	return bytes.Equal(ja, jb)
}

// keyedSend is a user message to conversation id sent with client_msg_id
// key.
func keyedSend(id, key, text string) *convo.Append {
	return &convo.Append{Conversation: id, ClientMsgID: key, Build: func(*convo.Meta) ([]convo.Draft, error) {
		return []convo.Draft{{Event: &protocol.Event{Type: protocol.EventMessage,
			Message: &protocol.Message{ID: "m_" + key, Role: protocol.RoleUser, Text: text, Turn: "t_" + key}}}}, nil
	}}
}

// TestMessagesOfRunsAndIndex reads history while a turn is open: its
// events (a user message that started it, and one sent while it runs,
// among the deltas) are listed by the index, the turn before by a run.
// Every page, by count and by bytes, comes in seq order, and a
// client_msg_id of the open turn finds its message.
func TestMessagesOfRunsAndIndex(t *testing.T) {
	ctx := context.Background()
	l := openTest(t)
	create(t, l, "c")
	msg := func(id, role, text, turn string) *protocol.Event {
		return &protocol.Event{Type: protocol.EventMessage, Message: &protocol.Message{ID: id, Role: role, Text: text, Turn: turn}}
	}
	appendEvents(t, l, "c", msg("u1", protocol.RoleUser, "one", "t1"), &protocol.Event{Type: protocol.EventTurnStart, Turn: "t1"}, delta("a"))
	appendEvents(t, l, "c", &protocol.Event{Type: protocol.EventTurnEnd, Turn: "t1", StopReason: protocol.StopEndTurn,
		Message: &protocol.Message{ID: "a1", Role: protocol.RoleAssistant, Text: "a", Turn: "t1"}})
	appendEvents(t, l, "c", msg("u2", protocol.RoleUser, "two", "t2"), &protocol.Event{Type: protocol.EventTurnStart, Turn: "t2"}, delta("b"))
	if _, err := l.Append(ctx, keyedSend("c", "k3", "three")); err != nil {
		t.Fatal(err)
	}
	appendEvents(t, l, "c", delta("c"))
	if u := checkTail(t, l); u.inRuns != 4 || u.listed != 5 {
		t.Fatalf("%d events in runs, %d in the index, want turn t1's 4 and t2's 5", u.inRuns, u.listed)
	}

	ids := func(msgs []protocol.Message) (s []string) {
		for _, m := range msgs {
			s = append(s, m.ID)
		}
		return s
	}
	// Seqs: u1 1, turn_start 2, delta 3, turn_end (a1) 4, u2 5,
	// turn_start 6, delta 7, m_k3 8, delta 9.
	for _, c := range []struct {
		before          uint64
		limit, maxBytes int
		want            []string
		more            bool
	}{
		{0, 0, 0, []string{"u1", "a1", "u2", "m_k3"}, false},
		{0, 1, 0, []string{"m_k3"}, true},
		{0, 3, 0, []string{"a1", "u2", "m_k3"}, true},
		{8, 0, 0, []string{"u1", "a1", "u2"}, false},
		{8, 2, 0, []string{"a1", "u2"}, true},
		{5, 0, 0, []string{"u1", "a1"}, false},
		{0, 0, 1, []string{"m_k3"}, true},
	} {
		got, more, err := l.Messages(ctx, "c", c.before, c.limit, c.maxBytes)
		if err != nil || !slices.Equal(ids(got), c.want) || more != c.more {
			t.Errorf("before %d limit %d maxBytes %d: %q more %v (%v), want %q more %v",
				c.before, c.limit, c.maxBytes, ids(got), more, err, c.want, c.more)
		}
	}
	res, err := l.Append(ctx, keyedSend("c", "k3", "three again"))
	if err != nil || res.Duplicate == nil || res.Duplicate.ID != "m_k3" {
		t.Errorf("k3 sent again: %+v, %v; want the message stored under it", res, err)
	}
}
