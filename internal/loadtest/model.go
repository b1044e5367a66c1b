package loadtest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

// A stamp opens every chunk the model emits: '@', the chunk's creation time
// in Unix nanoseconds (19 digits), '#', the chunk's index in its turn (6
// digits). The rest of the chunk is padding that holds no '@', so a client
// finds every stamp of a delta even when the gateway coalesced several
// chunks into it.
const (
	stampMark     = '@'
	stampTimeLen  = 19
	stampIndexLen = 6
	// MinChunkBytes is the smallest chunk the model emits: one stamp.
	MinChunkBytes = 1 + stampTimeLen + 1 + stampIndexLen
)

// stampModel is a convo.Model that streams chunks text chunks of size
// bytes each, waiting delay between two chunks, each opening with a stamp.
type stampModel struct {
	chunks int
	size   int
	delay  time.Duration
}

var _ convo.Model = (*stampModel)(nil)

func newStampModel(chunks, size int, delay time.Duration) *stampModel {
	return &stampModel{chunks: chunks, size: max(size, MinChunkBytes), delay: delay}
}

// Stream implements convo.Model. A done ctx ends it with an error wrapping
// ctx.Err().
func (m *stampModel) Stream(ctx context.Context, _ convo.ModelRequest, emit func(convo.Chunk)) (convo.Result, error) {
	pad := strings.Repeat(".", m.size-MinChunkBytes)
	var timer *time.Timer
	for i := range m.chunks {
		if i > 0 && m.delay > 0 {
			if timer == nil {
				timer = time.NewTimer(m.delay)
				defer timer.Stop()
			} else {
				timer.Reset(m.delay)
			}
			select {
			case <-timer.C:
			case <-ctx.Done():
				return convo.Result{}, fmt.Errorf("loadtest model: %w", ctx.Err())
			}
		}
		emit(convo.Chunk{Kind: convo.ChunkText, Text: stamp(time.Now(), i) + pad})
	}
	return convo.Result{
		StopReason: protocol.StopEndTurn,
		Usage:      protocol.Usage{InputTokens: 1, OutputTokens: int64(m.chunks)},
	}, nil
}

// stamp formats the stamp of chunk index created at t.
func stamp(t time.Time, index int) string {
	return fmt.Sprintf("%c%0*d#%0*d", stampMark, stampTimeLen, t.UnixNano(), stampIndexLen, index)
}

// chunkStamp is a parsed stamp.
type chunkStamp struct {
	created time.Time
	index   int
}

// parseStamps returns the stamps in a delta's text, in order; text that is
// not the stamp model's (a remote gateway's own model) yields none.
func parseStamps(text string) []chunkStamp {
	var out []chunkStamp
	for {
		i := strings.IndexByte(text, stampMark)
		if i < 0 || len(text)-i < MinChunkBytes {
			return out
		}
		s := text[i : i+MinChunkBytes]
		text = text[i+1:]
		ns, err1 := strconv.ParseInt(s[1:1+stampTimeLen], 10, 64)
		idx, err2 := strconv.Atoi(s[2+stampTimeLen:])
		if err1 != nil || err2 != nil || s[1+stampTimeLen] != '#' {
			continue
		}
		out = append(out, chunkStamp{created: time.Unix(0, ns), index: idx})
	}
}
