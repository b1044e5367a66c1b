package jetlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// Headers of JetStream's atomic batch publish (nats-server 2.12 and
// later; nats.go has no API for it).
const (
	hdrBatchID     = "Nats-Batch-Id"
	hdrBatchSeq    = "Nats-Batch-Sequence"
	hdrBatchCommit = "Nats-Batch-Commit"
)

// maxBatch bounds the records of one atomic batch (the server allows
// 1000 by default).
const maxBatch = 256

// publisher stores records in the stream. The records that concurrent
// appends hand it while a publish is in flight go next as one atomic
// batch: the server checks every record's conditions, stores all of them
// or none, and fsyncs once for the batch (with sync_interval always) or
// replicates it in one round, where a publish each would cost one fsync
// or round each. A batch that the server refuses (one record lost its
// race, say) is published again one record at a time, so that each gets
// its own answer.
type publisher struct {
	l *Log
	// atomic is whether the stream allows atomic batches; without it
	// every record is published alone.
	atomic bool

	mu      sync.Mutex
	queue   []*publishing
	running bool
}

// publishing is one record on its way to the stream.
type publishing struct {
	ctx  context.Context
	msg  *nats.Msg
	ack  *jetstream.PubAck
	err  error
	done chan struct{}
}

// publish stores msg, whose headers hold its conditions, and returns
// JetStream's acknowledgement. If ctx ends first, msg may or may not be
// stored.
func (p *publisher) publish(ctx context.Context, msg *nats.Msg) (*jetstream.PubAck, error) {
	w := &publishing{ctx: ctx, msg: msg, done: make(chan struct{})}
	p.mu.Lock()
	p.queue = append(p.queue, w)
	if !p.running {
		p.running = true
		go p.run()
	}
	p.mu.Unlock()
	select {
	case <-w.done:
		return w.ack, w.err
	case <-ctx.Done():
		return nil, fmt.Errorf("jetlog: publish: %w", ctx.Err())
	}
}

// run publishes what is queued until the queue is empty.
func (p *publisher) run() {
	for {
		p.mu.Lock()
		batch := p.take()
		if len(batch) == 0 {
			p.running = false
			p.mu.Unlock()
			return
		}
		p.mu.Unlock()
		p.send(batch)
		for _, w := range batch {
			close(w.done)
		}
	}
}

// take removes from the queue the records of the next publish: up to
// maxBatch, one per subject (the next one of a subject must see the
// previous one stored), in queue order. Records whose context ended are
// dropped unsent. p.mu must be held.
func (p *publisher) take() []*publishing {
	var batch, rest []*publishing
	subjects := map[string]bool{}
	for _, w := range p.queue {
		switch {
		case w.ctx.Err() != nil:
			w.err = fmt.Errorf("jetlog: publish: %w", w.ctx.Err())
			close(w.done)
		case len(batch) < maxBatch && !subjects[w.msg.Subject]:
			subjects[w.msg.Subject] = true
			batch = append(batch, w)
		default:
			rest = append(rest, w)
		}
	}
	p.queue = rest
	return batch
}

// send publishes batch and sets each record's answer.
func (p *publisher) send(batch []*publishing) {
	if len(batch) > 1 && p.atomic {
		err := p.sendAtomic(batch)
		var apiErr *jetstream.APIError
		// A record over max_payload is refused before the commit, which
		// the server then never gets: alone, the others are stored.
		if !errors.As(err, &apiErr) && !errors.Is(err, nats.ErrMaxPayload) {
			// Stored, or not known to be stored or refused: every
			// record has this answer.
			for _, w := range batch {
				w.err = err
			}
			return
		}
		// Refused whole: find out which record was refused.
	}
	var wg sync.WaitGroup
	for _, w := range batch {
		wg.Go(func() {
			ctx, cancel := p.l.reqCtx(w.ctx)
			defer cancel()
			w.ack, w.err = p.l.js.PublishMsg(ctx, w.msg)
		})
	}
	wg.Wait()
}

// batchAck is the server's answer to the commit of an atomic batch.
type batchAck struct {
	Error  *jetstream.APIError `json:"error,omitempty"`
	Stream string              `json:"stream"`
	Seq    uint64              `json:"seq"`
	Batch  string              `json:"batch"`
	Count  int                 `json:"count"`
}

// sendAtomic publishes batch as one atomic batch and sets each record's
// acknowledgement. Its error is a *jetstream.APIError when the server
// refused the batch (nothing is stored).
func (p *publisher) sendAtomic(batch []*publishing) error {
	ctx, cancel := p.l.reqCtx(context.Background())
	defer cancel()
	id := nuid.Next()
	var reply *nats.Msg
	for i, w := range batch {
		m := &nats.Msg{Subject: w.msg.Subject, Data: w.msg.Data, Header: maps.Clone(w.msg.Header)}
		m.Header.Set(hdrBatchID, id)
		m.Header.Set(hdrBatchSeq, strconv.Itoa(i+1))
		if i < len(batch)-1 {
			// The server answers only the commit.
			if err := p.l.nc.PublishMsg(m); err != nil {
				return fmt.Errorf("jetlog: publish a batch: %w", err)
			}
			continue
		}
		m.Header.Set(hdrBatchCommit, "1")
		var err error
		if reply, err = p.l.nc.RequestMsgWithContext(ctx, m); err != nil {
			return fmt.Errorf("jetlog: publish a batch: %w", err)
		}
	}
	var ack batchAck
	if err := json.Unmarshal(reply.Data, &ack); err != nil {
		return fmt.Errorf("jetlog: publish a batch: bad answer: %w", err)
	}
	if ack.Error != nil {
		return ack.Error
	}
	if ack.Batch != id || ack.Count != len(batch) {
		return fmt.Errorf("jetlog: publish a batch: the server stored %d of batch %q, want %d of %q", ack.Count, ack.Batch, len(batch), id)
	}
	// A batch is stored in order at consecutive positions.
	first := ack.Seq - uint64(len(batch)) + 1
	for i, w := range batch {
		w.ack = &jetstream.PubAck{Stream: ack.Stream, Sequence: first + uint64(i)}
	}
	return nil
}
