package loadtest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	"github.com/chatgateway/gateway/internal/pause"
	"github.com/chatgateway/gateway/protocol"
)

// streamsResult is one step of the streams scenario: c conversations,
// each with one subscribed client.
type streamsResult struct {
	c          int
	delay      time.Duration // between two chunks of a reply
	turns      int           // completed turns, over all conversations
	ack, relay summary
	load       load
}

// streams runs c concurrent conversations with model, each driven by one
// client that sends cfg.streamTurns(c) messages one after another and
// reads each reply. The clients start at random moments within the time
// one reply takes (chunks × chunk delay), so that sends and chunks come
// evenly, as from independent users. Started together, every reply's
// chunks would come in the same instant; started within one chunk delay,
// every client's next send would still come in one window: at C = 100,
// 100 sends in 20 ms, then none for 400 ms.
func (r *runner) streams(ctx context.Context, c int, model *stampModel) (streamsResult, error) {
	res := streamsResult{c: c, delay: model.delay}
	t, err := r.newTarget(model)
	if err != nil {
		return res, err
	}
	defer r.closeTarget(t)
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Duration)
	defer cancel()
	clients, err := dialAll(ctx, t.wsURL, c)
	if err != nil {
		return res, err
	}
	defer closeAll(clients)

	var ack, relay recorder
	var mu sync.Mutex
	turns := r.cfg.streamTurns(c)
	m := r.startLoad(ctx, t)
	var wg sync.WaitGroup
	for _, cl := range clients {
		wg.Go(func() {
			if model.delay > 0 {
				// A cut step fails converse at once, as it would anyway.
				_ = pause.For(ctx, rand.N(model.delay*time.Duration(model.chunks)))
			}
			n, err := converse(cl, turns, &ack, &relay)
			mu.Lock()
			defer mu.Unlock()
			res.turns += n
			m.fail(ctx, err)
		})
	}
	wg.Wait()
	res.load = m.stop(ctx, t)
	res.ack, res.relay = ack.summary(), relay.summary()
	res.load.chunks = res.relay.n
	return res, nil
}

// converse sends turns messages on one new conversation, each after the
// reply to the previous one ended, recording the ack latency of each send
// and the relay latency of each stamped chunk. It returns the number of
// turns that ended.
func converse(c *client, turns int, ack, relay *recorder) (int, error) {
	conv := ""
	var lat []time.Duration
	for i := range turns {
		send := &protocol.Send{ID: "s" + strconv.Itoa(i), Conversation: conv, Text: "load test"}
		sent := time.Now()
		if err := c.request(send); err != nil {
			return i, err
		}
		f, err := c.readUntil(protocol.ReplyAck, nil)
		if err != nil {
			return i, err
		}
		ack.add(time.Since(sent))
		conv = f.conversation
		lat = lat[:0]
		end, err := c.readUntil(protocol.EventTurnEnd, func(f *frame, at time.Time) {
			if f.typ == protocol.EventDelta {
				for _, s := range parseStamps(f.text) {
					lat = append(lat, at.Sub(s.created))
				}
			}
		})
		if err != nil {
			return i, err
		}
		relay.add(lat...)
		if end.stopReason != protocol.StopEndTurn {
			return i + 1, fmt.Errorf("loadtest: turn ended with %s: %s", end.stopReason, errorText(end.err))
		}
	}
	return turns, nil
}

func errorText(e *protocol.Error) string {
	if e == nil {
		return "no error"
	}
	return e.Code + ": " + e.Message
}
