package loadtest

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/convo/boltlog"
	"github.com/chatgateway/gateway/internal/jetlog"
	"github.com/chatgateway/gateway/internal/metrics"
	"github.com/chatgateway/gateway/protocol"
)

// clusterResult is one step of the cluster scenario: c conversations on
// two gateways that share one JetStream server. Each conversation's turns
// run on gateway a, where its sending client is, with k clients following
// it on each gateway (the sender counts as one of a's).
type clusterResult struct {
	c, k  int
	turns int
	// same and cross are the relay latencies of stamped chunks to the
	// clients on a (where the turn runs) and on b.
	same, cross summary
}

// storeResult compares the events/s that one JetStream server (with an
// fsync on every write, and with JetStream's default of an fsync every
// two minutes) and one bbolt file store, with writers appending one event
// each at a time to conversations of their own; and what the same
// JetStream server takes from plain publishers of like messages, without
// the gateway: its limit on this machine.
type storeResult struct {
	writers int
	// synced, lazy and bbolt are the three storages' rates.
	synced, lazy, bbolt rate
	// bare is storeWriters publishers each publishing one message and
	// waiting for its acknowledgement, then the next; bareBatch one
	// publisher sending atomic batches of storeWriters messages, each
	// after the previous one's acknowledgement. Both with sync always.
	bare, bareBatch rate
}

// rate is events stored in a time.
type rate struct {
	n int
	d time.Duration
}

func (r rate) perSecond() float64 { return float64(r.n) / r.d.Seconds() }

func (r rate) String() string {
	return fmt.Sprintf("%.0f events/s (%d in %s)", r.perSecond(), r.n, r.d.Round(time.Millisecond))
}

// startNATS runs a JetStream server in this process on a loopback port,
// storing in a fresh directory under dir, fsyncing every write if sync
// (as docs/CLUSTER.md sets it up), else every two minutes (JetStream's
// default).
func startNATS(dir string, sync bool) (*server.Server, error) {
	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, SyncAlways: sync,
		StoreDir: filepath.Join(dir, fmt.Sprintf("nats-%d", dbCount.Add(1))), NoLog: true, NoSigs: true,
	})
	if err != nil {
		return nil, fmt.Errorf("loadtest: NATS server: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("loadtest: the NATS server did not start")
	}
	return ns, nil
}

// startClusterGateway starts an in-process gateway named node in cluster
// mode on the NATS server at url.
func startClusterGateway(ctx context.Context, url, node string, model convo.Model, log *slog.Logger) (*target, error) {
	m := metrics.New()
	st, err := jetlog.OpenStore(ctx, url, jetlog.StoreOptions{Node: node, Logger: log, Metrics: m})
	if err != nil {
		return nil, fmt.Errorf("loadtest: open the store: %w", err)
	}
	svc, err := convo.New(st, model, gatewayConfig(log, m))
	if err != nil {
		return nil, fmt.Errorf("loadtest: open the gateway: %w", err)
	}
	return serveGateway(svc, m, log)
}

// cluster runs one step of the cluster scenario.
func (r *runner) cluster(ctx context.Context, c, k int) (clusterResult, error) {
	res := clusterResult{c: c, k: k}
	ns, err := startNATS(r.dir, true)
	if err != nil {
		return res, err
	}
	defer ns.Shutdown()
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Duration)
	defer cancel()
	var nodes [2]*target
	for i, name := range []string{"a", "b"} {
		if nodes[i], err = startClusterGateway(ctx, ns.ClientURL(), name, r.model, r.cfg.GatewayLog); err != nil {
			return res, err
		}
		defer r.closeTarget(nodes[i])
	}
	senders, err := dialAll(ctx, nodes[0].wsURL, c)
	if err != nil {
		return res, err
	}
	defer closeAll(senders)
	onA, err := dialAll(ctx, nodes[0].wsURL, c*(k-1))
	if err != nil {
		return res, err
	}
	defer closeAll(onA)
	onB, err := dialAll(ctx, nodes[1].wsURL, c*k)
	if err != nil {
		return res, err
	}
	defer closeAll(onB)

	ids := make([]string, c)
	for i, s := range senders {
		ids[i] = "cluster-" + strconv.Itoa(i)
		if err := s.request(&protocol.Create{ID: "c", Conversation: ids[i]}); err != nil {
			return res, err
		}
		if _, err := s.readUntil(protocol.ReplyCreated, nil); err != nil {
			return res, err
		}
	}
	subscribe := func(cl *client, id string) error {
		if err := cl.request(&protocol.Subscribe{ID: "s", Conversation: id}); err != nil {
			return err
		}
		_, err := cl.readUntil(protocol.ReplySubscribed, nil)
		return err
	}
	for i, id := range ids {
		for _, cl := range onA[i*(k-1) : (i+1)*(k-1)] {
			if err := subscribe(cl, id); err != nil {
				return res, err
			}
		}
		for _, cl := range onB[i*k : (i+1)*k] {
			if err := subscribe(cl, id); err != nil {
				return res, err
			}
		}
	}

	turns := r.cfg.Turns
	var ack, same, cross recorder
	var mu sync.Mutex
	var errs []error
	fail := func(err error) {
		if err != nil {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
	}
	follow := func(cl *client, rec *recorder) {
		for range turns {
			if err := readReply(cl, r.model, rec); err != nil {
				fail(err)
				return
			}
		}
	}
	var wg sync.WaitGroup
	for i, s := range senders {
		wg.Go(func() {
			n, err := converse(s, ids[i], turns, r.model, &ack, &same)
			mu.Lock()
			res.turns += n
			mu.Unlock()
			fail(err)
		})
	}
	for _, cl := range onA {
		wg.Go(func() { follow(cl, &same) })
	}
	for _, cl := range onB {
		wg.Go(func() { follow(cl, &cross) })
	}
	wg.Wait()
	res.same, res.cross = same.summary(), cross.summary()
	if len(errs) > 0 {
		return res, errs[0]
	}
	return res, nil
}

// storeWriters is how many writers the store step runs on each storage.
const storeWriters = 100

// store measures the events/s of the cluster's storage against bbolt's
// and against plain publishers, each for cfg.StoreEvents events or a
// fifth of the step's time cap.
func (r *runner) store(ctx context.Context) (storeResult, error) {
	res := storeResult{writers: storeWriters}
	d := r.cfg.Duration / 5
	for _, batch := range []bool{false, true} {
		ns, err := startNATS(r.dir, true)
		if err != nil {
			return res, err
		}
		dst := &res.bare
		if batch {
			dst = &res.bareBatch
		}
		*dst, err = publishRate(ctx, ns.ClientURL(), batch, r.cfg.StoreEvents, d)
		ns.Shutdown()
		if err != nil {
			return res, fmt.Errorf("plain JetStream: %w", err)
		}
	}
	for _, sync := range []bool{true, false} {
		ns, err := startNATS(r.dir, sync)
		if err != nil {
			return res, err
		}
		js, err := jetlog.OpenStore(ctx, ns.ClientURL(), jetlog.StoreOptions{Node: "store", Logger: r.cfg.GatewayLog})
		if err == nil {
			dst := &res.lazy
			if sync {
				dst = &res.synced
			}
			*dst, err = appendRate(ctx, js, r.cfg.StoreEvents, d)
		}
		ns.Shutdown()
		if err != nil {
			return res, fmt.Errorf("jetstream: %w", err)
		}
	}
	bl, err := boltlog.Open(filepath.Join(r.dir, fmt.Sprintf("store-%d.db", dbCount.Add(1))), boltlog.Options{})
	if err != nil {
		return res, err
	}
	if res.bbolt, err = appendRate(ctx, bl, r.cfg.StoreEvents, d); err != nil {
		return res, fmt.Errorf("bbolt: %w", err)
	}
	return res, nil
}

// appendRate has storeWriters writers append one delta at a time to
// conversations of their own on l, events in all, for at most d, then
// closes l, and returns the events stored and the time taken.
func appendRate(ctx context.Context, l convo.Log, events int, d time.Duration) (rate, error) {
	defer l.Close()
	l.Start(func([]convo.Committed) {})
	for w := range storeWriters {
		id := "store-" + strconv.Itoa(w)
		meta := &convo.Meta{Owner: "loadtest", Conversation: protocol.Conversation{ID: id}}
		if _, err := l.Append(ctx, &convo.Append{Conversation: id, New: meta, Build: func(*convo.Meta) ([]convo.Draft, error) { return nil, nil }}); err != nil {
			return rate{}, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return writeRate(ctx, events, func(w, _ int) error {
		_, err := l.Append(ctx, &convo.Append{Conversation: "store-" + strconv.Itoa(w), Build: func(*convo.Meta) ([]convo.Draft, error) {
			return []convo.Draft{{Event: &protocol.Event{Type: protocol.EventDelta, Turn: "t", Text: "a chunk of a reply"}}}, nil
		}})
		return err
	})
}

// writeRate has storeWriters writers call write(writer, n) for n = 0, 1,
// … until events calls in all, an error, or the end of ctx, and returns
// the calls that succeeded and the time taken, with the first error
// before the end of ctx.
func writeRate(ctx context.Context, events int, write func(w, n int) error) (rate, error) {
	var mu sync.Mutex
	var stored int
	var firstErr error
	start := time.Now()
	var wg sync.WaitGroup
	for w := range storeWriters {
		wg.Go(func() {
			n := 0
			for ; n < events/storeWriters && ctx.Err() == nil; n++ {
				if err := write(w, n); err != nil {
					if ctx.Err() == nil {
						mu.Lock()
						firstErr = err
						mu.Unlock()
					}
					break
				}
			}
			mu.Lock()
			stored += n
			mu.Unlock()
		})
	}
	wg.Wait()
	return rate{n: stored, d: time.Since(start)}, firstErr
}

// publishRate publishes up to events messages like the gateway's deltas
// to the JetStream server at url, on a stream set up as jetlog sets it up
// with a subject per writer, for at most d: from storeWriters publishers
// each waiting for its acknowledgement, or as atomic batches of
// storeWriters messages from one publisher. It returns the messages
// stored and the time taken.
func publishRate(ctx context.Context, url string, batch bool, events int, d time.Duration) (rate, error) {
	nc, err := nats.Connect(url)
	if err != nil {
		return rate{}, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return rate{}, err
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "PLAIN", Subjects: []string{"conv.>"},
		Storage: jetstream.FileStorage, AllowDirect: true, AllowAtomicPublish: true}); err != nil {
		return rate{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	// A delta frame and headers of about the sizes the gateway stores.
	frame := []byte(`{"type":"delta","conversation":"store-00","seq":100,"ts":"2026-01-01T00:00:00.000000000Z","turn":"t","text":"a chunk of a reply"}`)
	meta := strings.Repeat("m", 300)
	msg := func(w, seq int) *nats.Msg {
		m := nats.NewMsg("conv.store-" + strconv.Itoa(w))
		m.Data = frame
		m.Header.Set("Gw-Seq", strconv.Itoa(seq))
		m.Header.Set("Gw-Id", nuid.Next())
		m.Header.Set("Gw-Meta", meta)
		return m
	}
	start := time.Now()
	if batch {
		stored := 0
		for ; stored+storeWriters <= events && ctx.Err() == nil; stored += storeWriters {
			if err := publishBatch(ctx, nc, func(w int) *nats.Msg { return msg(w, stored/storeWriters+1) }); err != nil {
				if ctx.Err() != nil {
					break // out of time: this batch may or may not be stored
				}
				return rate{}, err
			}
		}
		return rate{n: stored, d: time.Since(start)}, nil
	}
	return writeRate(ctx, events, func(w, n int) error {
		_, err := js.PublishMsg(ctx, msg(w, n+1))
		return err
	})
}

// publishBatch publishes msg(0) … msg(storeWriters-1) as one atomic
// batch and waits for its acknowledgement.
func publishBatch(ctx context.Context, nc *nats.Conn, msg func(w int) *nats.Msg) error {
	id := nuid.Next()
	for w := range storeWriters {
		m := msg(w)
		m.Header.Set("Nats-Batch-Id", id)
		m.Header.Set("Nats-Batch-Sequence", strconv.Itoa(w+1))
		if w < storeWriters-1 {
			if err := nc.PublishMsg(m); err != nil {
				return err
			}
			continue
		}
		m.Header.Set("Nats-Batch-Commit", "1")
		reply, err := nc.RequestMsgWithContext(ctx, m)
		if err != nil {
			return err
		}
		if !bytes.Contains(reply.Data, []byte(`"count":`)) {
			return fmt.Errorf("batch refused: %s", reply.Data)
		}
	}
	return nil
}

func (rep *report) clusterTable() *table {
	t := &table{
		title:  "cluster: two gateways (a, b) on one JetStream server, C conversations with K clients on each gateway",
		header: []string{"C", "K", "turns", "same-node relay p50", "same-node relay p99", "cross-node relay p50", "cross-node relay p99", "cross/same p99"},
	}
	for _, s := range rep.cluster {
		row := []string{strconv.Itoa(s.res.c), strconv.Itoa(s.res.k)}
		if s.err != nil {
			t.add(append(row, "failed: "+s.err.Error())...)
			continue
		}
		row = append(row, strconv.Itoa(s.res.turns))
		row = append(row, s.res.same.cells()[:2]...)
		row = append(row, s.res.cross.cells()[:2]...)
		row = append(row, ratio(float64(s.res.cross.p99), float64(s.res.same.p99)))
		t.add(row...)
	}
	if s := rep.store; s != nil {
		if s.err != nil {
			t.note("store: failed: %s", s.err)
		} else {
			t.note("store: %d writers appending one event at a time to conversations of their own: one JetStream server in this process stored %s with sync_interval always (JetStream/bbolt %s), %s with JetStream's default fsync every 2 minutes; one bbolt file (group commit) %s.",
				s.res.writers, s.res.synced, ratio(s.res.synced.perSecond(), s.res.bbolt.perSecond()), s.res.lazy, s.res.bbolt)
			t.note("store: the same JetStream server, sync always, without the gateway: %d plain publishers of like messages, each waiting for its ack, %s (gateway/plain %s); one publisher of atomic batches of %d, %s (gateway/batches %s).",
				s.res.writers, s.res.bare, ratio(s.res.synced.perSecond(), s.res.bare.perSecond()), s.res.writers, s.res.bareBatch, ratio(s.res.synced.perSecond(), s.res.bareBatch.perSecond()))
		}
	}
	t.note("The turns run on a, where each conversation's sending client is. relay: model chunk created (stamped in its text) → delta frame read, by clients on a (same-node, the sender included) and on b (cross-node: the delta reaches b through b's JetStream consumer of the conversation). Both gateways, the NATS server and every client share this process and the machine's cores.")
	return t
}
