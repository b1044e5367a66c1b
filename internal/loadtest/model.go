package loadtest

import (
	"container/heap"
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
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
// With a delay, one goroutine (its pacer) emits the later chunks of every
// reply in flight, instead of a timer and a wake-up of each reply's own
// goroutine per chunk: at 1,000 streams that was a tenth of the process's
// CPU, taken from the gateway it measures (docs/PERFORMANCE.md).
type stampModel struct {
	chunks int
	size   int
	delay  time.Duration
	pad    string
	pacer  pacer
}

var _ convo.Model = (*stampModel)(nil)

func newStampModel(chunks, size int, delay time.Duration) *stampModel {
	size = max(size, MinChunkBytes)
	return &stampModel{chunks: chunks, size: size, delay: delay, pad: strings.Repeat(".", size-MinChunkBytes)}
}

// Stream implements convo.Model. A done ctx ends it with an error wrapping
// ctx.Err().
func (m *stampModel) Stream(ctx context.Context, _ convo.ModelRequest, emit func(convo.Chunk)) (convo.Result, error) {
	res := convo.Result{
		StopReason: protocol.StopEndTurn,
		Usage:      protocol.Usage{InputTokens: 1, OutputTokens: int64(m.chunks)},
	}
	if m.delay <= 0 || m.chunks <= 1 {
		// Nothing to wait for.
		for i := range m.chunks {
			emit(m.chunk(i))
		}
		return res, nil
	}
	emit(m.chunk(0))
	r := &pacedReply{emit: emit, next: 1, due: time.Now().Add(m.delay), done: make(chan struct{})}
	m.pacer.add(m, r)
	select {
	case <-r.done:
		return res, nil
	case <-ctx.Done():
		m.pacer.drop(r)
		return convo.Result{}, fmt.Errorf("loadtest model: %w", ctx.Err())
	}
}

// chunk returns chunk i of a reply, stamped now.
func (m *stampModel) chunk(i int) convo.Chunk {
	return convo.Chunk{Kind: convo.ChunkText, Text: stamp(time.Now(), i) + m.pad}
}

// pacer emits the chunks of the replies in flight when they are due, from
// one goroutine that runs while there are any, waking at most once a
// millisecond. A chunk's stamp is the time it is emitted, so the latencies
// measured do not depend on how late it is.
type pacer struct {
	mu      sync.Mutex
	replies replyHeap
	running bool
}

// pacedReply is one reply in flight.
type pacedReply struct {
	emit func(convo.Chunk)
	// next is the index of the next chunk, due at due; gone says the
	// reply was dropped (it is skipped when due).
	next int
	due  time.Time
	gone bool
	done chan struct{} // closed after the last chunk
}

// add schedules r, whose next chunk is due after every other reply's (it
// is one delay away), so the pacer never needs waking early.
func (p *pacer) add(m *stampModel, r *pacedReply) {
	p.mu.Lock()
	defer p.mu.Unlock()
	heap.Push(&p.replies, r)
	if !p.running {
		p.running = true
		go p.run(m)
	}
}

// drop stops r: no chunk of it is emitted once drop returns.
func (p *pacer) drop(r *pacedReply) {
	p.mu.Lock()
	r.gone = true
	p.mu.Unlock()
}

// run emits every chunk that is due, then sleeps until the next one, until
// no reply is left. It emits with p.mu held, so that drop waits for an
// emit in progress.
func (p *pacer) run(m *stampModel) {
	for {
		p.mu.Lock()
		now := time.Now()
		for len(p.replies) > 0 && !p.replies[0].due.After(now) {
			r := p.replies[0]
			if r.gone {
				heap.Pop(&p.replies)
				continue
			}
			r.emit(m.chunk(r.next))
			r.next++
			if r.next == m.chunks {
				heap.Pop(&p.replies)
				close(r.done)
				continue
			}
			// The delay counts from this chunk, as a model's own timer would.
			r.due = now.Add(m.delay)
			heap.Fix(&p.replies, 0)
		}
		if len(p.replies) == 0 {
			p.running = false
			p.mu.Unlock()
			return
		}
		wait := time.Until(p.replies[0].due)
		p.mu.Unlock()
		time.Sleep(max(wait, time.Millisecond))
	}
}

// replyHeap orders replies by when their next chunk is due.
type replyHeap []*pacedReply

func (h replyHeap) Len() int           { return len(h) }
func (h replyHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h replyHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *replyHeap) Push(x any)        { *h = append(*h, x.(*pacedReply)) }
func (h *replyHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return r
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
