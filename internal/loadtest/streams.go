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
	// server names the bare pipeline the clients talked to ("": a
	// gateway).
	server string
}

// streams runs c concurrent conversations with model, each driven by one
// client that sends cfg.streamTurns(c) messages one after another and
// reads each reply (see converseAll). The clients run in a child process,
// as they would elsewhere in production: their goroutines' stacks and
// their allocation would otherwise be the measured server's, and its
// collector would scan and collect for them.
//
// start starts the server the clients talk to: a gateway (newTarget), or
// the baseline's bare pipeline.
func (r *runner) streams(ctx context.Context, c int, model *stampModel, start func(*stampModel) (*target, error)) (streamsResult, error) {
	res := streamsResult{c: c, delay: model.delay}
	t, err := start(model)
	if err != nil {
		return res, err
	}
	defer r.closeTarget(t)
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Duration)
	defer cancel()
	deadline, _ := ctx.Deadline()
	child, err := r.startChild(ctx, childSpec{
		Role: roleStreams, URL: t.wsURL, N: c, Deadline: deadline,
		Turns: r.cfg.streamTurns(c), Chunks: model.chunks, Size: model.size, Delay: model.delay,
	})
	if err != nil {
		return res, err
	}
	defer child.close()
	var out childResult
	res.load, out, err = r.measure(ctx, t, child, nil)
	if err != nil {
		return res, err
	}
	res.turns = out.Turns
	res.ack, res.relay = summarize(out.Ack), summarize(out.Relay)
	res.load.chunks = res.relay.n
	return res, nil
}

// converseAll has each client converse (see converse) until ctx ends, and
// returns their samples and failures. The clients start at random moments
// within the time one reply takes (chunks × chunk delay), so that sends
// and chunks come evenly, as from independent users. Started together,
// every reply's chunks would come in the same instant; started within one
// chunk delay, every client's next send would still come in one window:
// at C = 100, 100 sends in 20 ms, then none for 400 ms.
func converseAll(ctx context.Context, clients []*client, turns int, model *stampModel) childResult {
	var res childResult
	var ack, relay recorder
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, cl := range clients {
		wg.Go(func() {
			if model.delay > 0 {
				// A cut step fails converse at once, as it would anyway.
				_ = pause.For(ctx, rand.N(model.delay*time.Duration(model.chunks)))
			}
			n, err := converse(cl, "", turns, model, &ack, &relay)
			mu.Lock()
			defer mu.Unlock()
			res.Turns += n
			res.add(ctx, err)
		})
	}
	wg.Wait()
	res.Ack, res.Relay = ack.d, relay.d
	return res
}

// converse sends turns messages on conversation conv (empty: a new one),
// each after the reply to the previous one ended, recording the ack
// latency of each send and the relay latency of each stamped chunk. Every
// reply must carry the model's chunks, all of them and in order (coalesced
// into fewer deltas or not), or converse fails. It returns the number of
// turns that ended.
func converse(c *client, conv string, turns int, model *stampModel, ack, relay *recorder) (int, error) {
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
		if err := readReply(c, model, relay); err != nil {
			return i + 1, err
		}
	}
	return turns, nil
}

// readReply reads frames up to the next turn_end, recording the relay
// latency of each stamped chunk, and fails unless the turn ended normally
// with the model's chunks, all of them and in order.
func readReply(c *client, model *stampModel, relay *recorder) error {
	var lat []time.Duration
	var got replyCheck
	end, err := c.readUntil(protocol.EventTurnEnd, func(f *frame, at time.Time) {
		if f.typ == protocol.EventDelta {
			stamps := parseStamps(f.text)
			got.add(stamps, len(f.text))
			for _, s := range stamps {
				lat = append(lat, at.Sub(s.created))
			}
		}
	})
	if err != nil {
		return err
	}
	relay.add(lat...)
	if end.stopReason != protocol.StopEndTurn {
		return fmt.Errorf("loadtest: turn ended with %s: %s", end.stopReason, errorText(end.err))
	}
	return got.check(model)
}

// replyCheck follows the chunks of one reply as its deltas arrive.
type replyCheck struct {
	// stamps and bytes count the chunks and text received.
	stamps, bytes int
	// disorder is the first chunk found out of its place.
	disorder error
}

// add takes the stamps of one delta and its text's length.
func (r *replyCheck) add(stamps []chunkStamp, bytes int) {
	r.bytes += bytes
	for _, s := range stamps {
		if s.index != r.stamps && r.disorder == nil {
			r.disorder = fmt.Errorf("loadtest: a reply's chunk %d came where chunk %d was due", s.index, r.stamps)
		}
		r.stamps++
	}
}

// check reports a reply that lost, repeated or reordered chunks. A reply
// with text but no stamp is another model's (a -url gateway's own): there
// is nothing to check.
func (r *replyCheck) check(m *stampModel) error {
	if r.stamps == 0 && r.bytes > 0 {
		return nil
	}
	if r.disorder != nil {
		return r.disorder
	}
	if r.stamps != m.chunks || r.bytes != m.chunks*m.size {
		return fmt.Errorf("loadtest: a reply carried %d chunks in %d bytes, want %d in %d", r.stamps, r.bytes, m.chunks, m.chunks*m.size)
	}
	return nil
}

func errorText(e *protocol.Error) string {
	if e == nil {
		return "no error"
	}
	return e.Code + ": " + e.Message
}
