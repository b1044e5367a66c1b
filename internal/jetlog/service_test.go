package jetlog_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/jetlog"
	"github.com/chatgateway/gateway/internal/jetlog/natstest"
	"github.com/chatgateway/gateway/internal/metrics"
	"github.com/chatgateway/gateway/protocol"
)

const user = "alice"

// node is one gateway of a test cluster: a Service on a Store of its own.
type node struct {
	name    string
	store   *jetlog.Store
	svc     *convo.Service
	metrics *metrics.Metrics // the Service's
}

// startNode runs a gateway named name on the NATS servers at urls.
func startNode(t *testing.T, name, urls string, model convo.Model, lease time.Duration) *node {
	t.Helper()
	return startNodeWith(t, name, urls, model, jetlog.Options{LeaseTTL: lease, Timeout: time.Second})
}

// longLease is a turn lease that no renewal misses, however busy the
// machine, and that no gateway's sweep looks past within a test: a
// gateway's lease ends when the test kills it, not when a renewal comes
// late. (With a lease of half a second, a renewal late under load let a
// gateway's lease run out while it ran the turn, and another gateway
// took the turn over before the test cut the first one off.)
const longLease = time.Hour

// kill cuts gateway n off NATS and ends its lease of conversation id, as
// n's death would, then calls start, which starts a gateway: it takes
// the turn over as it starts, since it looks for conversations left with
// work then. n's lease must be longLease, so that it ends only now.
func kill(t *testing.T, srv *natstest.Server, n *node, id string, start func()) {
	t.Helper()
	n.store.Cut()
	expire(t, srv, jetlog.LeaseKey(id))
	start()
}

// startPair runs gateways a and b, whose model answers with one word, on
// one embedded NATS server, and returns them with the server.
func startPair(t *testing.T) (a, b *node, srv *natstest.Server) {
	t.Helper()
	srv = natstest.Start(t)
	a = startNode(t, "a", srv.URL(), &words{n: 1}, 0)
	b = startNode(t, "b", srv.URL(), &words{n: 1}, 0)
	return a, b, srv
}

// startNodeWith is startNode with the Store's options.
func startNodeWith(t *testing.T, name, urls string, model convo.Model, opts jetlog.Options) *node {
	t.Helper()
	return startNodeOn(t, name, urls, model, opts, toolAgents{}, func(st *jetlog.Store) convo.Log { return st })
}

// startNodeOn is startNodeWith with agents, on the Log that wrap makes
// of the Store.
func startNodeOn(t *testing.T, name, urls string, model convo.Model, opts jetlog.Options, agents convo.Agents,
	wrap func(*jetlog.Store) convo.Log) *node {
	t.Helper()
	st, err := jetlog.OpenStore(context.Background(), urls, jetlog.StoreOptions{Node: name, Logger: testLogger(t),
		Options: opts})
	if err != nil {
		t.Fatal(err)
	}
	reg := metrics.New()
	svc, err := convo.New(wrap(st), model, convo.Config{DefaultModel: "test", Logger: testLogger(t), Agents: agents, Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	n := &node{name: name, store: st, svc: svc, metrics: reg}
	t.Cleanup(func() { n.stop() })
	return n
}

// stop closes the node's Service (and its Store) gracefully.
func (n *node) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = n.svc.Close(ctx)
}

// subscriber collects the events of the conversations it follows.
type subscriber struct {
	mu     sync.Mutex
	events []*protocol.Event
	added  chan struct{} // capacity 1: an event arrived
	gone   chan struct{} // capacity 1: told the conversation is gone
}

func newSubscriber() *subscriber {
	return &subscriber{added: make(chan struct{}, 1), gone: make(chan struct{}, 1)}
}

func (s *subscriber) Send(f convo.Frame) bool {
	var ev protocol.Event
	if err := json.Unmarshal(f.Data, &ev); err != nil {
		panic(err)
	}
	if ev.Seq == 0 {
		return true // a reply (the ack of a send), not an event
	}
	s.mu.Lock()
	s.events = append(s.events, &ev)
	s.mu.Unlock()
	select {
	case s.added <- struct{}{}:
	default:
	}
	return true
}

func (s *subscriber) SendWait(ctx context.Context, f convo.Frame) error {
	s.Send(f)
	return nil
}

func (s *subscriber) Gone(string) {
	select {
	case s.gone <- struct{}{}:
	default:
	}
}

// waitFor waits until the events collected satisfy done, and returns them.
// It gives up, saying what it has, just before the test binary's deadline
// (go test -timeout), rather than at a time of its own.
func (s *subscriber) waitFor(t *testing.T, what string, done func([]*protocol.Event) bool) []*protocol.Event {
	t.Helper()
	var timeout <-chan time.Time
	if deadline, ok := t.Deadline(); ok {
		timeout = time.After(time.Until(deadline) - 5*time.Second)
	}
	for {
		s.mu.Lock()
		evs := append([]*protocol.Event(nil), s.events...)
		s.mu.Unlock()
		if done(evs) {
			return evs
		}
		select {
		case <-s.added:
		case <-timeout:
			t.Fatalf("gave up waiting for %s; have %s", what, describe(evs))
		}
	}
}

// hasDelta reports whether evs hold a delta: a reply has begun (other
// events, such as a message sent meanwhile, may follow it).
func hasDelta(evs []*protocol.Event) bool {
	return slices.ContainsFunc(evs, func(ev *protocol.Event) bool { return ev.Type == protocol.EventDelta })
}

// turnEnds counts the turn_end events in evs.
func turnEnds(n int) func([]*protocol.Event) bool {
	return func(evs []*protocol.Event) bool {
		c := 0
		for _, ev := range evs {
			if ev.Type == protocol.EventTurnEnd {
				c++
			}
		}
		return c >= n
	}
}

func describe(evs []*protocol.Event) string {
	var b strings.Builder
	for _, ev := range evs {
		fmt.Fprintf(&b, "%d:%s(%s%s) ", ev.Seq, ev.Type, ev.Turn, ev.StopReason)
	}
	return b.String()
}

// checkLog fails unless evs are seqs 1…n and no turn starts while another
// is open.
func checkLog(t *testing.T, evs []*protocol.Event) {
	t.Helper()
	open := ""
	for i, ev := range evs {
		if ev.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d: %s", i, ev.Seq, describe(evs))
		}
		switch ev.Type {
		case protocol.EventTurnStart:
			if open != "" {
				t.Fatalf("turn %s starts while %s is open: %s", ev.Turn, open, describe(evs))
			}
			open = ev.Turn
		case protocol.EventTurnEnd:
			if ev.Turn != open {
				t.Fatalf("turn %s ends while %q is open: %s", ev.Turn, open, describe(evs))
			}
			open = ""
		}
	}
}

// words is a model that answers with n words, each after the previous
// one is emitted, and waits on gate (if not nil) before each word.
type words struct {
	n    int
	gate chan struct{}
	// started receives the conversation's history length when a turn
	// starts streaming, if not nil.
	started chan int
}

func (w *words) Stream(ctx context.Context, req convo.ModelRequest, emit func(convo.Chunk)) (convo.Result, error) {
	if w.started != nil {
		w.started <- len(req.History)
	}
	for i := range w.n {
		if w.gate != nil {
			select {
			case <-w.gate:
			case <-ctx.Done():
				return convo.Result{}, ctx.Err()
			}
		}
		emit(convo.Chunk{Kind: convo.ChunkText, Text: fmt.Sprint("w", i, " ")})
	}
	return convo.Result{StopReason: protocol.StopEndTurn}, ctx.Err()
}

// read returns every stored event of conversation id, from n's log.
func (n *node) read(t *testing.T, id string) []*protocol.Event {
	t.Helper()
	frames, _, err := n.svc.Events(context.Background(), user, id, time.Time{}, 0, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var out []*protocol.Event
	for _, f := range frames {
		var ev protocol.Event
		if err := json.Unmarshal(f, &ev); err != nil {
			t.Fatal(err)
		}
		out = append(out, &ev)
	}
	return out
}

func send(t *testing.T, n *node, id, text string, sub convo.Subscriber) *protocol.Ack {
	t.Helper()
	ack, err := n.svc.Send(context.Background(), user, &protocol.Send{Conversation: id, Text: text}, sub)
	if err != nil {
		t.Fatalf("send on %s: %v", n.name, err)
	}
	return ack
}

func create(t *testing.T, n *node) string {
	t.Helper()
	c, err := n.svc.Create(context.Background(), user, &protocol.Create{})
	if err != nil {
		t.Fatal(err)
	}
	return c.ID
}

func subscribe(t *testing.T, n *node, id string, after uint64) *subscriber {
	t.Helper()
	sub, _, err := subscribeWith(n, &protocol.Subscribe{Conversation: id, After: after})
	if err != nil {
		t.Fatal(err)
	}
	return sub
}

// subscribeWith subscribes a new subscriber on n as req asks, and returns
// it with the subscribed reply.
func subscribeWith(n *node, req *protocol.Subscribe) (*subscriber, *protocol.Subscribed, error) {
	sub := newSubscriber()
	var reply *protocol.Subscribed
	err := n.svc.Subscribe(context.Background(), user, req, sub, func(r *protocol.Subscribed) { reply = r })
	return sub, reply, err
}
