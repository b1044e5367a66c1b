package boltlog

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

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
	db, err := bolt.Open(path, 0o600, BoltOptions(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketOldMessages) != nil {
			t.Error("a new file has a messages bucket")
		}
		old, err := tx.CreateBucket(bucketOldMessages)
		if err != nil {
			return err
		}
		for _, id := range []string{"c", "other"} {
			c := tx.Bucket(bucketEvents).Cursor()
			for k, v := c.Seek(prefix(id)); k != nil && bytes.HasPrefix(k, prefix(id)); k, v = c.Next() {
				if m, err := messageOf(v); err != nil || m == nil {
					continue
				}
				if err := old.Put(bytes.Clone(k), []byte(`{"text":"a stale copy"}`)); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	l = openAt(t, path)
	got, _, err := l.Messages(ctx, "c", 0, 0, 0)
	if err != nil || !jsonEqual(t, got, want) {
		t.Errorf("history after reopening:\n%v (%v)\nwant\n%v", got, err, want)
	}
	res, err := l.Append(ctx, keyedSend("c", "k1", "again"))
	if err != nil || res.Duplicate == nil || res.Duplicate.Text != "again" {
		t.Errorf("a client_msg_id sent again: %+v, %v; want the message stored under it", res, err)
	}
	if err := l.Delete(ctx, "c", "u1"); err != nil {
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
