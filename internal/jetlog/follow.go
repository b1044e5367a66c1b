package jetlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Follower delivers a conversation's records as JetStream stores them.
type Follower struct {
	l    *Log
	cons jetstream.Consumer
	cc   jetstream.ConsumeContext
	log  *slog.Logger
}

// Follow calls fn with every record of conversation id at position from or
// later, in order, as each is stored, whichever node appends it; fn runs
// on one goroutine at a time and must not block for long. It uses an
// ordered consumer, which JetStream recreates from the last delivered
// position after a disconnection or when its server stops (see
// followHeartbeat), so fn sees no gap and no repeat. It
// takes from JetStream at most two of the largest messages its server
// takes ahead of fn (followBytes), whatever the records' count. Call
// Stop when done.
func (l *Log) Follow(ctx context.Context, id string, from uint64, log *slog.Logger, fn func(*Record)) (*Follower, error) {
	ctx, cancel := l.reqCtx(ctx)
	defer cancel()
	cons, err := l.js.OrderedConsumer(ctx, l.stream, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{l.subject(id)},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    max(from, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("jetlog: follow %s: %w", id, err)
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		md, err := msg.Metadata()
		if err != nil {
			log.Error("follow: message without metadata", "conversation", id, "err", err)
			return
		}
		rec, err := recordOf(md.Sequence.Stream, msg.Headers(), msg.Data(), md.Timestamp)
		if err != nil {
			log.Error("follow: bad message", "conversation", id, "err", err)
			return
		}
		fn(rec)
	}, jetstream.PullMaxBytes(l.followBytes()), jetstream.PullThresholdMessages(noMessageThreshold), jetstream.PullHeartbeat(followHeartbeat), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		log.Debug("follow", "conversation", id, "err", err)
	}))
	if err != nil {
		return nil, fmt.Errorf("jetlog: follow %s: %w", id, err)
	}
	return &Follower{l: l, cons: cons, cc: cc, log: log}, nil
}

// deliverySlack is what a delivered message holds beyond what the
// server's max_payload bounds: its subject and its acknowledgement
// subject, a few hundred bytes.
const deliverySlack = 64 << 10

// followBytes is the most a follower takes from JetStream ahead of fn:
// two of the largest messages the server takes, whatever their count.
// Without a bound in bytes a consumer buffers up to 500 messages (500
// MiB of long replies) per followed conversation. The client pulls again
// once less than half of it is pending, for the rest, so that a pull
// asks for more than the largest message: the server delivers no
// message larger than a pull asks for.
func (l *Log) followBytes() int {
	return 2 * (max(int(l.nc.MaxPayload()), MinPayload) + deliverySlack)
}

// noMessageThreshold turns off the client's pulls by count of messages,
// leaving those by bytes. A pull that the server ends for a message
// larger than what is left of it counts as all its messages received,
// and the client pulled again at once for only the bytes left of its
// bound: pulls too small for the next message, which the server ended
// in turn, one after another while the message waited.
const noMessageThreshold = -1

// Stop ends the delivery, waits until fn has returned for the last time,
// and deletes the consumer from the stream. It must not be called from
// fn.
//
// Stopping an ordered consumer leaves it on the server until it has been
// idle for its inactive threshold (five minutes), and a stream holds at
// most maxConsumers: without the delete, conversations followed and left
// at a few a second would use them all up, and new follows would fail.
// The threshold still removes the consumers of a gateway that died, or
// whose delete did not reach JetStream.
func (f *Follower) Stop() {
	f.halt()
	info := f.cons.CachedInfo()
	if info == nil {
		return
	}
	ctx, cancel := f.l.reqCtx(context.Background())
	defer cancel()
	if err := f.l.js.DeleteConsumer(ctx, f.l.stream, info.Name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		f.log.Debug("follow: delete the consumer", "consumer", info.Name, "err", err)
	}
}

// halt ends the delivery and waits until fn has returned for the last
// time, leaving the consumer to the server's idle threshold: what a
// closing Store does, so that it does not wait for a request per follow
// (each up to the request timeout while NATS is unreachable).
func (f *Follower) halt() {
	f.cc.Stop()
	<-f.cc.Closed()
}

// followHeartbeat is how often the server of a follower's consumer
// tells, while it has nothing to deliver, that the consumer is still
// there. When that server stops, nothing else tells a client connected
// to another one: after two missed heartbeats the ordered consumer is
// made again, on a server that runs, from the last delivered position.
// JetStream's default for an ordered consumer, five seconds, left a
// follow silent for ten. Each idle follow costs the server and the
// gateway one small message per heartbeat: at a second, a thousand
// follows at once (TestManyFollowers) on a loaded machine under -race
// starved the requests that start follows past their timeout, which
// at two seconds they were not.
const followHeartbeat = 2 * time.Second
