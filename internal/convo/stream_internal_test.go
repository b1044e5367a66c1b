package convo

import (
	"encoding/json"
	"math"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatgateway/gateway/protocol"
)

// TestChunkBufferKeepsWhatAPeekHandedOut checks the buffer's contract
// with an append that takes its events at commit time: a peek's events
// stay until dropped, a chunk that comes after the peek makes an event of
// its own instead of growing one handed out (it would be dropped unstored),
// a second peek (a Build run again) hands out the later chunks too, and
// the text of the deltas stored is theirs, in order.
func TestChunkBufferKeepsWhatAPeekHandedOut(t *testing.T) {
	b := newChunkBuffer(nil, "c1", "t1", MaxReplyBytes, nil, nil)
	// texts returns the texts of a peek's events, which the next peek
	// makes again in place.
	texts := func(drafts []Draft) (s []string) {
		for _, d := range drafts {
			if d.Event.Type != protocol.EventDelta {
				t.Errorf("event of type %s, want delta", d.Event.Type)
			}
			s = append(s, d.Event.Text)
		}
		return s
	}
	b.emit(Chunk{Kind: ChunkText, Text: "a"})
	b.emit(Chunk{Kind: ChunkText, Text: "b"})
	first := b.peek()
	firstTexts := texts(first)
	b.emit(Chunk{Kind: ChunkText, Text: "c"})
	second := texts(b.peek())
	b.emit(Chunk{Kind: ChunkText, Text: "d"})
	b.stored(len(first), nil)
	left := b.peek()
	leftTexts := texts(left)

	for _, c := range []struct {
		name      string
		got, want []string
	}{
		{"first peek", firstTexts, []string{"ab"}},
		{"second peek", second, []string{"ab", "c"}},
		{"after dropping the first", leftTexts, []string{"c", "d"}},
	} {
		if !slices.Equal(c.got, c.want) {
			t.Errorf("%s: %q, want %q", c.name, c.got, c.want)
		}
	}
	b.stored(len(left), nil)
	if len(b.peek()) > 0 {
		t.Error("events pending after all were dropped")
	}
	if text, _ := b.flush(); text != "abcd" {
		t.Errorf("the deltas stored hold %q, want %q", text, "abcd")
	}
}

// TestChunkBufferFillsUp checks the reply's room: a text chunk that does
// not fit is cut between two characters (a character that JSON escapes
// counts six bytes), full is told once, and nothing the model sends
// after it is kept, neither text nor thinking. Each case sends "more"
// after its chunks, which never fits.
func TestChunkBufferFillsUp(t *testing.T) {
	for _, tt := range []struct {
		name   string
		room   int
		chunks []string
		want   string
	}{
		{"fits exactly", 4, []string{"ab", "cd"}, "abcd"},
		{"cut in a chunk", 5, []string{"abc", "defg"}, "abcde"},
		{"escaped character", 7, []string{"ab<c"}, "ab"},
		{"escaped character fits", 8, []string{"a<b"}, "a<b"},
		{"between the bytes of a character", 3, []string{"aé"}, "aé"},
		{"not inside a character", 2, []string{"aé"}, "a"},
		{"not inside a four-byte character", 8, []string{"a😀😀"}, "a😀"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fulls := 0
			b := newChunkBuffer(nil, "c1", "t1", tt.room, nil, func() { fulls++ })
			for _, c := range tt.chunks {
				b.emit(Chunk{Kind: ChunkText, Text: c})
			}
			b.emit(Chunk{Kind: ChunkText, Text: "more"})
			b.emit(Chunk{Kind: ChunkThinking, Text: "more"})
			var got string
			for _, d := range b.peek() {
				if d.Event.Type != protocol.EventDelta {
					t.Fatalf("an event of type %s after the reply filled up", d.Event.Type)
				}
				got += d.Event.Text
			}
			if got != tt.want || fulls != 1 {
				t.Fatalf("kept %q, told full %d times; want %q, once", got, fulls, tt.want)
			}
		})
	}
}

// TestChunkBufferCountsReasoning checks that thinking shares the reply's
// room: reasoning takes its bytes as its events encode it, and the text
// after it is cut where the two together reach the room.
func TestChunkBufferCountsReasoning(t *testing.T) {
	fulls := 0
	b := newChunkBuffer(nil, "c1", "t1", 10, nil, func() { fulls++ })
	b.emit(Chunk{Kind: ChunkThinking, Text: "a<b"}) // 8 bytes
	b.emit(Chunk{Kind: ChunkText, Text: "cde"})
	b.emit(Chunk{Kind: ChunkThinking, Text: "more"})
	var got []string
	for _, d := range b.peek() {
		got = append(got, d.Event.Type+" "+d.Event.Text)
	}
	if want := []string{"thinking a<b", "delta cd"}; !slices.Equal(got, want) || fulls != 1 {
		t.Fatalf("kept %q, told full %d times; want %q, once", got, fulls, want)
	}
}

// TestChunkBufferCountsActions checks that actions share the reply's
// room, as their events take it: an action that does not fit is dropped
// whole (it cannot be cut), full is told once, and nothing the model
// sends after it is kept.
func TestChunkBufferCountsActions(t *testing.T) {
	action := Chunk{Kind: ChunkAction, Name: "echo", Input: json.RawMessage(`"<b>"`), Output: json.RawMessage(`{}`)}
	fulls := 0
	// Each takes 21 bytes besides the event's overhead: its name, and its
	// input and output as encoding/json escapes them.
	b := newChunkBuffer(nil, "c1", "t1", 2*21+10, nil, func() { fulls++ })
	for range 3 {
		b.emit(action)
	}
	b.emit(Chunk{Kind: ChunkText, Text: "more"})
	var got []string
	for _, d := range b.peek() {
		frame, err := json.Marshal(d.Event)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(frame), `"input":"\u003cb\u003e"`) {
			t.Errorf("the action's frame %s does not escape its input", frame)
		}
		got = append(got, d.Event.Type)
	}
	if want := []string{protocol.EventAction, protocol.EventAction}; !slices.Equal(got, want) || fulls != 1 {
		t.Fatalf("kept %q, told full %d times; want %q, once", got, fulls, want)
	}
}

// TestRawLen checks that rawLen counts the bytes a JSON value takes in an
// event as encoding/json encodes it: exactly for a value without
// whitespace between its tokens, at least for one with.
func TestRawLen(t *testing.T) {
	for _, tt := range []struct{ name, in string }{
		{"plain", `{"a":[1,2,"b"]}`},
		{"escaped by encoding/json", `{"a":"<b>&</b>"}`},
		{"line and paragraph separators", "\"a\u2028b\u2029\""},
		{"escapes kept", `"\u003c\n\""`},
		{"invalid UTF-8, kept", "\"\xff\xfe\""},
		{"not JSON, quoted", "<b>\xff\u2028"},
		{"whitespace, dropped", " { \"a\" : [ 1 , 2 ] } "},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := validJSON([]byte(tt.in))
			frame, err := json.Marshal(&protocol.Event{Type: protocol.EventAction, Input: v})
			if err != nil {
				t.Fatal(err)
			}
			without, err := json.Marshal(&protocol.Event{Type: protocol.EventAction, Input: json.RawMessage(`0`)})
			if err != nil {
				t.Fatal(err)
			}
			want := len(frame) - len(without) + 1
			got := rawLen(v)
			if got < want || got > want && !strings.Contains(tt.in, " ") {
				t.Fatalf("rawLen(%s) = %d, the value takes %d bytes in %s", v, got, want, frame)
			}
		})
	}
}

// TestChunkBufferBoundsAnAppend checks that one append takes no more
// than a turn_end holds, MaxReplyBytes, in its frames (the longest
// conversation id and seq included), also for a model that alternates
// thinking and text, each change an event of its own, while a commit is
// in flight: the rest waits for the next appends, which store every
// chunk, in order.
func TestChunkBufferBoundsAnAppend(t *testing.T) {
	b := newChunkBuffer(nil, "c1", "t_0123456789abcdef", MaxReplyBytes, nil, nil)
	var want strings.Builder
	for i := range 20000 {
		kind, text := ChunkThinking, "a"
		if i%2 == 1 {
			kind, text = ChunkText, "b"
		}
		b.emit(Chunk{Kind: kind, Text: text})
		want.WriteString(text)
	}
	var got strings.Builder
	for appends := 0; ; appends++ {
		evs := b.peek()
		if len(evs) == 0 {
			if appends < 2 {
				t.Errorf("%d appends, want the chunks split among several", appends)
			}
			break
		}
		size := 0
		for _, d := range evs {
			ev := *d.Event
			ev.Conversation, ev.Seq, ev.TS = strings.Repeat("c", protocol.MaxConversationIDLen), math.MaxUint64, time.Now()
			frame, err := json.Marshal(&ev)
			if err != nil {
				t.Fatal(err)
			}
			size += len(frame) + 1 // and a comma
			got.WriteString(ev.Text)
		}
		if size > MaxReplyBytes {
			t.Fatalf("an append of %d events takes %d bytes, more than %d", len(evs), size, MaxReplyBytes)
		}
		b.stored(len(evs), nil)
	}
	if got.String() != want.String() {
		t.Fatal("the appends do not hold the chunks' text in order")
	}
}

// TestChunkBufferChunkAllocatesNothing checks that a chunk, buffered,
// handed out and stored as a busy gateway's are, allocates nothing of its
// own once the buffer has grown to the reply (but for the text's
// builder, whose capacity doubles): its event, its draft and the room
// for it are the buffer's, used again.
func TestChunkBufferChunkAllocatesNothing(t *testing.T) {
	b := newChunkBuffer(nil, "c1", "t1", MaxReplyBytes, nil, nil)
	chunk := Chunk{Kind: ChunkText, Text: "@1733300000000000000#000001"}
	commit := func() {
		b.emit(chunk)
		b.stored(len(b.peek()), nil)
	}
	commit()
	if n := testing.AllocsPerRun(1000, commit); n > 0 {
		t.Fatalf("%v allocations a chunk, want none", n)
	}
}

// TestChunkBufferMergesInLinearTime checks that merging many small chunks
// into one event, as a slow commit makes the buffer do, allocates about
// their length, not the square of it: each merge must not copy the text
// merged so far.
func TestChunkBufferMergesInLinearTime(t *testing.T) {
	const chunks, size = 10000, 8
	chunk := Chunk{Kind: ChunkText, Text: strings.Repeat("x", size)}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b := newChunkBuffer(nil, "c1", "t1", MaxReplyBytes, nil, nil)
	for range chunks {
		b.emit(chunk)
	}
	evs := b.peek()
	runtime.ReadMemStats(&after)
	if len(evs) != 1 || len(evs[0].Event.Text) != chunks*size {
		t.Fatalf("%d events, want one of %d bytes", len(evs), chunks*size)
	}
	// Copying the text merged so far at each merge would allocate
	// chunks*chunks*size/2 bytes, 400 MB.
	if got, limit := after.TotalAlloc-before.TotalAlloc, uint64(8*chunks*size); got > limit {
		t.Fatalf("merging %d chunks of %d bytes allocated %d bytes, want at most %d", chunks, size, got, limit)
	}
}
