package boltlog

import (
	"fmt"
	"testing"

	"github.com/chatgateway/gateway/protocol"
)

// turnEnd is the turn_end of turn t1.
func turnEnd() *protocol.Event {
	return &protocol.Event{Type: protocol.EventTurnEnd, Turn: "t1", StopReason: protocol.StopEndTurn,
		Message: &protocol.Message{ID: "r1", Role: protocol.RoleAssistant, Text: "done", Turn: "t1"}}
}

// TestTailCutBelowOldestListed starts replies in x, y and z in that
// order and ends them out of order: the tail is cut below the oldest
// entry still listed, past the replies that ended, and never below a
// reply in progress.
func TestTailCutBelowOldestListed(t *testing.T) {
	l := openTest(t)
	for _, id := range []string{"x", "y", "z"} {
		create(t, l, id)
		appendEvents(t, l, id, &protocol.Event{Type: protocol.EventTurnStart, Turn: "t1"}, delta(id))
	}
	steps := []struct {
		end     string
		entries int // left in the tail
	}{
		{"y", 6}, // x still holds the tail's head
		{"x", 2}, // z's entries only
		{"z", 0},
	}
	last := map[string]uint64{"x": 2, "y": 2, "z": 2}
	for _, s := range steps {
		appendEvents(t, l, s.end, turnEnd())
		last[s.end]++
		if entries, _ := tailLen(t, l); entries != s.entries {
			t.Fatalf("after %s ended: %d tail entries, want %d", s.end, entries, s.entries)
		}
		for _, id := range []string{"x", "y", "z"} {
			checkLog(t, l, id, last[id])
		}
	}
	if len(l.tail.heads) != 0 {
		t.Fatalf("heads %v left with nothing in the tail", l.tail.heads)
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
