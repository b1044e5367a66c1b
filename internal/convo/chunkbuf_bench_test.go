package convo

import (
	"fmt"
	"testing"
)

// BenchmarkChunkBuffer is one reply's text through a chunk buffer as a
// busy gateway sees it: 24 chunks, a commit taking what came (peek,
// stored) after every perCommit of them, so that each event merges that
// many chunks.
func BenchmarkChunkBuffer(b *testing.B) {
	chunk := Chunk{Kind: ChunkText, Text: "@1733300000000000000#000001"}
	for _, perCommit := range []int{1, 2, 3} {
		b.Run(fmt.Sprint("chunks=", perCommit), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				buf := newChunkBuffer(nil, "c1", "t1", MaxReplyBytes, nil, nil)
				for i := range 24 {
					buf.emit(chunk)
					if i%perCommit == perCommit-1 {
						buf.stored(len(buf.peek()), nil)
					}
				}
			}
		})
	}
}
