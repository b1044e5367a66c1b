package boltlog

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
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
	if l.tail.frames.get(l.tail.refs["a"][0].g) != nil {
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
	if f := l.tail.frames; f.size != 0 || f.n != 0 {
		t.Fatalf("%d frames (%d bytes) kept after the move", f.n, f.size)
	}
}

// TestTailFramesRing applies batches of frames, moves and cuts, the ring
// wrapping and growing meanwhile: every frame of a key not moved nor cut
// is kept, exactly as stored, and no other.
func TestTailFramesRing(t *testing.T) {
	var f tailFrames
	rng := rand.New(rand.NewPCG(1, 2))
	stored := map[uint64][]byte{}
	gone := map[uint64]bool{} // moved, or cut
	next, below := uint64(1), uint64(1)
	for round := range 1000 {
		// Bursts now and then make the ring grow; the cut keeps up.
		added := make([][]byte, rng.IntN(20)+rng.IntN(2)*rng.IntN(300))
		for i := range added {
			added[i] = []byte(fmt.Sprint("frame ", next+uint64(i)))
			stored[next+uint64(i)] = added[i]
		}
		var moved []uint64
		for range rng.IntN(10) {
			if g := below + rng.Uint64N(next+uint64(len(added))-below); g < next+uint64(len(added)) {
				moved = append(moved, g)
				gone[g] = true
			}
		}
		// The cut stays within about 200 keys of the end.
		for cut := next - min(next-1, rng.Uint64N(200)); below < cut; below++ {
			gone[below] = true
		}
		f.apply(next, added, moved, below)
		next += uint64(len(added))
		size := 0
		for g := max(below, 30) - 30; g < next+5; g++ {
			got, want := f.get(g), stored[g]
			if gone[g] || g < below {
				want = nil
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("round %d: key %d: %q, want %q", round, g, got, want)
			}
			size += len(got)
		}
		if size != f.size {
			t.Fatalf("round %d: %d bytes kept, counted %d", round, f.size, size)
		}
	}
	if len(f.ring) > 1024 {
		t.Errorf("ring of %d for at most %d entries", len(f.ring), 200+19+299)
	}
}
