package boltlog

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/chatgateway/gateway/protocol"
)

// TestDeleteFrom deletes a run of keys from a bucket whose leaf the
// transaction has written already (its node is in memory, where a
// cursor's Next after a Delete skips a key) and from one it has not; in
// one leaf, and across many leaves, which the deletes empty one after
// another while the run goes on.
func TestDeleteFrom(t *testing.T) {
	for _, n := range []int{20, 3000} {
		for _, written := range []bool{true, false} {
			t.Run(fmt.Sprintf("keys=%d/written=%v", n, written), func(t *testing.T) {
				testDeleteFrom(t, n, written)
			})
		}
	}
}

// testDeleteFrom fills a bucket with n keys and deletes all but the
// first and last five.
func testDeleteFrom(t *testing.T, n int, written bool) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	key := func(i int) []byte { return []byte(fmt.Sprintf("k%04d", i)) }
	val := make([]byte, 100)
	fill := func(tx *bolt.Tx) error {
		bk, err := tx.CreateBucketIfNotExists([]byte("b"))
		for i := range n {
			if err == nil {
				err = bk.Put(key(i), val)
			}
		}
		return err
	}
	if !written {
		if err := db.Update(fill); err != nil {
			t.Fatal(err)
		}
	}
	var left []string
	err = db.Update(func(tx *bolt.Tx) error {
		if written {
			if err := fill(tx); err != nil {
				return err
			}
		}
		bk := tx.Bucket([]byte("b"))
		if err := deleteFrom(bk, key(5), func(k []byte) bool { return string(k) < string(key(n-5)) }); err != nil {
			return err
		}
		return bk.ForEach(func(k, _ []byte) error { left = append(left, string(k)); return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, i := range []int{0, 1, 2, 3, 4, n - 5, n - 4, n - 3, n - 2, n - 1} {
		want = append(want, string(key(i)))
	}
	if !slices.Equal(left, want) {
		t.Fatalf("%d keys left, want %v", len(left), want)
	}
}

// TestMessageOf reads the message of frames as the log stores them: the
// message of message and turn_end events, and nothing from others, even
// where they have a message key.
func TestMessageOf(t *testing.T) {
	ts := time.Date(2026, 12, 4, 16, 0, 0, 0, time.UTC)
	user := &protocol.Message{ID: "m1", Role: protocol.RoleUser, Text: `a "quoted" <question>`, Turn: "t1", Seq: 4, CreatedAt: ts}
	reply := &protocol.Message{ID: "m2", Role: protocol.RoleAssistant, Text: "an answer\n", Turn: "t1", Seq: 9, CreatedAt: ts}
	progress := "50% done"
	for _, tc := range []struct {
		name string
		ev   *protocol.Event
		want *protocol.Message
	}{
		{"message", &protocol.Event{Type: protocol.EventMessage, Message: user}, user},
		{"turn_end", &protocol.Event{Type: protocol.EventTurnEnd, Turn: "t1", StopReason: protocol.StopEndTurn,
			Usage: &protocol.Usage{InputTokens: 3}, Message: reply}, reply},
		{"turn_end without a message", &protocol.Event{Type: protocol.EventTurnEnd, Turn: "t1"}, nil},
		{"delta", &protocol.Event{Type: protocol.EventDelta, Turn: "t1", Text: `"message":{`}, nil},
		{"tool_progress", &protocol.Event{Type: protocol.EventToolProgress, Call: "c1", ProgressMessage: progress}, nil},
		// Its message key holds a string, and another one an object.
		{"tool_progress with a message key in its output", &protocol.Event{Type: protocol.EventToolProgress, Call: "c1",
			ProgressMessage: progress, Output: json.RawMessage(`{"message":{"role":"user"}}`)}, nil},
		{"action with a message key in its input", &protocol.Event{Type: protocol.EventAction, Turn: "t1", Name: "tool",
			Input: json.RawMessage(`{"message":{"role":"user"}}`)}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.ev.Conversation, tc.ev.Seq, tc.ev.TS = "c", 9, ts
			frame, err := tc.ev.MarshalJSON()
			if err != nil {
				t.Fatal(err)
			}
			got, err := messageOf(frame)
			if err != nil {
				t.Fatalf("%s: %v", frame, err)
			}
			if (got == nil) != (tc.want == nil) || got != nil && *got != *tc.want {
				t.Fatalf("%s: message %+v, want %+v", frame, got, tc.want)
			}
		})
	}
}
