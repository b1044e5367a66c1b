package conn_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/chatgateway/gateway/internal/auth"
	"github.com/chatgateway/gateway/internal/conn"
	"github.com/chatgateway/gateway/internal/conn/conntest"
	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/metrics"
	"github.com/chatgateway/gateway/protocol"
)

// timedFrame is a frame with when it arrived.
type timedFrame struct {
	protocol.ServerFrame
	at time.Time
}

// readTurn reads c until a turn_end, noting when each frame arrived and
// telling p about each delta.
func readTurn(c *conntest.Client, p *pacer) ([]timedFrame, error) {
	var frames []timedFrame
	for {
		f, err := c.ReadErr()
		if err != nil {
			return frames, err
		}
		frames = append(frames, timedFrame{f, time.Now()})
		switch f.Type {
		case protocol.EventDelta:
			p.saw()
		case protocol.EventTurnEnd:
			return frames, nil
		}
	}
}

// pacer is a model that emits each word of its reply only once every
// reader has seen the delta of the word before, so that no reader falls
// behind however the machine shares its CPU among them: only a client
// that stops reading fills its queue. Each delta then carries one word
// (the next is emitted once the previous is stored and delivered).
type pacer struct {
	replies []string // the reply of each turn, in turn
	readers int
	next    chan struct{} // a token per word after the first
	// passed is closed once the first turn has emitted passAt words.
	passAt int
	passed chan struct{}

	mu    sync.Mutex
	seen  int // readers that saw the latest delta
	turns int
}

func newPacer(readers, passAt int, replies ...string) *pacer {
	return &pacer{replies: replies, readers: readers, next: make(chan struct{}, 1),
		passAt: passAt, passed: make(chan struct{})}
}

func (p *pacer) Stream(ctx context.Context, _ convo.ModelRequest, emit func(convo.Chunk)) (convo.Result, error) {
	select {
	case <-p.next: // the token the last delta of the previous turn left
	default:
	}
	p.mu.Lock()
	reply := p.replies[p.turns%len(p.replies)]
	p.turns++
	p.mu.Unlock()
	for i, w := range strings.SplitAfter(reply, " ") {
		if i > 0 {
			select {
			case <-p.next:
			case <-ctx.Done():
				return convo.Result{}, ctx.Err()
			}
		}
		emit(convo.Chunk{Kind: convo.ChunkText, Text: w})
		if i+1 == p.passAt {
			select {
			case <-p.passed:
			default:
				close(p.passed)
			}
		}
	}
	return convo.Result{StopReason: protocol.StopEndTurn}, nil
}

// saw notes that one reader got the latest delta.
func (p *pacer) saw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.seen++; p.seen == p.readers {
		p.seen = 0
		p.next <- struct{}{}
	}
}

// streamTurn sends text to conversation over HTTP and reads the turn on
// every client at once, pacing p by them; it returns each client's frames.
func streamTurn(t *testing.T, s *conntest.Server, p *pacer, clients []*conntest.Client, conversation, text string) [][]timedFrame {
	t.Helper()
	results := make([]chan []timedFrame, len(clients))
	for i, c := range clients {
		results[i] = make(chan []timedFrame, 1)
		go func() {
			frames, err := readTurn(c, p)
			if err != nil {
				t.Errorf("reader %d after %d frames: %v", i, len(frames), err)
			}
			results[i] <- frames
		}()
	}
	url := s.URL + "/v1/conversations/" + conversation + "/messages"
	if status, body := conntest.Do(t, "POST", url, `{"text":`+strconv.Quote(text)+`}`); status != 202 {
		t.Fatalf("POST %s: %d %s", url, status, body)
	}
	out := make([][]timedFrame, len(clients))
	for i := range results {
		out[i] = <-results[i]
	}
	if t.Failed() {
		t.FailNow()
	}
	return out
}

// deltaLatencies returns, sorted, how long each delta took from its
// storage (its ts) to its arrival at each client.
func deltaLatencies(perClient [][]timedFrame) []time.Duration {
	var out []time.Duration
	for _, frames := range perClient {
		for _, f := range frames {
			if f.Type == protocol.EventDelta {
				out = append(out, f.at.Sub(f.TS))
			}
		}
	}
	slices.Sort(out)
	return out
}

// percentile returns the p-th percentile of sorted durations.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[(len(sorted)-1)*p/100]
}

// gauge reads one metric of m.
func gauge(t *testing.T, m *metrics.Metrics, name string) float64 {
	t.Helper()
	got, err := m.Gather()
	if err != nil {
		t.Fatalf("gathering metrics: %v", err)
	}
	return got[name]
}

// waitGauge waits until the metric name of m is want; the server updates
// some metrics just after the client sees the effect.
func waitGauge(t *testing.T, m *metrics.Metrics, name string, want float64) {
	t.Helper()
	deadline := time.Now().Add(conntest.Timeout)
	for gauge(t, m, name) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s is %v, want %v", name, gauge(t, m, name), want)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestSlowConsumerAmongMany streams two long replies to 50 reading
// subscribers; during the first one more subscriber does not read. The
// stalled one is closed with 1008 "slow consumer" after at most its queue
// plus what the socket buffers hold, the hub drops it at once and the
// handler once it is closed, the 50 others get both replies whole and in
// order (their delivery latency with and without the stalled client is
// logged), and the stalled one resumes by seq with nothing lost.
//
// The model paces the stream by the readers (see pacer), so that a reader
// starved of CPU on a busy machine slows the stream down instead of
// overflowing its queue. It does not run in parallel with other tests:
// its 51 clients would starve the timing-sensitive ones.
func TestSlowConsumerAmongMany(t *testing.T) {
	const (
		readers = 50
		queue   = 32
		buf     = 4 << 10
		// kernelBytes bounds what the socket buffers between the server's
		// writer and the stalled client hold: both kernel buffers (set
		// to buf, which Linux doubles) and the websocket libraries'
		// write and read buffers, with a margin.
		kernelBytes = 4*buf + 2*(4<<10) + 8<<10
	)
	// 100 words of 1,000 bytes, a delta each: the first reply is more
	// events than the queue and the buffers hold; the second only shows
	// that the readers go on.
	const wordBytes = 1000
	word := strings.Repeat("abcdefghij", wordBytes/10) + " "
	first, second := strings.Repeat(word, 100), strings.Repeat(word, 10)
	// The stalled client has overflowed once the stream is past its
	// queue and what the buffers hold of its deltas; it reads from then
	// on. Reading only after the turn would wait for TCP's zero-window
	// probes, whose interval grows while it stalls.
	p := newPacer(readers, queue+kernelBytes/wordBytes+8, first, second)
	m := metrics.New()
	s := conntest.Start(t, conntest.Config{
		Model:      p,
		Convo:      convo.Config{Metrics: m},
		Conn:       conn.Options{SendQueue: queue, WriteTimeout: time.Minute, Metrics: m},
		SendBuffer: buf,
	})
	if _, err := s.Svc.Create(conntest.Deadline(t), auth.LocalUser, &protocol.Create{Conversation: "many"}); err != nil {
		t.Fatal(err)
	}
	fast := make([]*conntest.Client, readers)
	for i := range fast {
		fast[i] = s.Dial(t, "conversation=many")
		fast[i].Unchecked() // 50 readers that check every frame starve the stream of CPU
		if f := fast[i].Read(); f.Type != protocol.ReplySubscribed {
			t.Fatalf("reader %d got %s, want subscribed", i, f.Type)
		}
	}
	slow := conntest.DialWith(t, s.URL, conntest.WSPath("conversation=many"), buf)
	if f := slow.Read(); f.Type != protocol.ReplySubscribed {
		t.Fatalf("got %s, want subscribed", f.Type)
	}
	for name, want := range map[string]float64{"gateway_connections_open": readers + 1, "gateway_subscriptions": readers + 1} {
		if got := gauge(t, m, name); got != want {
			t.Errorf("%s = %v with all clients subscribed, want %v", name, got, want)
		}
	}

	type stalled struct {
		frames          []protocol.ServerFrame
		bytes, smallest int
		err             error
	}
	stalledDone := make(chan stalled, 1)
	go func() {
		<-p.passed
		var r stalled
		r.frames, r.bytes, r.smallest, r.err = readUntilSlowClose(t, slow)
		stalledDone <- r
	}()
	with := streamTurn(t, s, p, fast, "many", "first")
	// The hub drops the stalled subscriber when its queue overflows,
	// before it publishes the turn_end the readers have now seen.
	if got := gauge(t, m, "gateway_slow_consumer_closes_total"); got != 1 {
		t.Fatalf("%v slow consumer closes after the first reply, want 1 (the stalled client only)", got)
	}
	if got := gauge(t, m, "gateway_subscriptions"); got != readers {
		t.Errorf("gateway_subscriptions = %v after the stalled client overflowed, want %d", got, readers)
	}

	r := <-stalledDone
	if r.err != nil {
		t.Fatal(r.err)
	}
	got, bytes, smallest := r.frames, r.bytes, r.smallest
	seen := events(got)
	checkGapless(t, seen, 0)
	bound := queue + kernelBytes/smallest + 1
	t.Logf("the stalled client got %d frames (%d bytes, smallest %d) before its close; bound %d", len(got), bytes, smallest, bound)
	if len(got) > bound {
		t.Errorf("the stalled client got %d frames, more than its queue (%d) and the buffers (%d bytes) hold", len(got), queue, kernelBytes)
	}
	waitGauge(t, m, "gateway_connections_open", readers)
	if got := gauge(t, m, "gateway_subscriptions"); got != readers {
		t.Errorf("gateway_subscriptions = %v after the stalled client closed, want %d", got, readers)
	}

	without := streamTurn(t, s, p, fast, "many", "second")
	if got := gauge(t, m, "gateway_slow_consumer_closes_total"); got != 1 {
		t.Errorf("%v slow consumer closes after both replies, want 1: a reader was too slow", got)
	}
	var want []event
	for i := range fast {
		var frames []protocol.ServerFrame
		for _, f := range slices.Concat(with[i], without[i]) {
			frames = append(frames, f.ServerFrame)
		}
		if text := checkTurnText(t, frames); text != second {
			t.Errorf("reader %d: the second reply has %d bytes, want %d", i, len(text), len(second))
		}
		evs := events(frames)
		checkGapless(t, evs, 0)
		if i == 0 {
			want = evs
		} else if !slices.Equal(evs, want) {
			t.Errorf("reader %d saw other events than reader 0", i)
		}
	}
	lw, lo := deltaLatencies(with), deltaLatencies(without)
	t.Logf("%d events; delta latency to %d readers, with the stalled client: median %v, p99 %v; without: median %v, p99 %v",
		len(want), readers, percentile(lw, 50), percentile(lw, 99), percentile(lo, 50), percentile(lo, 99))

	k := uint64(len(seen))
	again := s.Dial(t, "conversation=many&after="+strconv.FormatUint(k, 10))
	last := want[len(want)-1].Seq
	rest := events(again.ReadUntil(func(f *protocol.ServerFrame) bool { return f.Seq == last && f.Type == protocol.EventTurnEnd }))
	if !slices.Equal(append(seen, rest...), want) {
		t.Errorf("after resuming at %d the stalled client has %d events, want %d", k, len(seen)+len(rest), len(want))
	}
}

// readUntilSlowClose reads c until the server closes it, checks that the
// close is 1008 "slow consumer", and returns the frames before it, their
// total size and the size of the smallest.
func readUntilSlowClose(t *testing.T, c *conntest.Client) (frames []protocol.ServerFrame, total, smallest int, err error) {
	for {
		_, data, err := c.WS.Read(conntest.Deadline(t))
		if err != nil {
			var ce websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation || ce.Reason != "slow consumer" {
				return frames, total, smallest, fmt.Errorf("the stalled client ended with %v, want close 1008 slow consumer", err)
			}
			return frames, total, smallest, nil
		}
		var f protocol.ServerFrame
		if err := json.Unmarshal(data, &f); err != nil {
			return frames, total, smallest, err
		}
		frames = append(frames, f)
		total += len(data)
		if smallest == 0 || len(data) < smallest {
			smallest = len(data)
		}
	}
}
