package boltlog

import (
	"fmt"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/chatgateway/gateway/protocol"
)

// turnEnd is the turn_end of turn t1.
func turnEnd() *protocol.Event {
	return &protocol.Event{Type: protocol.EventTurnEnd, Turn: "t1", StopReason: protocol.StopEndTurn,
		Message: &protocol.Message{ID: "r1", Role: protocol.RoleAssistant, Text: "done", Turn: "t1"}}
}

// TestWatermarkBelowOldestListed starts replies in x, y and z in that
// order and ends them out of order: the watermark moves to the oldest
// entry the index still lists, past the replies that ended, and never
// past a reply in progress; a file opened again rebuilds the index from
// there.
func TestWatermarkBelowOldestListed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gateway.db")
	l := openAt(t, path)
	for _, id := range []string{"x", "y", "z"} {
		create(t, l, id)
		// Entries 1 and 2 are x's, 3 and 4 y's, 5 and 6 z's.
		appendEvents(t, l, id, &protocol.Event{Type: protocol.EventTurnStart, Turn: "t1"}, delta(id))
	}
	steps := []struct {
		end     string
		indexed uint64
	}{
		{"y", 1}, // x's turn start is the oldest listed
		{"x", 5}, // z's
		{"z", 10},
	}
	last := map[string]uint64{"x": 2, "y": 2, "z": 2}
	for _, s := range steps {
		appendEvents(t, l, s.end, turnEnd())
		last[s.end]++
		if l.tail.indexed != s.indexed {
			t.Fatalf("after %s ended: watermark %d, want %d", s.end, l.tail.indexed, s.indexed)
		}
		checkTail(t, l)
		for _, id := range []string{"x", "y", "z"} {
			checkLog(t, l, id, last[id])
		}
		if s.end == "x" {
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = openAt(t, path)
			checkTail(t, l)
		}
	}
	if len(l.tail.heads) != 0 {
		t.Fatalf("heads %v left with nothing listed", l.tail.heads)
	}
}

// TestTailIndexChain reads a conversation whose reply sits in the tail
// while commits of another go on, more than tailIndexDepth of them: the
// readers' index, the changes of each commit over the one before, finds
// its entries in an older commit's changes, then in a whole index again.
func TestTailIndexChain(t *testing.T) {
	l := openTest(t)
	create(t, l, "idle")
	create(t, l, "busy")
	appendEvents(t, l, "idle", &protocol.Event{Type: protocol.EventTurnStart, Turn: "t1"}, delta("a"), delta("b"))
	appendEvents(t, l, "busy", &protocol.Event{Type: protocol.EventTurnStart, Turn: "t1"})
	for i := range 3 * tailIndexDepth {
		appendEvents(t, l, "busy", delta(fmt.Sprint(i)))
		if d := l.tails.newest().depth; d > tailIndexDepth {
			t.Fatalf("index %d deep", d)
		}
		checkRead(t, l, "idle", 0, 0, 3, 10)
	}
	checkLog(t, l, "busy", 1+3*tailIndexDepth)
}

// TestOpenReadsTheTailFromTheWatermark opens a file with an entry below
// the watermark that no JSON decoder takes: the index is rebuilt from the
// tail's entries from the watermark on only, so the open never reads it.
func TestOpenReadsTheTailFromTheWatermark(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gateway.db")
	l := openAt(t, path)
	create(t, l, "a")
	appendEvents(t, l, "a", &protocol.Event{Type: protocol.EventTurnStart, Turn: "t1"}, delta("x"), turnEnd())
	appendEvents(t, l, "a", &protocol.Event{Type: protocol.EventTurnStart, Turn: "t2"})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	updateFile(t, path, func(tx *bolt.Tx) error { return tx.Bucket(bucketTail).Put(tailKey(0), []byte("not JSON")) })
	l = openAt(t, path)
	if l.tail.indexed != 4 || len(l.tail.refs["a"]) != 1 {
		t.Fatalf("watermark %d, a's index %v; want 4 and t2's turn start", l.tail.indexed, l.tail.refs["a"])
	}
	checkLog(t, l, "a", 4)
}
