package convo_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

// historyBound is the MaxHistoryBytes of this file's tests.
const historyBound = 4096

// countingModel answers "ok" and counts its calls. For an agent's turn
// it first calls the tool "t", once per turn, with input ({} when nil).
type countingModel struct {
	input json.RawMessage
	calls atomic.Int64
}

func (m *countingModel) Stream(_ context.Context, req convo.ModelRequest, emit func(convo.Chunk)) (convo.Result, error) {
	m.calls.Add(1)
	last := req.History[len(req.History)-1]
	if req.Model == "bench" && len(last.ToolResults) == 0 {
		input := m.input
		if input == nil {
			input = json.RawMessage(`{}`)
		}
		return convo.Result{StopReason: protocol.StopToolUse, ToolUses: []convo.ToolUse{{ID: "c1", Name: "t", Input: input}}}, nil
	}
	emit(convo.Chunk{Text: "ok"})
	return convo.Result{StopReason: protocol.StopEndTurn}, nil
}

// openBounded opens a Service on bbolt with MaxHistoryBytes historyBound
// whose agent "bench" has the tool "t", which answers output once
// approved.
func openBounded(t *testing.T, m convo.Model, output json.RawMessage) *convo.Service {
	t.Helper()
	run := func(context.Context, convo.ToolCall, func(convo.ToolProgress)) convo.ToolOutcome {
		return convo.ToolOutcome{Status: protocol.ResultOK, Output: output}
	}
	s, err := convo.New(openBolt(t), m, convo.Config{MaxHistoryBytes: historyBound, Agents: benchAgents{run: run, approval: true}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s
}

// endsTooLong reads rec's events up to the next turn_end and checks that
// it is the one of a history too long.
func endsTooLong(t *testing.T, rec *recorder) {
	t.Helper()
	evs := rec.until(t, protocol.EventTurnEnd)
	if end := evs[len(evs)-1]; end.StopReason != protocol.StopError || end.Error == nil || end.Error.Code != protocol.CodeTooLarge {
		t.Fatalf("turn_end %s %+v, want error too_large", end.StopReason, end.Error)
	}
}

// TestHistoryBounded sends a conversation messages until its history
// passes MaxHistoryBytes: that turn ends at once, error too_large,
// without calling the model; its message stays stored, the next turn of
// the conversation ends the same way, and other conversations go on.
func TestHistoryBounded(t *testing.T) {
	m := &countingModel{}
	s := openBounded(t, m, nil)
	text := strings.Repeat("x", 1500)
	rec := newRecorder(100)
	conv := send(t, s, "", text+"1", rec).Conversation
	ends(t, rec, protocol.StopEndTurn, "ok")
	send(t, s, conv, text+"2", nil)
	ends(t, rec, protocol.StopEndTurn, "ok")
	send(t, s, conv, text+"3", nil) // about 4,700 bytes with the two before
	endsTooLong(t, rec)
	send(t, s, conv, "short", nil)
	endsTooLong(t, rec)
	if n := m.calls.Load(); n != 2 {
		t.Fatalf("the model was called %d times, want 2: not for a history over the bound", n)
	}
	h, err := s.History(context.Background(), "u1", conv, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Each turn_end stores its reply, empty for the refused ones.
	if n := len(h.Messages); n != 8 || h.Messages[4].Text != text+"3" || h.Messages[6].Text != "short" {
		t.Fatalf("the conversation holds %d messages, want 8 with the refused ones", n)
	}

	rec2 := newRecorder(100)
	send(t, s, "", "another", rec2)
	ends(t, rec2, protocol.StopEndTurn, "ok")
}

// TestAgentHistoryBounded runs an agent's turn whose tool call's input,
// or its result, is longer than MaxHistoryBytes: the turn itself ends
// well, though its next step reads its history back with that call and
// result stored (an approved call stores its result before the step goes
// on): a turn's own steps do not count. The next turn, whose history
// holds them, ends error too_large without calling the model, though its
// messages alone are short.
func TestAgentHistoryBounded(t *testing.T) {
	long := strings.Repeat("y", historyBound)
	for _, tc := range []struct {
		name          string
		input, output json.RawMessage
	}{
		{"output", nil, json.RawMessage(`"` + long + `"`)},
		{"input", json.RawMessage(`{"q":"` + long + `"}`), json.RawMessage(`"ok"`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := &countingModel{input: tc.input}
			s := openBounded(t, m, tc.output)
			conv, err := s.Create(context.Background(), "u1", &protocol.Create{Agent: "bench"})
			if err != nil {
				t.Fatal(err)
			}
			rec := newRecorder(100)
			send(t, s, conv.ID, "use the tool", rec)
			rec.until(t, protocol.EventToolCall)
			if err := s.Approve(context.Background(), "u1", &protocol.Approve{Conversation: conv.ID, Call: "c1", Approved: true}); err != nil {
				t.Fatal(err)
			}
			ends(t, rec, protocol.StopEndTurn, "ok")
			send(t, s, conv.ID, "again", nil)
			endsTooLong(t, rec)
			if n := m.calls.Load(); n != 2 {
				t.Fatalf("the model was called %d times, want 2: not for the turn whose history holds the long call", n)
			}
		})
	}
}

// sizedReply is how many bytes of text sizedModel writes a turn: counted
// once, with two short messages, one reply fits historyBound; counted
// twice it does not, nor do two replies.
const sizedReply = 2500

// sizedModel answers each turn of an agent's conversation with
// sizedReply bytes of text, in the way kind says: "reply" writes them,
// "reasoning" and "action" first reason or show an action as long,
// "steps" writes half of them, calls the tool "t", and writes the other
// half once it has the result.
type sizedModel struct{ kind string }

func (m sizedModel) Stream(_ context.Context, req convo.ModelRequest, emit func(convo.Chunk)) (convo.Result, error) {
	reply := strings.Repeat("r", sizedReply)
	first := len(req.History[len(req.History)-1].ToolResults) == 0
	switch {
	case m.kind == "steps" && first:
		emit(convo.Chunk{Text: reply[:sizedReply/2]})
		return convo.Result{StopReason: protocol.StopToolUse, ToolUses: []convo.ToolUse{{ID: "c1", Name: "t", Input: json.RawMessage(`{}`)}}}, nil
	case m.kind == "steps":
		reply = reply[sizedReply/2:]
	case m.kind == "reasoning":
		emit(convo.Chunk{Kind: convo.ChunkThinking, Text: reply})
	case m.kind == "action":
		emit(convo.Chunk{Kind: convo.ChunkAction, Name: "look", Input: json.RawMessage(`{}`), Output: json.RawMessage(`"` + reply + `"`)})
	}
	emit(convo.Chunk{Text: reply})
	return convo.Result{StopReason: protocol.StopEndTurn}, nil
}

// TestAgentHistoryCountedOnce runs turns of an agent's conversation
// whose replies take sizedReply bytes, made in one step or in two around
// a tool call, with reasoning or an action beside them: what the model
// is sent counts against MaxHistoryBytes once, whether the reply or the
// steps that replace it, and what it is not sent (reasoning, actions) not
// at all, so the second turn, whose history holds one reply, gets its
// turn. The third, whose history holds two, ends error too_large.
func TestAgentHistoryCountedOnce(t *testing.T) {
	for _, kind := range []string{"reply", "reasoning", "action", "steps"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			s := openBounded(t, sizedModel{kind}, json.RawMessage(`"ok"`))
			conv, err := s.Create(context.Background(), "u1", &protocol.Create{Agent: "bench"})
			if err != nil {
				t.Fatal(err)
			}
			rec := newRecorder(100)
			var sub convo.Subscriber = rec // the first send subscribes it
			for _, text := range []string{"first", "second"} {
				send(t, s, conv.ID, text, sub)
				sub = nil
				// The tool waits for its approval.
				end := rec.next(t)
				for ; end.Type != protocol.EventTurnEnd; end = rec.next(t) {
					if end.Type != protocol.EventToolCall {
						continue
					}
					if err := s.Approve(context.Background(), "u1", &protocol.Approve{Conversation: conv.ID, Call: end.Call, Approved: true}); err != nil {
						t.Fatal(err)
					}
				}
				if end.StopReason != protocol.StopEndTurn || len(end.Message.Text) != sizedReply {
					t.Fatalf("turn %q ended %s %+v with %d bytes of text, want end_turn with %d",
						text, end.StopReason, end.Error, len(end.Message.Text), sizedReply)
				}
			}
			send(t, s, conv.ID, "third", nil)
			endsTooLong(t, rec)
		})
	}
}
