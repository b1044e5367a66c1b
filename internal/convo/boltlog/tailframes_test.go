package boltlog

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/chatgateway/gateway/protocol"
)

// TestTailFramesBound streams a reply whose frames pass tailFramesMax:
// the commit loop keeps only the newest in memory, the reply moves out
// whole (its oldest frames read from the tail, the others from memory),
// and once it has moved no frame is kept.
func TestTailFramesBound(t *testing.T) {
	l := openTest(t)
	create(t, l, "a")
	appendEvents(t, l, "a", &protocol.Event{Type: protocol.EventTurnStart, Turn: "t1"})
	text := strings.Repeat("x", 1<<20)
	const deltas = tailFramesMax>>20 + 4
	for i := range deltas {
		appendEvents(t, l, "a", delta(fmt.Sprint(i, text)))
		if f := l.tail.frames; f.size > tailFramesMax || f.get(l.tail.next-1) == nil {
			t.Fatalf("after delta %d: %d bytes of frames kept, the newest kept: %v", i, f.size, f.get(l.tail.next-1) != nil)
		}
	}
	if l.tail.frames.get(l.tail.first["a"]) != nil {
		t.Fatal("the oldest frame is still kept")
	}
	appendEvents(t, l, "a", &protocol.Event{Type: protocol.EventTurnEnd, Turn: "t1"})
	frames, err := l.Events(context.Background(), "a", 0, 0, deltas+2)
	if err != nil || len(frames) != deltas+2 {
		t.Fatalf("%d events, %v; want %d", len(frames), err, deltas+2)
	}
	for i, f := range frames[1 : deltas+1] {
		var ev protocol.Event
		if err := json.Unmarshal(f, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Seq != uint64(i+2) || !strings.HasPrefix(ev.Text, fmt.Sprint(i, "x")) {
			t.Fatalf("event %d: seq %d, text %.10q…", i+2, ev.Seq, ev.Text)
		}
	}
	if f := l.tail.frames; f.size != 0 || len(f.frames) != 0 {
		t.Fatalf("%d frames (%d bytes) kept after the move", len(f.frames), f.size)
	}
}
