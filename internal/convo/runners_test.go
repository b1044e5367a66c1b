package convo_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/convo/boltlog"
	"github.com/chatgateway/gateway/internal/jetlog"
	"github.com/chatgateway/gateway/internal/jetlog/natstest"
	"github.com/chatgateway/gateway/protocol"
)

// gateModel reports each call's request on calls, then answers "ok" once
// gate lets it (a value sent, or closed), or ends with its context.
type gateModel struct {
	calls chan convo.ModelRequest
	gate  chan struct{}
}

// lastText is the text of the last message of req's history.
func lastText(req convo.ModelRequest) string { return req.History[len(req.History)-1].Text }

func (m gateModel) Stream(ctx context.Context, req convo.ModelRequest, emit func(convo.Chunk)) (convo.Result, error) {
	m.calls <- req
	select {
	case <-m.gate:
	case <-ctx.Done():
		return convo.Result{}, context.Cause(ctx)
	}
	emit(convo.Chunk{Kind: convo.ChunkText, Text: "ok"})
	return convo.Result{StopReason: protocol.StopEndTurn}, nil
}

// hookedStore is a jetlog Store (a Leaser, a Canceller, a
// DeleteNotifier) whose Meta is meta's.
type hookedStore struct {
	*jetlog.Store
	meta *metaHookLog
}

func (h hookedStore) Meta(ctx context.Context, id string) (*convo.Meta, error) {
	return h.meta.Meta(ctx, id)
}

// TestOneRunnerWhenIdleHubDropped lands a hub's release between the end
// of its runner, which a send's kick asked to look again, and that
// runner's kick of the next: the conversation has no subscriber, nothing
// holds the hub, and no runner is in progress just then. The hub must
// stay until the kicked runner holds it: a conversation has one runner
// at a time. The hub was dropped, the runner kicked on it anyway, and
// the next send (here, its kick) started a second runner on a new hub
// of the same conversation: both ran the open turn, the model was called
// twice for it. In cluster mode the lease did not stop the second: a
// gateway takes a lease it holds.
func TestOneRunnerWhenIdleHubDropped(t *testing.T) {
	for _, tc := range []struct {
		name string
		// read is the read of the metadata, once armed, where the
		// runner that looks again after the first turn finds nothing
		// to run: the first, or with a lease the second (the first is
		// the lease holder's check for a turn left open).
		read int64
		open func(t *testing.T, hooked *metaHookLog) convo.Log
	}{
		{"bbolt", 1, func(t *testing.T, hooked *metaHookLog) convo.Log {
			l, err := boltlog.Open(filepath.Join(t.TempDir(), "gateway.db"), boltlog.Options{})
			if err != nil {
				t.Fatal(err)
			}
			hooked.Log = l
			return hooked
		}},
		{"jetlog", 2, func(t *testing.T, hooked *metaHookLog) convo.Log {
			srv := natstest.Start(t)
			st, err := jetlog.OpenStore(context.Background(), srv.URL(), jetlog.StoreOptions{Node: "a", Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			hooked.Log = st
			return hookedStore{Store: st, meta: hooked}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) { oneRunnerWhenIdleHubDropped(t, tc.read, tc.open) })
	}
}

func oneRunnerWhenIdleHubDropped(t *testing.T, read int64, open func(*testing.T, *metaHookLog) convo.Log) {
	ctx := context.Background()
	m := gateModel{calls: make(chan convo.ModelRequest, 10), gate: make(chan struct{})}
	var armed atomic.Bool
	var reads atomic.Int64
	hooked := &metaHookLog{at: func(context.Context, string) bool { return armed.Load() && reads.Add(1) == read }}
	s, err := convo.New(open(t, hooked), m, convo.Config{DefaultModel: "test-model", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(ctx) })
	first := send(t, s, "", "one", nil)
	id := first.Conversation
	if got := lastText(<-m.calls); got != "one" {
		t.Fatalf("the model was called for %q, want the first turn", got)
	}
	dropped := make(chan bool, 1)
	hooked.hook.Set(func() {
		// The send opens its turn; its kick finds the runner in
		// progress and asks it to look again.
		send(t, s, id, "two", nil)
		held := make(chan struct{})
		go func() { dropped <- s.DropWhenNotRunning(id, held) }()
		<-held
	})
	armed.Store(true)
	m.gate <- struct{}{} // the first turn ends
	if got := lastText(<-m.calls); got != "two" {
		t.Fatalf("the model was called for %q, want the second turn", got)
	}
	if <-dropped {
		t.Error("the hub was dropped between its runner's end and the kick of the next")
	}
	if s.KickConversation(id) {
		t.Error("a second runner started on the conversation while its turn runs")
	}
	close(m.gate)
	if err := s.WaitTurns(ctx); err != nil {
		t.Fatal(err)
	}
	for len(m.calls) > 0 {
		t.Errorf("the model was called again for %q", lastText(<-m.calls))
	}
	var ends int
	frames, _, err := s.Events(ctx, "u1", id, time.Time{}, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range frames {
		var ev protocol.Event
		if err := json.Unmarshal(f, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Type == protocol.EventDelta || ev.Type == protocol.EventTurnEnd {
			ends++
		}
	}
	if ends != 4 {
		t.Errorf("the conversation has %d deltas and turn_ends, want 4: one of each per turn", ends)
	}
}
