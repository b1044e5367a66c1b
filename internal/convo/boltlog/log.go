// Package boltlog is the convo.Log of a single gateway: one bbolt file,
// written by one commit loop that groups every queued append into one
// transaction (one fsync).
package boltlog

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
	"go.opentelemetry.io/otel/trace"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/metrics"
	"github.com/chatgateway/gateway/protocol"
)

var _ convo.Log = (*Log)(nil)

// DefaultTimeout is the default of Options.Timeout.
const DefaultTimeout = 2 * time.Second

// Options tune a Log. Zero values mean the documented defaults.
type Options struct {
	// Timeout bounds the wait for the file's lock, which another process
	// may hold (default DefaultTimeout).
	Timeout time.Duration
	// Metrics receives the commit measurements (default: a private
	// registry nobody reads).
	Metrics *metrics.Metrics
	// MaxDeferrable bounds the deferrable appends (a reply's chunks) that
	// one commit carries; the others wait for the next commits, oldest
	// first. Every other append goes into the next commit, which then
	// takes at most half as many deferrable ones (default
	// DefaultMaxDeferrable; see take).
	MaxDeferrable int
	// TracerProvider receives a span per commit, linked to the spans of
	// the appends it carried (nil: tracing is off, and no span is made).
	TracerProvider trace.TracerProvider
}

// othersShare divides maxDeferrable for a commit that takes other ops
// too: half as many chunks held the ack and relay aims at 1,000 streams
// best of a quarter, a third, a half and all (see docs/PERFORMANCE.md).
const othersShare = 2

// DefaultMaxDeferrable is the default of Options.MaxDeferrable. It bounds
// how long a commit takes, and so how long a send waits for the commit in
// flight before its own: see docs/PERFORMANCE.md.
const DefaultMaxDeferrable = 256

// Log is a convo.Log on one bbolt file. Every write goes through the
// commit loop: it takes everything queued, applies it in one transaction
// and only then reports the stored events. There is no timer: an idle
// gateway commits a lone append at once, a busy one shares each fsync
// among all that queued while the previous one ran.
type Log struct {
	db      *bolt.DB
	metrics *metrics.Metrics
	now     func() time.Time
	// committed receives the stored events after each commit (see Start).
	committed func([]convo.Committed)
	// cache holds decoded metadata between commits. A batch works on
	// copies and hands them back on success, so a failed commit leaves
	// the cache as the file is. Only the commit loop writes it; readers
	// use it to skip decoding (see Meta).
	cache *metaCache
	// tail is the state of the tail as of the last commit; only the
	// commit loop uses it. tails are the tail's indexes of the last
	// commits, for the commit loop and the readers.
	tail  tailState
	tails tailIndexes
	// batch is the state of the commit in progress, whose maps and
	// arrays each commit reuses (see newBatch); only the commit loop
	// uses it.
	batch batch
	// eventCounters are metrics.Events' counters by event type, looked
	// up once each rather than for every event; only the commit loop
	// uses them.
	eventCounters map[string]prometheus.Counter
	// waitReply and waitOther are metrics.CommitWaitSeconds' two kinds.
	waitReply, waitOther prometheus.Observer
	// maxDeferrable is Options.MaxDeferrable.
	maxDeferrable int
	tracer        trace.Tracer

	mu sync.Mutex
	// failCommit, when set, makes every commit fail with its error: the
	// seam through which this package's tests inject storage faults.
	failCommit func() error
	// commits and ops count transactions and the ops they carried.
	commits, ops uint64
	queue        []*op
	stopped      bool
	wake         chan struct{} // capacity 1: "the queue is not empty"
	exited       chan struct{}
}

// op is one unit of work for the commit loop: an append, or another
// change (a delete). An append's op is one allocation with its result and
// the array of its events, where closures for its steps were one each.
type op struct {
	ctx context.Context
	// a is the append the op applies (nil: fn applies the op), res its
	// result, and one the array of res.Events when it stores one event,
	// as most do.
	a   *convo.Append
	res convo.Appended
	one [1]*protocol.Event
	// fn applies an op that is not an append (see apply).
	fn func(b *batch) (refused, err error)
	// deferrable says the op may wait for a later commit (see
	// convo.Append.Deferrable).
	deferrable bool
	queued     time.Time // when it was queued
	err        error
	// done, when set, gets the result once the op is complete (see
	// finish); else finish releases wait, which do waits on.
	done func(*convo.Appended, error)
	wait sync.WaitGroup
}

// apply runs o inside the shared write transaction. It returns refused
// for an error that fails this op alone (it wrote nothing), and any other
// error aborts the whole batch.
func (o *op) apply(b *batch) (refused, err error) {
	if o.a == nil {
		return o.fn(b)
	}
	return b.appendOp(o)
}

// durable calls the append's Durable function, if any, once the op is
// committed and before its events are reported.
func (o *op) durable() {
	if o.err == nil && o.a != nil && o.a.Durable != nil {
		o.a.Durable(&o.res)
	}
}

// finish is called once, from the commit loop, when o is complete:
// committed, refused, failed or dropped (o.err says which).
func (o *op) finish() {
	switch {
	case o.done == nil:
		o.wait.Done()
	case o.err != nil:
		o.done(nil, o.err)
	default:
		o.done(&o.res, nil)
	}
}

// BoltOptions are the options the gateway opens its bbolt file with,
// waiting at most timeout for its lock. The load generator's bare-commit
// baseline opens its file with them too, so that it times the same kind
// of commit.
func BoltOptions(timeout time.Duration) *bolt.Options {
	return &bolt.Options{Timeout: timeout, NoFreelistSync: true, FreelistType: bolt.FreelistMapType}
}

// Open opens (or creates) the bbolt file at path and starts the commit
// loop. A file locked by another process fails within opts.Timeout.
func Open(path string, opts Options) (*Log, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.New()
	}
	if opts.MaxDeferrable <= 0 {
		opts.MaxDeferrable = DefaultMaxDeferrable
	}
	db, err := bolt.Open(path, 0o600, BoltOptions(opts.Timeout))
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("boltlog: database %s is in use by another process (waited %s for its lock): %w", path, opts.Timeout, err)
	}
	if err != nil {
		return nil, fmt.Errorf("boltlog: open database %s: %w", path, err)
	}
	var tail tailState
	var refs map[string][]tailRef
	var txid int
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		var err error
		tail, refs, err = loadTail(tx)
		// Readers that begin once this commits find this index, as
		// after each commit of the loop.
		txid = tx.ID()
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("boltlog: prepare database %s: %w", path, err)
	}
	l := &Log{db: db, metrics: opts.Metrics, now: func() time.Time { return time.Now().UTC() },
		committed: func([]convo.Committed) {}, cache: newMetaCache(), tail: tail, eventCounters: map[string]prometheus.Counter{},
		waitReply: opts.Metrics.CommitWaitSeconds.WithLabelValues("reply"), waitOther: opts.Metrics.CommitWaitSeconds.WithLabelValues("other"),
		maxDeferrable: opts.MaxDeferrable, wake: make(chan struct{}, 1), exited: make(chan struct{})}
	if opts.TracerProvider != nil {
		l.tracer = opts.TracerProvider.Tracer("github.com/chatgateway/gateway/internal/convo/boltlog")
	}
	l.tails.publish(&tailIndex{txid: txid, refs: refs})
	go l.loop()
	return l, nil
}

// Start implements convo.Log.
func (l *Log) Start(committed func([]convo.Committed)) {
	l.mu.Lock()
	l.committed = committed
	l.mu.Unlock()
}

// Follow implements convo.Log: this process is the file's only writer,
// and every commit is reported whether followed or not.
func (l *Log) Follow(string, uint64, time.Time) func() { return func() {} }

// do queues o and waits until it is durable, refused, or dropped because
// o.ctx ended before a commit took it up. Once taken up, an op is
// committed or failed within one commit. An op that is not deferrable is
// taken up by the next commit.
func (l *Log) do(o *op) error {
	o.wait.Add(1)
	if err := l.enqueue(o); err != nil {
		return err
	}
	o.wait.Wait()
	return o.err
}

// enqueue queues o for the commit loop, which finishes it.
func (l *Log) enqueue(o *op) error {
	o.queued = time.Now()
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return convo.ErrClosed
	}
	l.queue = append(l.queue, o)
	l.mu.Unlock()
	l.wakeLoop()
	return nil
}

// wakeLoop tells the commit loop that ops are queued.
func (l *Log) wakeLoop() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// loop commits what is queued as soon as the previous commit is done.
func (l *Log) loop() {
	defer close(l.exited)
	var spare []*op
	for range l.wake {
		l.mu.Lock()
		stopped := l.stopped
		ops := l.take(stopped, spare)
		fail := l.failCommit
		committed := l.committed
		l.mu.Unlock()
		live := ops[:0]
		for _, o := range ops {
			if err := o.ctx.Err(); err != nil {
				o.err = err
				o.finish()
				continue
			}
			live = append(live, o)
		}
		if len(live) > 0 {
			l.mu.Lock()
			l.commits++
			l.ops += uint64(len(live))
			l.mu.Unlock()
			l.commit(live, fail, committed)
		}
		if stopped {
			return
		}
		// Every op taken is finished, and only this loop held their
		// array since take: the queue can grow in it again rather than
		// in arrays of its own.
		spare = emptied(ops)
	}
}

// take removes from the queue the ops of the next commit. Deferrable
// ops (a reply's chunks) are most of what a busy gateway stores, and the
// rest (sends, a turn's start and end) are what people wait for: a commit
// takes every op that is not deferrable, and the oldest deferrable ones up
// to maxDeferrable, or 1/othersShare of that with any of the others
// queued. So a send waits for the commit in flight and then a shorter
// commit of its own, and chunks go on in every commit. Those left stay
// queued in their order. With all set (the loop is stopping) it takes
// everything. The ops it returns are in the queue's array, the loop's
// from now on, and the queue goes on in spare, an empty array the loop
// no longer uses. Call with l.mu held.
func (l *Log) take(all bool, spare []*op) []*op {
	ops := l.queue
	l.queue = spare
	deferrable := 0
	for _, o := range ops {
		if o.deferrable {
			deferrable++
		}
	}
	limit := l.maxDeferrable
	if deferrable < len(ops) {
		limit = max(1, limit/othersShare)
	}
	if all || deferrable <= limit {
		return ops
	}
	// Those taken are moved to the front of ops: each is written at or
	// before the place it was read from.
	taken := ops[:0]
	n := 0
	for _, o := range ops {
		if o.deferrable {
			if n == limit {
				l.queue = append(l.queue, o)
				continue
			}
			n++
		}
		taken = append(taken, o)
	}
	// The loop comes round again for the ops left.
	l.wakeLoop()
	return taken
}

// commit applies ops in one transaction, calls their durable functions,
// reports the stored events, then completes each op.
func (l *Log) commit(ops []*op, fail func() error, committed func([]convo.Committed)) {
	b := l.newBatch(len(ops))
	start := time.Now()
	for _, o := range ops {
		if o.deferrable {
			l.waitReply.Observe(start.Sub(o.queued).Seconds())
		} else {
			l.waitOther.Observe(start.Sub(o.queued).Seconds())
		}
	}
	span := l.startCommitSpan(ops)
	var ix *tailIndex
	err := l.db.Update(func(tx *bolt.Tx) error {
		b.tx = tx
		for _, o := range ops {
			refused, err := o.apply(b)
			if err != nil {
				return err
			}
			o.err = refused
		}
		if err := b.flush(); err != nil {
			return err
		}
		if err := b.advance(&l.tail); err != nil {
			return err
		}
		if fail != nil {
			return fail()
		}
		// Readers that begin once this commits find its index.
		ix = b.tail.index(tx.ID())
		l.tails.publish(ix)
		return nil
	})
	endCommitSpan(span, len(b.out), err)
	if err != nil {
		if ix != nil {
			l.tails.withdraw(ix)
		}
		err = fmt.Errorf("%w (%w)", convo.ErrUnavailable, err)
		for _, o := range ops {
			o.err = err
			o.finish()
		}
		return
	}
	durable := time.Now()
	l.cache.keep(b.metas)
	l.tail.apply(b.tail)
	l.metrics.CommitSeconds.Observe(durable.Sub(start).Seconds())
	l.metrics.CommitOps.Observe(float64(len(ops)))
	for i := range b.out {
		b.out[i].Durable = durable
		l.eventCounter(b.out[i].Type).Inc()
	}
	for _, o := range ops {
		o.durable()
	}
	if len(b.out) > 0 {
		committed(b.out)
	}
	for _, o := range ops {
		o.finish()
	}
	// Yield, so that the goroutines this commit woke (the subscribers'
	// writers, the ops' callers) run now on this thread. Otherwise they
	// wait in its run queue while the next commit holds it in fsync, until
	// another thread wakes to take them (measured in docs/PERFORMANCE.md,
	// "What limits each figure": Relay).
	runtime.Gosched()
}

// eventCounter returns the counter of stored events of type typ.
func (l *Log) eventCounter(typ string) prometheus.Counter {
	c := l.eventCounters[typ]
	if c == nil {
		c = l.metrics.Events.WithLabelValues(typ)
		l.eventCounters[typ] = c
	}
	return c
}

// Stats returns how many transactions the commit loop committed and how
// many ops they carried.
func (l *Log) Stats() (commits, ops uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.commits, l.ops
}

// Close implements convo.Log: it stops the commit loop after the queued
// ops and closes the file.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return nil
	}
	l.stopped = true
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
	<-l.exited
	return l.db.Close()
}

// OpenService opens the bbolt file at path and runs a convo.Service on
// it, which closes the file when it closes. opts.Metrics and
// opts.TracerProvider default to cfg's.
func OpenService(path string, opts Options, model convo.Model, cfg convo.Config) (*convo.Service, error) {
	if opts.Metrics == nil {
		opts.Metrics = cfg.Metrics
	}
	if opts.TracerProvider == nil {
		opts.TracerProvider = cfg.TracerProvider
	}
	l, err := Open(path, opts)
	if err != nil {
		return nil, err
	}
	return convo.New(l, model, cfg)
}
