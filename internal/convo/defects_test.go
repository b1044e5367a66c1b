package convo_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/convo/boltlog"
	"github.com/chatgateway/gateway/internal/convo/logtest"
	"github.com/chatgateway/gateway/protocol"
)

// stubbornModel emits "a", waits for gate (paying no attention to its
// context, as a model with a chunk already on its way does), emits "b"
// and ends.
type stubbornModel struct{ gate chan struct{} }

func (m stubbornModel) Stream(_ context.Context, _ convo.ModelRequest, emit func(convo.Chunk)) (convo.Result, error) {
	emit(convo.Chunk{Kind: convo.ChunkText, Text: "a"})
	<-m.gate
	emit(convo.Chunk{Kind: convo.ChunkText, Text: "b"})
	return convo.Result{StopReason: protocol.StopEndTurn}, nil
}

// TestDeleteDuringReply deletes a conversation while its reply streams:
// the chunk that comes after the delete finds the conversation gone, and
// the turn ends quietly, with no error logged for a user's action.
func TestDeleteDuringReply(t *testing.T) {
	ctx := context.Background()
	m := stubbornModel{gate: make(chan struct{})}
	s := openTest(t, m)
	rec := newRecorder(100)
	ack := send(t, s, "", "hi", rec)
	for ev := rec.next(t); ev.Type != protocol.EventDelta; ev = rec.next(t) {
	}
	if err := s.Delete(ctx, "u1", ack.Conversation); err != nil {
		t.Fatal(err)
	}
	close(m.gate)
	if err := s.WaitTurns(ctx); err != nil {
		t.Fatal(err)
	}
	if n := s.errorLogs.Load(); n != 0 {
		t.Fatalf("%d errors logged for a delete during a reply", n)
	}
	if f := <-rec.ch; string(f) != `{"type":"gone","conversation":"`+ack.Conversation+`"}` {
		t.Fatalf("after the delete the subscriber got %s", f)
	}
	if len(rec.ch) != 0 {
		t.Fatalf("%d more frames after the delete", len(rec.ch))
	}
}

// TestFailedTurnEndIsRetried fails every write of a turn_end for a while:
// a message sent meanwhile is stored and acked, and once storage works
// again the turn ends and the message is answered, with no restart.
func TestFailedTurnEndIsRetried(t *testing.T) {
	faults := &faultLog{failed: make(chan struct{}, 1)}
	m := &scriptModel{}
	s := openOn(t, filepath.Join(t.TempDir(), "gateway.db"), m, func(l convo.Log) convo.Log {
		faults.Log = l
		return faults
	})
	faults.set(func(drafts []convo.Draft) bool {
		for _, d := range drafts {
			if d.Event.Type == protocol.EventTurnEnd {
				return true
			}
		}
		return false
	})
	rec := newRecorder(100)
	ack := send(t, s, "", "one", rec)
	<-faults.failed
	<-faults.failed // a retry failed too
	second := send(t, s, ack.Conversation, "two", nil)
	if second.Message.Seq == 0 {
		t.Fatalf("second ack %+v", second)
	}
	faults.set(nil)
	first := rec.until(t, protocol.EventTurnEnd)
	if end := first[len(first)-1]; end.StopReason != protocol.StopEndTurn || end.Message.Text != "hello from the script" {
		t.Fatalf("first turn ended %+v", end)
	}
	evs := rec.until(t, protocol.EventTurnEnd)
	if evs[0].Type != protocol.EventTurnStart || evs[0].Turn != second.Message.Turn {
		t.Fatalf("after the first turn: %+v, want the second's turn_start", evs[0])
	}
	if end := evs[len(evs)-1]; end.StopReason != protocol.StopEndTurn {
		t.Fatalf("second turn ended %+v", end)
	}
	if n := len(m.requests()); n != 2 {
		t.Fatalf("the model was called %d times for 2 turns", n)
	}
}

// TestAckBeforeMessageEvent checks that the sender's ack is queued before
// the message event it acknowledges.
func TestAckBeforeMessageEvent(t *testing.T) {
	s := openTest(t, &scriptModel{})
	rec := newRecorder(100)
	ack := send(t, s, "", "hi", rec)
	rec.until(t, protocol.EventTurnEnd)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.acks) != 1 || rec.acks[0].before != 0 || rec.acks[0].ack.Message.ID != ack.Message.ID {
		t.Fatalf("acks %+v: want the send's ack, before any event", rec.acks)
	}
}

// TestFailedLastChunkEndsTurnUnavailable fails the write of a reply's
// last chunk after the model has finished: the turn ends with error
// unavailable and the text that was stored, not end_turn, which would
// present the cut reply as complete.
func TestFailedLastChunkEndsTurnUnavailable(t *testing.T) {
	faults := &faultLog{failed: make(chan struct{}, 1)}
	m := stubbornModel{gate: make(chan struct{})}
	s := openOn(t, filepath.Join(t.TempDir(), "gateway.db"), m, func(l convo.Log) convo.Log {
		faults.Log = l
		return faults
	})
	rec := newRecorder(100)
	send(t, s, "", "hi", rec)
	for ev := rec.next(t); ev.Type != protocol.EventDelta; ev = rec.next(t) {
	}
	faults.set(func(drafts []convo.Draft) bool {
		for _, d := range drafts {
			if d.Event.Type == protocol.EventDelta && d.Event.Text == "b" {
				return true
			}
		}
		return false
	})
	close(m.gate) // the model emits "b" and ends at once
	evs := rec.until(t, protocol.EventTurnEnd)
	end := evs[len(evs)-1]
	if end.StopReason != protocol.StopError || end.Error == nil || end.Error.Code != protocol.CodeUnavailable || end.Message.Text != "a" {
		t.Fatalf("turn_end %q (error %+v, text %q), want error unavailable with the stored text \"a\"", end.StopReason, end.Error, end.Message.Text)
	}
}

// metaHookLog is the file's Log, which runs hook once, right after the
// next Meta read for which at, given the read's context and id, is true:
// by default one made with a context that carries hookKey (a caller's
// check of the conversation, not the Service's own reads), the place
// where a concurrent call lands between the check and what follows it.
type metaHookLog struct {
	convo.Log
	at   func(ctx context.Context, id string) bool
	hook logtest.Hook
}

type hookKey struct{}

func (l *metaHookLog) Meta(ctx context.Context, id string) (*convo.Meta, error) {
	m, err := l.Log.Meta(ctx, id)
	if l.hooked(ctx, id) {
		l.hook.Run()
	}
	return m, err
}

func (l *metaHookLog) hooked(ctx context.Context, id string) bool {
	if l.at != nil {
		return l.at(ctx, id)
	}
	return ctx.Value(hookKey{}) != nil
}

// TestSubscribeRacingDelete deletes a conversation right after a
// subscribe checked it: the subscribe must fail as not found, and the
// subscriber must not get the events of a
// conversation another user creates next under the same id.
func TestSubscribeRacingDelete(t *testing.T) {
	ctx := context.Background()
	var hooked *metaHookLog
	s := openOn(t, filepath.Join(t.TempDir(), "gateway.db"), &scriptModel{}, func(l convo.Log) convo.Log {
		hooked = &metaHookLog{Log: l}
		return hooked
	})
	const id = "shared-name"
	if _, err := s.Create(ctx, "u1", &protocol.Create{Conversation: id}); err != nil {
		t.Fatal(err)
	}
	hooked.hook.Set(func() {
		if err := s.Delete(ctx, "u1", id); err != nil {
			t.Error(err)
		}
	})
	rec := newRecorder(100)
	err := s.Subscribe(context.WithValue(ctx, hookKey{}, true), "u1", &protocol.Subscribe{Conversation: id}, rec, func(*protocol.Subscribed) {})
	if !errors.Is(err, convo.ErrNotFound) {
		t.Errorf("a subscribe that raced a delete returned %v, want not found", err)
	}

	// Another user takes the id: u1's subscriber must see none of it.
	if _, err := s.Create(ctx, "u2", &protocol.Create{Conversation: id}); err != nil {
		t.Fatal(err)
	}
	other := newRecorder(100)
	if _, err := s.Send(ctx, "u2", &protocol.Send{Conversation: id, Text: "private"}, other); err != nil {
		t.Fatal(err)
	}
	other.until(t, protocol.EventTurnEnd)
	if len(rec.ch) != 0 {
		t.Fatalf("u1's subscriber to the deleted conversation got %d frames of u2's, the first %s", len(rec.ch), <-rec.ch)
	}
}

// appendHookLog is the file's Log, which runs hook once, right after it
// stores the next append with an event of type typ: its caller has not
// gone on yet (the runner that ended a turn is still in progress, a send
// has not kicked).
type appendHookLog struct {
	convo.Log
	typ  string
	hook logtest.Hook
}

func (l *appendHookLog) Append(ctx context.Context, a *convo.Append) (*convo.Appended, error) {
	var found bool
	hooked := *a
	hooked.Build = func(m *convo.Meta) ([]convo.Draft, error) {
		drafts, err := a.Build(m)
		found = false
		for _, d := range drafts {
			found = found || d.Event.Type == l.typ
		}
		return drafts, err
	}
	res, err := l.Log.Append(ctx, &hooked)
	if err != nil || !found {
		return res, err
	}
	l.hook.Run()
	return res, err
}

// TestCancelBetweenTurns sends a message and cancels its turn right
// after the turn before stored its turn_end, while that turn's runner
// is still in progress: the cancel, answered, must end the new turn
// "cancelled", not go to the runner that is finishing.
func TestCancelBetweenTurns(t *testing.T) {
	ctx := context.Background()
	var hooked *appendHookLog
	s := openOn(t, filepath.Join(t.TempDir(), "gateway.db"), &scriptModel{}, func(l convo.Log) convo.Log {
		hooked = &appendHookLog{Log: l, typ: protocol.EventTurnEnd}
		return hooked
	})
	rec := newRecorder(100)
	var second *protocol.Ack
	ready := make(chan string)
	hooked.hook.Set(func() {
		id := <-ready
		second = send(t, s, id, "two", nil)
		if err := s.Cancel(ctx, "u1", id); err != nil {
			t.Error(err)
		}
	})
	first := send(t, s, "", "one", rec)
	ready <- first.Conversation
	rec.until(t, protocol.EventTurnEnd)
	evs := rec.until(t, protocol.EventTurnEnd)
	if end := evs[len(evs)-1]; end.Turn != second.Message.Turn || end.StopReason != protocol.StopCancelled {
		t.Fatalf("the turn cancelled after its send ended %q (turn %s), want cancelled (turn %s)", end.StopReason, end.Turn, second.Message.Turn)
	}
}

// approvalAgents offers one agent, "careful", whose tool "t" waits for
// an approval for at most a nanosecond; runs counts the tool's runs.
type approvalAgents struct{ runs *atomic.Int64 }

func (a approvalAgents) Agent(name, _, _ string) (*convo.Agent, bool) {
	run := func(context.Context, convo.ToolCall, func(convo.ToolProgress)) convo.ToolOutcome {
		a.runs.Add(1)
		return convo.ToolOutcome{Status: protocol.ResultOK, Output: json.RawMessage(`{"ok":true}`)}
	}
	return &convo.Agent{Name: name, Model: "m", MaxSteps: 10, Run: run, Tools: []convo.AgentTool{
		{ToolSpec: convo.ToolSpec{Name: "t"}, Kind: protocol.ToolKindHTTP, Approval: true, Timeout: time.Nanosecond}}}, name == "careful"
}

func (approvalAgents) Allowed(context.Context, string) bool { return true }

func (approvalAgents) List(context.Context) []protocol.AgentInfo { return nil }

// errHeld refuses the append resultHookLog holds back.
var errHeld = errors.New("held back for the hook")

// resultHookLog is the file's Log, which holds back the next tool_result
// with status status, runs hook once and only then stores it: what hook
// stores lands just as the wait timed out (status timeout), or just as
// the call ended.
type resultHookLog struct {
	convo.Log
	status string
	hook   logtest.Hook
}

func (l *resultHookLog) Append(ctx context.Context, a *convo.Append) (*convo.Appended, error) {
	var hook func()
	held := *a
	held.Build = func(m *convo.Meta) ([]convo.Draft, error) {
		drafts, err := a.Build(m)
		for _, d := range drafts {
			if d.Event.Type == protocol.EventToolResult && d.Event.Status == l.status {
				hook = l.hook.Take()
			}
		}
		if hook != nil {
			return nil, errHeld
		}
		return drafts, err
	}
	res, err := l.Log.Append(ctx, &held)
	if !errors.Is(err, errHeld) {
		return res, err
	}
	hook()
	return l.Log.Append(ctx, a)
}

// TestApprovalAsWaitTimesOut approves a call just as its wait times out,
// before the timeout's tool_result is stored: the approval, accepted,
// wins, and the tool runs.
func TestApprovalAsWaitTimesOut(t *testing.T) {
	ctx := context.Background()
	l := openBolt(t)
	hooked := &resultHookLog{Log: l, status: protocol.ResultTimeout}
	var runs atomic.Int64
	s, conv := agentConversation(t, hooked, approvalAgents{&runs}, "careful")
	hooked.hook.Set(func() {
		if err := s.Approve(ctx, "u1", &protocol.Approve{Conversation: conv.ID, Call: "t1", Approved: true}); err != nil {
			t.Errorf("an approval before the timeout was stored: %v", err)
		}
	})
	rec := newRecorder(100)
	send(t, s, conv.ID, "go", rec)
	var results []*protocol.Event
	for _, ev := range rec.until(t, protocol.EventTurnEnd) {
		if ev.Type == protocol.EventToolResult {
			results = append(results, ev)
		}
	}
	if len(results) != 1 || results[0].Status != protocol.ResultOK || runs.Load() != 1 {
		t.Fatalf("approved call: %d results (the first %q), the tool ran %d times; want it run once, ok", len(results), results[0].Status, runs.Load())
	}
}

// TestCancelBeforeKick cancels an agent's turn from another caller right
// after the send that opened it is stored, before the send kicks its
// runner: the cancel, answered, must end the turn "cancelled".
func TestCancelBeforeKick(t *testing.T) {
	ctx := context.Background()
	l, err := boltlog.Open(filepath.Join(t.TempDir(), "gateway.db"), boltlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	hooked := &appendHookLog{Log: l, typ: protocol.EventMessage}
	var runs atomic.Int64
	s, err := convo.New(hooked, &stepModel{calls: 1}, convo.Config{Agents: approvalAgents{&runs}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	conv, err := s.Create(ctx, "u1", &protocol.Create{Agent: "careful"})
	if err != nil {
		t.Fatal(err)
	}
	hooked.hook.Set(func() {
		if err := s.Cancel(ctx, "u1", conv.ID); err != nil {
			t.Error(err)
		}
	})
	rec := newRecorder(100)
	send(t, s, conv.ID, "go", rec)
	evs := rec.until(t, protocol.EventTurnEnd)
	if end := evs[len(evs)-1]; end.StopReason != protocol.StopCancelled {
		t.Fatalf("the turn cancelled before its kick ended %q, want cancelled", end.StopReason)
	}
}

// TestHubStartsWithoutLocks makes a new hub's first Meta read wait until
// an event of another conversation has reached that conversation's
// subscriber. A Log may report events (the Service's dispatch, which
// takes its locks) while holding locks that its Meta and Follow wait for:
// jetlog reports an append under its conversation's locks. A hub started
// under the Service's lock then deadlocked the gateway (cluster mode, a
// subscribe racing an append to the same conversation).
func TestHubStartsWithoutLocks(t *testing.T) {
	// The test's own calls carry hookKey; the read that starts a's hub
	// (made with a context of the Service's) does not.
	ctx := context.WithValue(context.Background(), hookKey{}, true)
	var hooked *metaHookLog
	s := openOn(t, filepath.Join(t.TempDir(), "gateway.db"), &scriptModel{}, func(l convo.Log) convo.Log {
		hooked = &metaHookLog{Log: l, at: func(ctx context.Context, id string) bool {
			return id == "a" && ctx.Value(hookKey{}) == nil
		}}
		return hooked
	})
	for _, id := range []string{"a", "b"} {
		if _, err := s.Create(ctx, "u1", &protocol.Create{Conversation: id}); err != nil {
			t.Fatal(err)
		}
	}
	recB := newRecorder(100)
	if err := s.Subscribe(ctx, "u1", &protocol.Subscribe{Conversation: "b"}, recB, func(*protocol.Subscribed) {}); err != nil {
		t.Fatal(err)
	}
	hooked.hook.Set(func() {
		sent := make(chan error, 1)
		go func() {
			_, err := s.PublishAction(ctx, "u1", "b", convo.Action{Name: "ping"})
			sent <- err
		}()
		if err := <-sent; err != nil {
			t.Error(err)
		}
		recB.until(t, protocol.EventAction)
	})
	if err := s.Subscribe(ctx, "u1", &protocol.Subscribe{Conversation: "a"}, newRecorder(100), func(*protocol.Subscribed) {}); err != nil {
		t.Fatal(err)
	}
}

// busyAgents offers one agent, "busy", whose tool "t" runs until its
// call is cancelled.
type busyAgents struct{ started chan<- struct{} }

func (a busyAgents) Agent(name, _, _ string) (*convo.Agent, bool) {
	run := func(ctx context.Context, _ convo.ToolCall, _ func(convo.ToolProgress)) convo.ToolOutcome {
		a.started <- struct{}{}
		<-ctx.Done()
		return convo.ToolOutcome{Status: protocol.ResultCancelled, Error: "cancelled"}
	}
	return &convo.Agent{Name: name, Model: "m", MaxSteps: 10, Run: run, Tools: []convo.AgentTool{
		{ToolSpec: convo.ToolSpec{Name: "t"}, Kind: protocol.ToolKindHTTP, Timeout: time.Hour}}}, name == "busy"
}

func (busyAgents) Allowed(context.Context, string) bool { return true }

func (busyAgents) List(context.Context) []protocol.AgentInfo { return nil }

// TestCallClosedByAnotherGateway stores a running call's "interrupted"
// result, as a gateway that takes a cut-off turn over does, just before
// the call's own result, as the call ends: the turn, which waits for no
// answer to that call, ends all the same.
func TestCallClosedByAnotherGateway(t *testing.T) {
	ctx := context.Background()
	l := openBolt(t)
	hooked := &resultHookLog{Log: l, status: protocol.ResultCancelled}
	started := make(chan struct{}, 1)
	s, conv := agentConversation(t, hooked, busyAgents{started}, "busy")
	hooked.hook.Set(func() {
		_, err := l.Append(ctx, &convo.Append{Conversation: conv.ID, Build: func(m *convo.Meta) ([]convo.Draft, error) {
			return []convo.Draft{{Event: &protocol.Event{Type: protocol.EventToolResult, Turn: m.OpenTurn.Turn, Call: "t1", Name: "t",
				Status: protocol.ResultInterrupted, ToolError: "the gateway stopped during the call"}}}, nil
		}})
		if err != nil {
			t.Error(err)
		}
	})
	rec := newRecorder(100)
	send(t, s, conv.ID, "go", rec)
	<-started
	if err := s.Cancel(ctx, "u1", conv.ID); err != nil {
		t.Fatal(err)
	}
	var results []*protocol.Event
	evs := rec.until(t, protocol.EventTurnEnd)
	for _, ev := range evs {
		if ev.Type == protocol.EventToolResult {
			results = append(results, ev)
		}
	}
	if len(results) != 1 || results[0].Status != protocol.ResultInterrupted || evs[len(evs)-1].StopReason != protocol.StopCancelled {
		t.Fatalf("%d tool_results, turn_end %s; want the one interrupted result, then the turn cancelled", len(results), evs[len(evs)-1].StopReason)
	}
}

// openBolt opens a Log on a bbolt file in t.TempDir.
func openBolt(t *testing.T) convo.Log {
	t.Helper()
	l, err := boltlog.Open(filepath.Join(t.TempDir(), "gateway.db"), boltlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// agentConversation opens a Service on l whose model calls the tool "t"
// once in a turn (stepModel), with agents, closed at the test's end, and
// creates a conversation with agent.
func agentConversation(t *testing.T, l convo.Log, agents convo.Agents, agent string) (*convo.Service, *protocol.Conversation) {
	t.Helper()
	s, err := convo.New(l, &stepModel{calls: 1}, convo.Config{Agents: agents, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	conv, err := s.Create(context.Background(), "u1", &protocol.Create{Agent: agent})
	if err != nil {
		t.Fatal(err)
	}
	return s, conv
}
