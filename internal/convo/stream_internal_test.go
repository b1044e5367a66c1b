package convo

import (
	"slices"
	"testing"

	"github.com/chatgateway/gateway/protocol"
)

// TestChunkBufferKeepsWhatAPeekHandedOut checks the buffer's contract
// with an append that takes its events at commit time: a peek's events
// stay until dropped, a chunk that comes after the peek makes an event of
// its own instead of growing one handed out (it would be dropped unstored),
// and a second peek (a Build run again) hands out the later chunks too.
func TestChunkBufferKeepsWhatAPeekHandedOut(t *testing.T) {
	b := newChunkBuffer(nil, "c1", "t1", nil)
	b.emit(Chunk{Kind: ChunkText, Text: "a"})
	b.emit(Chunk{Kind: ChunkText, Text: "b"})
	first := b.peek()
	b.emit(Chunk{Kind: ChunkText, Text: "c"})
	second := b.peek()
	b.emit(Chunk{Kind: ChunkText, Text: "d"})
	b.stored(first, nil)
	left := b.peek()

	texts := func(evs []chunkEvent) (s []string) {
		for _, ce := range evs {
			if ce.ev.Type != protocol.EventDelta {
				t.Errorf("event of type %s, want delta", ce.ev.Type)
			}
			s = append(s, ce.ev.Text)
		}
		return s
	}
	for _, c := range []struct {
		name string
		got  []chunkEvent
		want []string
	}{
		{"first peek", first, []string{"ab"}},
		{"second peek", second, []string{"ab", "c"}},
		{"after dropping the first", left, []string{"c", "d"}},
	} {
		if got := texts(c.got); !slices.Equal(got, c.want) {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
	b.stored(left, nil)
	if len(b.peek()) > 0 {
		t.Error("events pending after all were dropped")
	}
}
