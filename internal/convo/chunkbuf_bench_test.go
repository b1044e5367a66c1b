package convo

import "testing"

// BenchmarkChunkBuffer is one reply's text through a chunk buffer as a
// busy gateway sees it: 20 chunks, a commit taking what came (peek, stored)
// after every second one.
func BenchmarkChunkBuffer(b *testing.B) {
	chunk := Chunk{Kind: ChunkText, Text: "@1733300000000000000#000001"}
	b.ReportAllocs()
	for b.Loop() {
		buf := newChunkBuffer(nil, "c1", "t1", MaxReplyBytes, nil, nil)
		for i := range 20 {
			buf.emit(chunk)
			if i%2 == 1 {
				buf.stored(buf.peek(), nil)
			}
		}
	}
}
