package convo_test

import (
	"context"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/jetlog"
	"github.com/chatgateway/gateway/internal/jetlog/natstest"
	"github.com/chatgateway/gateway/internal/metrics"
	"github.com/chatgateway/gateway/protocol"
)

// readsLog counts the Messages reads (the history a turn reads).
type readsLog struct {
	convo.Log
	reads atomic.Int64
}

func (l *readsLog) Messages(ctx context.Context, id string, before uint64, limit, maxBytes int) ([]protocol.Message, bool, error) {
	l.reads.Add(1)
	return l.Log.Messages(ctx, id, before, limit, maxBytes)
}

// limitedService is a Service that allows one model call at once, with
// the metrics it records into and its Log's history reads.
type limitedService struct {
	*testService
	metrics *metrics.Metrics
	log     *readsLog
}

// openLimited opens a Service on a file in t.TempDir, with m and agents
// (nil: none), that allows one model call at once.
func openLimited(t *testing.T, m convo.Model, agents convo.Agents) *limitedService {
	t.Helper()
	return openLimitedWith(t, m, convo.Config{Agents: agents})
}

// openLimitedWith is openLimited with cfg, whose MaxModelCalls and Metrics
// it sets.
func openLimitedWith(t *testing.T, m convo.Model, cfg convo.Config) *limitedService {
	t.Helper()
	ls := &limitedService{metrics: metrics.New(), log: &readsLog{}}
	cfg.MaxModelCalls, cfg.Metrics = 1, ls.metrics
	ls.testService = openConfigured(t, filepath.Join(t.TempDir(), "gateway.db"), m, func(l convo.Log) convo.Log {
		ls.log.Log = l
		return ls.log
	}, cfg)
	return ls
}

// waiting is the gauge of model calls waiting for one to end in reg.
func waiting(t *testing.T, reg *metrics.Metrics) float64 {
	t.Helper()
	var d dto.Metric
	if err := reg.ModelCallsWaiting.Write(&d); err != nil {
		t.Fatal(err)
	}
	return d.GetGauge().GetValue()
}

// awaitWaiting returns once n model calls wait for one to end in reg,
// failing the test if the model is called meanwhile.
func awaitWaiting(t *testing.T, reg *metrics.Metrics, n float64, calls <-chan convo.ModelRequest) {
	t.Helper()
	for waiting(t, reg) != n {
		select {
		case req := <-calls:
			t.Fatalf("the model was called for %q, want %v calls waiting and none called", lastText(req), n)
		default:
			runtime.Gosched()
		}
	}
}

// called returns the model's next request, failing the test unless it
// answers text.
func called(t *testing.T, m gateModel, text string) convo.ModelRequest {
	t.Helper()
	req := <-m.calls
	if got := lastText(req); got != text {
		t.Fatalf("the model was called for %q, want %q", got, text)
	}
	return req
}

// ends reads rec's events up to the next turn_end and checks how it
// ended.
func ends(t *testing.T, rec *recorder, stop, text string) {
	t.Helper()
	evs := rec.until(t, protocol.EventTurnEnd)
	if end := evs[len(evs)-1]; end.StopReason != stop || end.Message.Text != text {
		t.Fatalf("turn_end %s %q, want %s %q", end.StopReason, end.Message.Text, stop, text)
	}
}

// TestModelCallsWaitTheirTurn allows one model call at once: the turn of
// a second conversation calls the model only once the first call ends,
// before a turn that asked after it, and then runs whole. A waiting turn
// has read no history yet; it reads it once its call may start.
func TestModelCallsWaitTheirTurn(t *testing.T) {
	m := gateModel{calls: make(chan convo.ModelRequest, 10), gate: make(chan struct{})}
	s := openLimited(t, m, nil)
	recA, recB := newRecorder(100), newRecorder(100)
	a := send(t, s, "", "a1", recA).Conversation
	called(t, m, "a1")
	// b1's send opens its turn, whose model call waits (an early turn);
	// a2 waits in its conversation behind a1.
	send(t, s, "", "b1", recB)
	send(t, s, a, "a2", recA)
	awaitWaiting(t, s.metrics, 1, m.calls)

	reads := s.log.reads.Load()
	m.gate <- struct{}{} // a1 ends
	ends(t, recA, protocol.StopEndTurn, "ok")
	called(t, m, "b1")
	// a2's runner opened it after b1 asked for its call: it waits.
	awaitWaiting(t, s.metrics, 1, m.calls)
	if n := s.log.reads.Load() - reads; n != 0 {
		t.Errorf("a waiting turn read its history (%d reads)", n)
	}

	m.gate <- struct{}{} // b1 ends
	ends(t, recB, protocol.StopEndTurn, "ok")
	if got := history(called(t, m, "a2")); got != "user:a1 assistant:ok user:a2" {
		t.Errorf("the turn that waited sent the model %q", got)
	}
	m.gate <- struct{}{}
	ends(t, recA, protocol.StopEndTurn, "ok")
	if err := s.WaitTurns(context.Background()); err != nil {
		t.Fatal(err)
	}
	if w := waiting(t, s.metrics); w != 0 {
		t.Errorf("%v model calls still waiting", w)
	}
}

// TestWaitingTurnsBounded allows one model call at once and one turn
// waiting for it: a turn that would wait beside that one ends at once,
// error busy, without calling the model and without joining the line;
// its message stays stored, so the conversation's next turn sends it to
// the model, and the turn that waited runs once the call before it ends.
func TestWaitingTurnsBounded(t *testing.T) {
	m := gateModel{calls: make(chan convo.ModelRequest, 10), gate: make(chan struct{})}
	s := openLimitedWith(t, m, convo.Config{MaxWaitingTurns: 1})
	send(t, s, "", "c1", nil)
	called(t, m, "c1") // holds the one call allowed
	recA := newRecorder(100)
	send(t, s, "", "a1", recA)
	awaitWaiting(t, s.metrics, 1, m.calls)

	recB := newRecorder(100)
	b := send(t, s, "", "b1", recB).Conversation
	evs := recB.until(t, protocol.EventTurnEnd)
	if end := evs[len(evs)-1]; end.StopReason != protocol.StopError || end.Error == nil || end.Error.Code != protocol.CodeBusy {
		t.Fatalf("b1's turn_end %s %+v, want error busy", end.StopReason, end.Error)
	}
	if w := waiting(t, s.metrics); w != 1 {
		t.Errorf("%v model calls waiting after the refusal, want 1", w)
	}

	m.gate <- struct{}{} // c1 ends
	called(t, m, "a1")
	m.gate <- struct{}{}
	ends(t, recA, protocol.StopEndTurn, "ok")
	close(m.gate)
	send(t, s, b, "b2", nil)
	if got, want := history(called(t, m, "b2")), "user:b1 assistant: user:b2"; got != want {
		t.Errorf("b2's history %q, want %q", got, want)
	}
	ends(t, recB, protocol.StopEndTurn, "ok")
}

// TestWaitingTurnCancelled stops turns that wait for their model call:
// one its send opened, and one opened by its conversation's runner after
// the turn before it. Each ends cancelled at once, without calling the
// model, and the one queued behind the first waits for its own turn.
func TestWaitingTurnCancelled(t *testing.T) {
	ctx := context.Background()
	m := gateModel{calls: make(chan convo.ModelRequest, 10), gate: make(chan struct{})}
	s := openLimited(t, m, nil)
	send(t, s, "", "c1", nil)
	called(t, m, "c1") // holds the one call allowed
	rec := newRecorder(100)
	a := send(t, s, "", "a1", rec).Conversation
	send(t, s, a, "a2", nil)
	awaitWaiting(t, s.metrics, 1, m.calls)
	for _, turn := range []string{"a1", "a2"} {
		if err := s.Cancel(ctx, "u1", a); err != nil {
			t.Fatal(err)
		}
		ends(t, rec, protocol.StopCancelled, "")
		if turn == "a1" {
			// a2 starts, and waits too.
			awaitWaiting(t, s.metrics, 1, m.calls)
		}
	}
	awaitWaiting(t, s.metrics, 0, m.calls)

	// The waits that ended took no call: once c1's ends, a3's runs, with
	// the whole history.
	close(m.gate)
	send(t, s, a, "a3", nil)
	if got, want := history(called(t, m, "a3")), "user:a1 assistant: user:a2 assistant: user:a3"; got != want {
		t.Errorf("a3's history %q, want %q", got, want)
	}
	ends(t, rec, protocol.StopEndTurn, "ok")
}

// TestWaitingTurnDeleted deletes the conversation of a turn that waits
// for its model call: the wait ends at once, and the model is never
// called for it.
func TestWaitingTurnDeleted(t *testing.T) {
	ctx := context.Background()
	m := gateModel{calls: make(chan convo.ModelRequest, 10), gate: make(chan struct{})}
	s := openLimited(t, m, nil)
	send(t, s, "", "c1", nil)
	called(t, m, "c1")
	rec := newRecorder(100)
	a := send(t, s, "", "a1", rec).Conversation
	awaitWaiting(t, s.metrics, 1, m.calls)
	if err := s.Delete(ctx, "u1", a); err != nil {
		t.Fatal(err)
	}
	awaitWaiting(t, s.metrics, 0, m.calls)
	close(m.gate)
	if err := s.WaitTurns(ctx); err != nil {
		t.Fatal(err)
	}
	if len(m.calls) > 0 {
		t.Fatalf("the model was called for %q of a deleted conversation", lastText(<-m.calls))
	}
}

// TestApprovalHoldsNoModelCall allows one model call at once while an
// agent's turn waits for a person to approve a tool call: the turn holds
// no call meanwhile, so another conversation's turn runs; once approved,
// the agent's turn calls the model again and ends.
func TestApprovalHoldsNoModelCall(t *testing.T) {
	ctx := context.Background()
	s := openLimited(t, sameCallModel{}, callAgents{})
	conv, err := s.Create(ctx, "u1", &protocol.Create{Agent: "approving"})
	if err != nil {
		t.Fatal(err)
	}
	recA := newRecorder(100)
	send(t, s, conv.ID, "go", recA)
	recA.until(t, protocol.EventToolCall)
	// A plain conversation's turn: sameCallModel answers it with a tool
	// use, which ends it (it has no agent to run tools).
	recB := newRecorder(100)
	send(t, s, "", "hi", recB)
	ends(t, recB, protocol.StopToolUse, "")
	if err := s.Approve(ctx, "u1", &protocol.Approve{Conversation: conv.ID, Call: "call-1", Approved: true}); err != nil {
		t.Fatal(err)
	}
	ends(t, recA, protocol.StopEndTurn, "done")
}

// TestWaitingTurnDrained drains the gateway while a turn waits for its
// model call: the drain lets it run once the call before it ends, as it
// lets running turns finish.
func TestWaitingTurnDrained(t *testing.T) {
	m := gateModel{calls: make(chan convo.ModelRequest, 10), gate: make(chan struct{})}
	s := openLimited(t, m, nil)
	send(t, s, "", "c1", nil)
	called(t, m, "c1")
	rec := newRecorder(100)
	send(t, s, "", "a1", rec)
	awaitWaiting(t, s.metrics, 1, m.calls)
	drained := make(chan error, 1)
	go func() { drained <- s.Drain(context.Background()) }()
	m.gate <- struct{}{} // c1 ends
	called(t, m, "a1")
	m.gate <- struct{}{}
	ends(t, rec, protocol.StopEndTurn, "ok")
	if err := <-drained; err != nil {
		t.Fatal(err)
	}
}

// TestWaitingTurnClosed closes the gateway while a turn waits for its
// model call behind one that does not end with its context: the waiting
// turn ends interrupted at once, without calling the model (which would
// have said "a").
func TestWaitingTurnClosed(t *testing.T) {
	m := stubbornModel{gate: make(chan struct{})}
	s := openLimited(t, m, nil)
	recC := newRecorder(100)
	send(t, s, "", "c1", recC)
	recC.until(t, protocol.EventDelta)
	rec := newRecorder(100)
	send(t, s, "", "a1", rec)
	awaitWaiting(t, s.metrics, 1, nil)
	closed := make(chan error, 1)
	go func() { closed <- s.Close(context.Background()) }()
	ends(t, rec, protocol.StopInterrupted, "")
	close(m.gate)
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
}

// TestModelCallsPerGateway runs two gateways on one NATS server (cluster
// mode), each allowing one model call at once. The bound is each
// gateway's own: while a holds its call, b's turn calls the model; a's
// next turn waits, holding its conversation's lease, and a cancel made
// through b ends it cancelled without calling the model.
func TestModelCallsPerGateway(t *testing.T) {
	ctx := context.Background()
	srv := natstest.Start(t)
	m := gateModel{calls: make(chan convo.ModelRequest, 10), gate: make(chan struct{})}
	open := func(node string) (*convo.Service, *metrics.Metrics) {
		st, err := jetlog.OpenStore(ctx, srv.URL(), jetlog.StoreOptions{Node: node, Logger: testLogger(t)})
		if err != nil {
			t.Fatal(err)
		}
		reg := metrics.New()
		s, err := convo.New(st, m, convo.Config{DefaultModel: "test-model", Logger: testLogger(t), Metrics: reg, MaxModelCalls: 1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close(ctx) })
		return s, reg
	}
	a, regA := open("a")
	b, _ := open("b")
	send(t, a, "", "x1", nil)
	called(t, m, "x1")
	send(t, b, "", "y1", nil)
	called(t, m, "y1")
	rec := newRecorder(100)
	z := send(t, a, "", "z1", rec).Conversation
	awaitWaiting(t, regA, 1, m.calls)
	if err := b.Cancel(ctx, "u1", z); err != nil {
		t.Fatal(err)
	}
	ends(t, rec, protocol.StopCancelled, "")
	close(m.gate)
	if err := a.WaitTurns(ctx); err != nil {
		t.Fatal(err)
	}
	if len(m.calls) > 0 {
		t.Fatalf("the model was called for %q", lastText(<-m.calls))
	}
}
