package convo_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/convo/boltlog"
	"github.com/chatgateway/gateway/internal/convo/logtest"
	"github.com/chatgateway/gateway/protocol"
)

// deleteHookLog is the file's Log, which runs before once, right before
// the next Delete removes the conversation, and hook once, right after
// the next Delete has removed it: the Service has not yet stopped its
// turn nor dropped its hub.
type deleteHookLog struct {
	convo.Log
	before, hook logtest.Hook
}

func (l *deleteHookLog) Delete(ctx context.Context, id, owner string) (time.Time, error) {
	l.before.Run()
	created, err := l.Log.Delete(ctx, id, owner)
	if err == nil {
		l.hook.Run()
	}
	return created, err
}

// TestRecreatedDuringDelete deletes a conversation whose turn runs with a
// message queued behind it, and in the delete's last moment (removed from
// the log, its hub not dropped yet) creates it again under its id and
// sends there. The new conversation's send, subscriber and turn are its
// own: its subscriber is not told that it is gone, and its turn runs on
// its own hub, storing its reply, whatever the old turn's runner does once
// it stops. They went to the old conversation's hub, which the delete
// then dropped: the new subscriber was told the conversation was gone,
// and the old runner, kicked by the queued message, ran the new
// conversation's turn.
func TestRecreatedDuringDelete(t *testing.T) {
	ctx := context.Background()
	m := stubbornModel{gate: make(chan struct{})}
	var hooked *deleteHookLog
	s := openOn(t, filepath.Join(t.TempDir(), "gateway.db"), m, func(l convo.Log) convo.Log {
		hooked = &deleteHookLog{Log: l}
		return hooked
	})
	const id = "reused"
	if _, err := s.Create(ctx, "u1", &protocol.Create{Conversation: id}); err != nil {
		t.Fatal(err)
	}
	old := newRecorder(100)
	send(t, s, id, "one", old)
	for ev := old.next(t); ev.Type != protocol.EventDelta; ev = old.next(t) {
	}
	send(t, s, id, "two", nil) // queued behind the running turn

	fresh := newRecorder(100)
	var sent *protocol.Ack
	hooked.hook.Set(func() {
		if _, err := s.Create(ctx, "u1", &protocol.Create{Conversation: id}); err != nil {
			t.Error(err)
			return
		}
		sent = send(t, s, id, "three", fresh)
	})
	if err := s.Delete(ctx, "u1", id); err != nil {
		t.Fatal(err)
	}
	close(m.gate)
	if err := s.WaitTurns(ctx); err != nil {
		t.Fatal(err)
	}

	// Every event is dispatched before the append that stored it returns.
	var got []*protocol.Event
	for len(fresh.ch) > 0 {
		got = append(got, fresh.next(t))
	}
	if len(got) < 4 || got[0].Type != protocol.EventMessage || got[1].Type != protocol.EventTurnStart || got[len(got)-1].Type != protocol.EventTurnEnd {
		t.Fatalf("the new conversation's subscriber got %s, want its message, turn_start, reply and turn_end", kinds(got))
	}
	end := got[len(got)-1]
	if end.Turn != sent.Message.Turn || end.StopReason != protocol.StopEndTurn || end.Message.Text != "ab" {
		t.Fatalf("turn_end %+v, want the new turn %s ended with its own reply \"ab\"", end, sent.Message.Turn)
	}
	frames, _, err := s.Events(ctx, "u1", id, time.Time{}, 0, 100)
	if err != nil || len(frames) != len(got) {
		t.Fatalf("the new log holds %d events (%v), its subscriber got %d", len(frames), err, len(got))
	}
	for ev := old.next(t); ev.Type != "gone"; ev = old.next(t) {
		if ev.Seq > 4 {
			t.Fatalf("the old conversation's subscriber got %s %d", ev.Type, ev.Seq)
		}
	}
	if len(old.ch) != 0 {
		t.Fatalf("the old conversation's subscriber got %d frames after it was told it is gone", len(old.ch))
	}
}

// TestDeleteOfRecreated deletes a conversation that another client
// deletes and creates again under its id, and subscribes to, while the
// delete is on its way to the Log: the delete removes the new
// conversation, so its subscriber is told that it is gone. The Service
// read the creation time before the delete reached the Log, found the
// old conversation's, and kept the new one's hub, whose subscriber went
// on waiting on a deleted conversation.
func TestDeleteOfRecreated(t *testing.T) {
	ctx := context.Background()
	var hooked *deleteHookLog
	s := openOn(t, filepath.Join(t.TempDir(), "gateway.db"), &scriptModel{}, func(l convo.Log) convo.Log {
		hooked = &deleteHookLog{Log: l}
		return hooked
	})
	const id = "reused"
	if _, err := s.Create(ctx, "u1", &protocol.Create{Conversation: id}); err != nil {
		t.Fatal(err)
	}
	fresh := newRecorder(10)
	hooked.before.Set(func() {
		if err := s.Delete(ctx, "u1", id); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Create(ctx, "u1", &protocol.Create{Conversation: id}); err != nil {
			t.Fatal(err)
		}
		subscribeOK(t, s, &protocol.Subscribe{Conversation: id}, fresh)
	})
	if err := s.Delete(ctx, "u1", id); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Events(ctx, "u1", id, time.Time{}, 0, 10); !errors.Is(err, convo.ErrNotFound) {
		t.Fatalf("events of the conversation created again, after the delete: %v, want not found", err)
	}
	if ev := fresh.next(t); ev.Type != "gone" {
		t.Fatalf("the new conversation's subscriber got %s %d, want to be told it is gone", ev.Type, ev.Seq)
	}
}

// kinds lists evs' seqs and types.
func kinds(evs []*protocol.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = fmt.Sprintf("%d:%s", ev.Seq, ev.Type)
	}
	return out
}

// callAgents offers two agents whose tool "t" waits an hour for an
// answer: "approving" for an approval, "client" for a client's output.
type callAgents struct{}

func (callAgents) Agent(name, _, _ string) (*convo.Agent, bool) {
	tool := convo.AgentTool{ToolSpec: convo.ToolSpec{Name: "t"}, Kind: protocol.ToolKindHTTP, Approval: true, Timeout: time.Hour}
	if name == "client" {
		tool.Kind, tool.Approval = protocol.ToolKindClient, false
	}
	run := func(context.Context, convo.ToolCall, func(convo.ToolProgress)) convo.ToolOutcome {
		return convo.ToolOutcome{Status: protocol.ResultOK, Output: json.RawMessage(`{}`)}
	}
	return &convo.Agent{Name: name, Model: "m", Run: run, Tools: []convo.AgentTool{tool}}, name == "approving" || name == "client"
}

func (callAgents) Allowed(context.Context, string) bool { return true }

func (callAgents) List(context.Context) []protocol.AgentInfo { return nil }

// openCalls opens a Service with sameCallModel and callAgents on the Log
// that wrap makes of a file in t.TempDir, closed at the end of the test,
// and returns it with the file's Log.
func openCalls(t *testing.T, wrap func(convo.Log) convo.Log) (*convo.Service, convo.Log) {
	t.Helper()
	l, err := boltlog.Open(filepath.Join(t.TempDir(), "gateway.db"), boltlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := convo.New(wrap(l), sameCallModel{}, convo.Config{DefaultModel: "m", Agents: callAgents{}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s, l
}

// sameCallModel calls tool "t" with call id "call-1" in the first step of
// every turn, as a model whose ids are not unique may, and then answers
// "done".
type sameCallModel struct{}

func (sameCallModel) Stream(_ context.Context, req convo.ModelRequest, emit func(convo.Chunk)) (convo.Result, error) {
	if len(req.History[len(req.History)-1].ToolResults) > 0 {
		emit(convo.Chunk{Kind: convo.ChunkText, Text: "done"})
		return convo.Result{StopReason: protocol.StopEndTurn}, nil
	}
	return convo.Result{StopReason: protocol.StopToolUse, ToolUses: []convo.ToolUse{{ID: "call-1", Name: "t", Input: json.RawMessage(`{}`)}}}, nil
}

// TestRequestRacingRecreate deletes a conversation and creates it again
// under its id right after a send, approve or tool_output checked it, with
// a turn in the new one whose call has the same id: the request, checked
// against the deleted conversation (its owner, its agent), is not found,
// and stores nothing in the new one. It was stored there: a message the
// user sent to the conversation that was deleted, or an answer to
// another turn's call.
func TestRequestRacingRecreate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		agent string
		do    func(ctx context.Context, s *convo.Service, id string) error
	}{
		{"send", "", func(ctx context.Context, s *convo.Service, id string) error {
			_, err := s.Send(ctx, "u1", &protocol.Send{Conversation: id, Text: "to the old one"}, nil)
			return err
		}},
		{"approve", "approving", func(ctx context.Context, s *convo.Service, id string) error {
			return s.Approve(ctx, "u1", &protocol.Approve{Conversation: id, Call: "call-1", Approved: true})
		}},
		{"tool_output", "client", func(ctx context.Context, s *convo.Service, id string) error {
			return s.ToolOutput(ctx, "u1", &protocol.ToolOutput{Conversation: id, Call: "call-1", Output: json.RawMessage(`{}`)})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			var hooked *metaHookLog
			s, l := openCalls(t, func(l convo.Log) convo.Log {
				hooked = &metaHookLog{Log: l}
				return hooked
			})
			const id = "reused"
			// Each conversation has a turn waiting for the answer to
			// call-1 (a plain one, none).
			start := func() *recorder {
				t.Helper()
				if _, err := s.Create(ctx, "u1", &protocol.Create{Conversation: id, Agent: tc.agent}); err != nil {
					t.Fatal(err)
				}
				rec := newRecorder(100)
				send(t, s, id, "go", rec)
				if tc.agent != "" {
					rec.until(t, protocol.EventToolCall)
				}
				return rec
			}
			start()
			var fresh *recorder
			var stored uint64
			hooked.hook.Set(func() {
				if err := s.Delete(ctx, "u1", id); err != nil {
					t.Error(err)
					return
				}
				fresh = start()
				if tc.agent == "" {
					fresh.until(t, protocol.EventTurnEnd)
				}
				stored = metaOf(t, l, id).LastSeq
			})
			if err := tc.do(context.WithValue(ctx, hookKey{}, true), s, id); !errors.Is(err, convo.ErrNotFound) {
				t.Fatalf("%s checked before a delete and re-create: %v, want not found", tc.name, err)
			}
			if m := metaOf(t, l, id); m.LastSeq != stored {
				t.Fatalf("the new conversation went from seq %d to %d", stored, m.LastSeq)
			}
			if len(fresh.ch) != 0 {
				t.Fatalf("the new conversation's subscriber got %s", <-fresh.ch)
			}
		})
	}
}

// metaOf returns conversation id's metadata as l stores it.
func metaOf(t *testing.T, l convo.Log, id string) *convo.Meta {
	t.Helper()
	m, err := l.Meta(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestNoRunnerOnDeletedHub kicks the hub of a deleted conversation, as
// the runner of its stopped turn does when a message was queued behind
// that turn: no runner may start there. One would find the turns of a
// conversation created again under the id, which its own hub runs: in
// cluster mode it took the lease from under that hub's runner (a lease
// this gateway holds is its to take), and gave it up, so that the other
// lost it.
func TestNoRunnerOnDeletedHub(t *testing.T) {
	s := openTest(t, &scriptModel{})
	const id = "reused"
	if _, err := s.Create(context.Background(), "u1", &protocol.Create{Conversation: id}); err != nil {
		t.Fatal(err)
	}
	if s.KickDeleted(id) {
		t.Fatal("a runner started on the hub of a deleted conversation")
	}
}

// failHookLog is the file's Log, which runs hook once, right after an
// append fails with ErrNotFound: its caller has not gone on yet.
type failHookLog struct {
	convo.Log
	hook logtest.Hook
}

func (l *failHookLog) Append(ctx context.Context, a *convo.Append) (*convo.Appended, error) {
	res, err := l.Log.Append(ctx, a)
	if errors.Is(err, convo.ErrNotFound) {
		l.hook.Run()
	}
	return res, err
}

// TestCallWaiterOfRecreatedConversation deletes a conversation whose
// turn waits for the approval of call-1, and before that turn's runner
// is done with the call (its tool_result finds the conversation gone),
// creates it again under its id, with a turn whose model calls tool "t"
// with the same call id. The approval of the new call must reach the new
// turn, which then runs the tool and ends. The old runner's cleanup,
// keyed by the conversation and call ids only, removed the new turn's
// wait for answers: the approval was stored, and the turn never learned
// of it.
func TestCallWaiterOfRecreatedConversation(t *testing.T) {
	ctx := context.Background()
	var hooked *failHookLog
	s, _ := openCalls(t, func(l convo.Log) convo.Log {
		hooked = &failHookLog{Log: l}
		return hooked
	})
	const id = "reused"
	// start creates the conversation and sends a message, whose turn
	// then waits for the approval of call-1; rec gets its events.
	start := func(rec *recorder) error {
		if _, err := s.Create(ctx, "u1", &protocol.Create{Conversation: id, Agent: "approving"}); err != nil {
			return err
		}
		if _, err := s.Send(ctx, "u1", &protocol.Send{Conversation: id, Text: "go"}, rec); err != nil {
			return err
		}
		for {
			var ev protocol.Event
			if err := json.Unmarshal(<-rec.ch, &ev); err != nil || ev.Type == protocol.EventToolCall {
				return err
			}
		}
	}
	if err := start(newRecorder(100)); err != nil {
		t.Fatal(err)
	}
	fresh := newRecorder(100)
	recreated := make(chan error, 1)
	hooked.hook.Set(func() { recreated <- start(fresh) })
	if err := s.Delete(ctx, "u1", id); err != nil {
		t.Fatal(err)
	}
	if err := <-recreated; err != nil {
		t.Fatal(err)
	}
	if err := s.Approve(ctx, "u1", &protocol.Approve{Conversation: id, Call: "call-1", Approved: true}); err != nil {
		t.Fatal(err)
	}
	var got []*protocol.Event
	for _, ev := range fresh.until(t, protocol.EventTurnEnd) {
		if ev.Type == protocol.EventToolResult || ev.Type == protocol.EventTurnEnd {
			got = append(got, ev)
		}
	}
	if len(got) != 2 || got[0].Status != protocol.ResultOK || got[1].StopReason != protocol.StopEndTurn {
		t.Fatalf("the approved call of the new conversation ended with %s, want its tool_result ok and the turn's end", kinds(got))
	}
}
