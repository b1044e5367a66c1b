package convo_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"weak"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

// readCounter is a Log that counts the reads of conversations' events and
// messages, the reads of a history.
type readCounter struct {
	convo.Log
	reads atomic.Int64
}

func (l *readCounter) Events(ctx context.Context, id string, after, upTo uint64, limit int) ([][]byte, error) {
	l.reads.Add(1)
	return l.Log.Events(ctx, id, after, upTo, limit)
}

func (l *readCounter) Messages(ctx context.Context, id string, before uint64, limit, maxBytes int) ([]protocol.Message, bool, error) {
	l.reads.Add(1)
	return l.Log.Messages(ctx, id, before, limit, maxBytes)
}

// TestStepHistoryKept runs an agent's turn whose call waits for the
// user's approval: the step after it gets its history, whole, from what
// the hub kept, without reading the log.
func TestStepHistoryKept(t *testing.T) {
	counter := &readCounter{}
	s, id, sub := waitingTurn(t, func(l convo.Log) convo.Log { counter.Log = l; return counter })
	before := counter.reads.Load()
	if err := s.Approve(context.Background(), "u1", &protocol.Approve{Conversation: id, Call: "c1", Approved: true}); err != nil {
		t.Fatal(err)
	}
	if ev := sub.next(t); ev.Type != protocol.EventTurnEnd || ev.StopReason != protocol.StopEndTurn {
		t.Fatalf("got a %s event (stop reason %q, %+v), want the turn's end", ev.Type, ev.StopReason, ev.Error)
	}
	if n := counter.reads.Load() - before; n != 0 {
		t.Errorf("the step after the approval read the log %d times, want none: its history was kept", n)
	}
	noHistoryKept(t, s.Service)
}

// TestStepHistoryDroppedWithTurn cancels an agent's turn whose call
// waits for the user's approval: the history its hub kept for the next
// step goes with the turn.
func TestStepHistoryDroppedWithTurn(t *testing.T) {
	s, id, sub := waitingTurn(t, func(l convo.Log) convo.Log { return l })
	if err := s.Cancel(context.Background(), "u1", id); err != nil {
		t.Fatal(err)
	}
	if ev := sub.next(t); ev.Type != protocol.EventTurnEnd || ev.StopReason != protocol.StopCancelled {
		t.Fatalf("got a %s event (stop reason %q), want the turn's end, cancelled", ev.Type, ev.StopReason)
	}
	noHistoryKept(t, s.Service)
}

// waitingTurn opens a Service on the Log wrap makes of a bbolt log, and
// starts a turn of the agent "ask" (see askModel) in a new conversation
// whose call then waits for approval, with its history kept. It returns
// the Service, the conversation and its subscriber, which has passed on
// the tool_call.
func waitingTurn(t *testing.T, wrap func(convo.Log) convo.Log) (*testService, string, *callEvents) {
	t.Helper()
	model := &askModel{size: 100, texts: map[string]weak.Pointer[byte]{}}
	s := openConfigured(t, t.TempDir()+"/gateway.db", model, wrap, convo.Config{Agents: askAgents{}})
	c, err := s.Create(context.Background(), "u1", &protocol.Create{Agent: "ask"})
	if err != nil {
		t.Fatal(err)
	}
	sub := &callEvents{ch: make(chan *protocol.Event, 2)}
	send(t, s, c.ID, "000:"+strings.Repeat("x", 96), sub)
	if ev := sub.next(t); ev.Type != protocol.EventToolCall || ev.Status != protocol.CallAwaitingApproval {
		t.Fatalf("got a %s event (status %q), want a tool_call awaiting approval", ev.Type, ev.Status)
	}
	if s.KeptHistoryBytes() == 0 {
		t.Fatal("no history kept while the call waits")
	}
	return s, c.ID, sub
}

// noHistoryKept waits until no turn of s runs and checks that its hubs
// then keep no history of a step.
func noHistoryKept(t *testing.T, s *convo.Service) {
	t.Helper()
	if err := s.WaitTurns(context.Background()); err != nil {
		t.Fatal(err)
	}
	if kept := s.KeptHistoryBytes(); kept != 0 {
		t.Errorf("%d bytes of history kept once the turns ended", kept)
	}
}

// TestStepHistoryStale runs an agent's turn whose tool runs until the
// test lets it end, and meanwhile deletes the conversation from the log
// behind the Service's back (as a gateway that shares the log does,
// whose notice has not come yet), and makes it again under its id: the
// step after the call finds that the history its hub kept is not the
// conversation's, and ends the turn without calling the model.
func TestStepHistoryStale(t *testing.T) {
	for _, again := range []bool{false, true} {
		name := "deleted"
		if again {
			name = "deleted and made again"
		}
		t.Run(name, func(t *testing.T) {
			started, release := make(chan struct{}), make(chan struct{})
			run := func(context.Context, convo.ToolCall, func(convo.ToolProgress)) convo.ToolOutcome {
				close(started)
				<-release
				return convo.ToolOutcome{Status: protocol.ResultOK}
			}
			model := &countingModel{}
			s := openConfigured(t, t.TempDir()+"/gateway.db", model, func(l convo.Log) convo.Log { return l },
				convo.Config{Agents: benchAgents{run: run}})
			c, err := s.Create(context.Background(), "u1", &protocol.Create{Agent: "bench"})
			if err != nil {
				t.Fatal(err)
			}
			send(t, s, c.ID, "go", nil)
			<-started
			if s.KeptHistoryBytes() == 0 {
				t.Fatal("no history kept while the call runs")
			}
			if _, err := s.log.Delete(context.Background(), c.ID, "u1"); err != nil {
				t.Fatal(err)
			}
			if again {
				if _, err := s.Create(context.Background(), "u1", &protocol.Create{Conversation: c.ID, Agent: "bench"}); err != nil {
					t.Fatal(err)
				}
			}
			close(release)
			noHistoryKept(t, s.Service)
			if n := model.calls.Load(); n != 1 {
				t.Errorf("the model was called %d times, want once: not with the history of a conversation deleted", n)
			}
		})
	}
}
