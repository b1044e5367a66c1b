package logtest

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/limits"
	"github.com/chatgateway/gateway/protocol"
)

// testLongestTurnEnd stores the largest turn_end a Service makes, in a
// conversation whose metadata is about as large as it gets: a reply of
// convo.MaxReplyBytes in the turn_end, all in characters JSON escapes
// ('<' takes six bytes), a title of them as long as cluster mode allows
// (limits.MaxClusterTitleBytes), the longest model id, and as many turns
// queued behind it as cluster mode allows. A Log that cannot store it
// leaves the turn open for good.
func testLongestTurnEnd(t *testing.T, storage Storage) {
	h, _ := start(t, storage)
	m := newMeta("c1", "alice")
	m.Title, m.Model = strings.Repeat("<", limits.MaxClusterTitleBytes), strings.Repeat("m", limits.MaxModelIDBytes)
	if _, err := h.log.Append(ctx, &convo.Append{Conversation: "c1", New: m, Build: none}); err != nil {
		t.Fatal(err)
	}
	h.appendOK(t, "c1", userMessage("t0", "q"), &protocol.Event{Type: protocol.EventTurnStart, Turn: "t0"})
	for i := range limits.MaxClusterQueuedTurns {
		h.appendOK(t, "c1", userMessage(fmt.Sprintf("turn-%032d", i), "q"))
	}
	end := turnEnd("t0", strings.Repeat("<", convo.MaxReplyBytes/protocol.TextLen("<")))
	end.StopReason = protocol.StopMaxTokens
	res := h.appendOK(t, "c1", end)
	evs := readAll(t, h.log, "c1")
	got := evs[len(evs)-1]
	if got.Seq != res.Events[0].Seq || got.Message == nil || got.Message.Text != end.Message.Text {
		t.Fatalf("the turn_end read back is not the one stored: seq %d, want %d", got.Seq, res.Events[0].Seq)
	}
}

// testReplyOverLimit runs a Service on the Log, whose model answers with
// more than convo.MaxReplyBytes of HTML: the turn ends max_tokens, its
// deltas and its message hold the same text, cut at the limit, and the
// turn queued behind it runs.
func testReplyOverLimit(t *testing.T, storage Storage) {
	overLimit(t, storage, convo.ChunkText)
}

// testReasoningOverLimit is testReplyOverLimit with a model that reasons
// (thinking) for more than convo.MaxReplyBytes: the reasoning shares the
// reply's bound, so the turn ends max_tokens with the thinking events
// holding the reasoning cut at the limit, and no reply.
func testReasoningOverLimit(t *testing.T, storage Storage) {
	overLimit(t, storage, convo.ChunkThinking)
}

// testActionsOverLimit is testReplyOverLimit with a model that shows
// actions (the demo model's clock) of more than convo.MaxReplyBytes
// together: they share the reply's bound, so the turn ends max_tokens
// with the actions that fit stored, and no reply.
func testActionsOverLimit(t *testing.T, storage Storage) {
	overLimit(t, storage, convo.ChunkAction)
}

// overLimit runs a Service on the Log whose model's first answer is more
// than convo.MaxReplyBytes of HTML in chunks of kind, and checks that the
// turn ends max_tokens, that the events of kind hold the text cut at the
// limit (and the turn_end's message the deltas' text), and that the turn
// queued behind it runs.
func overLimit(t *testing.T, storage Storage, kind convo.ChunkKind) {
	svc, c := serve(t, storage, &markup{chunks: 400, kind: kind}, nil)
	sub := turnEnds{ch: make(chan *protocol.Event, 2)}
	for _, text := range []string{"A page of HTML, please.", "Thanks."} {
		if _, err := svc.Send(ctx, "alice", &protocol.Send{Conversation: c.ID, Text: text}, sub); err != nil {
			t.Fatal(err)
		}
	}
	first, second := sub.next(t), sub.next(t)
	if first.StopReason != protocol.StopMaxTokens || second.StopReason != protocol.StopEndTurn || second.Message.Text != "ok" {
		t.Fatalf("turns ended %s and %s (%q), want max_tokens and end_turn (\"ok\")", first.StopReason, second.StopReason, second.Message.Text)
	}
	var deltas, thinking strings.Builder
	var actions int // the bytes of the actions' inputs in their events
	var stored *protocol.Event
	for _, ev := range serviceEvents(t, svc, c.ID) {
		switch {
		case ev.Turn != first.Turn:
		case ev.Type == protocol.EventDelta:
			deltas.WriteString(ev.Text)
		case ev.Type == protocol.EventThinking:
			thinking.WriteString(ev.Text)
		case ev.Type == protocol.EventAction:
			actions += len(ev.Input)
		case ev.Type == protocol.EventTurnEnd:
			stored = ev
		}
	}
	if stored == nil || stored.Seq != first.Seq || stored.Message.Text != first.Message.Text {
		t.Fatalf("the turn_end a subscriber got is not the one stored")
	}
	if deltas.String() != first.Message.Text {
		t.Fatalf("the deltas hold %d bytes of text, the turn_end's message %d", deltas.Len(), len(first.Message.Text))
	}
	n := map[convo.ChunkKind]int{convo.ChunkText: protocol.TextLen(deltas.String()),
		convo.ChunkThinking: protocol.TextLen(thinking.String()), convo.ChunkAction: actions}[kind]
	// Cut at the limit, not before it: no character takes more than six
	// bytes, and an action is dropped whole, its name and output
	// counted too.
	slack := 6
	if kind == convo.ChunkAction {
		slack = 4000
	}
	if n > convo.MaxReplyBytes || n <= convo.MaxReplyBytes-slack {
		t.Fatalf("the turn's %v chunks take %d bytes in their events, want at most %d and more than %d", kind, n, convo.MaxReplyBytes, convo.MaxReplyBytes-slack)
	}
	if kind != convo.ChunkText && deltas.Len() > 0 {
		t.Fatalf("the turn has %d bytes of reply, want none", deltas.Len())
	}
}

// serviceEvents reads every event of alice's conversation id from svc,
// page by page (a page is bounded in bytes too).
func serviceEvents(t *testing.T, svc *convo.Service, id string) []*protocol.Event {
	t.Helper()
	var evs []*protocol.Event
	var after uint64
	for {
		frames, _, err := svc.Events(ctx, "alice", id, time.Time{}, after, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(frames) == 0 {
			return evs
		}
		for _, f := range frames {
			var ev protocol.Event
			if err := json.Unmarshal(f, &ev); err != nil {
				t.Fatal(err)
			}
			evs = append(evs, &ev)
			after = ev.Seq
		}
	}
}

// serve runs a Service with model on a Log that storage opens, closed at
// the end of the test, and creates a conversation of alice's: with the
// agent "a" of agents, unless agents is nil.
func serve(t *testing.T, storage Storage, model convo.Model, agents convo.Agents) (*convo.Service, *protocol.Conversation) {
	t.Helper()
	cfg := convo.Config{DefaultModel: "m", Logger: slog.New(slog.NewTextHandler(t.Output(), nil))}
	create := &protocol.Create{}
	if agents != nil {
		cfg.Agents, create.Agent = agents, "a"
	}
	svc, err := convo.New(storage(t)(t), model, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close(context.Background()) })
	c, err := svc.Create(ctx, "alice", create)
	if err != nil {
		t.Fatal(err)
	}
	return svc, c
}

// testToolInputOverLimit runs an agent's turn on the Log whose model asks
// for a tool with an input of more than convo.MaxReplyBytes: its
// tool_call would not fit in an append (in cluster mode, one NATS
// message), and would grow the turn past the reply's bound. The turn ends
// max_tokens with the step's text, no tool_call is stored and the tool
// does not run, and the turn queued behind it runs.
func testToolInputOverLimit(t *testing.T, storage Storage) {
	agents := &oneTool{}
	svc, c := serve(t, storage, toolWriter{}, agents)
	sub := turnEnds{ch: make(chan *protocol.Event, 2)}
	for _, text := range []string{"Write it all down.", "Thanks."} {
		if _, err := svc.Send(ctx, "alice", &protocol.Send{Conversation: c.ID, Text: text}, sub); err != nil {
			t.Fatal(err)
		}
	}
	first, second := sub.next(t), sub.next(t)
	if first.StopReason != protocol.StopMaxTokens || first.Message.Text != "Writing." || second.StopReason != protocol.StopEndTurn {
		t.Fatalf("turns ended %s (%q) and %s, want max_tokens (\"Writing.\") and end_turn", first.StopReason, first.Message.Text, second.StopReason)
	}
	for _, ev := range serviceEvents(t, svc, c.ID) {
		if ev.Type == protocol.EventToolCall || ev.Type == protocol.EventToolResult {
			t.Fatalf("a %s event of %d bytes of input is stored", ev.Type, len(ev.Input))
		}
	}
	if n := agents.runs.Load(); n != 0 {
		t.Fatalf("the tool ran %d times, want none", n)
	}
}

// toolWriter is a model that answers a message with tool results "ok",
// and any other with "Writing." and a call of the tool "t" whose input
// holds twice convo.MaxReplyBytes of text: more than a NATS message.
type toolWriter struct{}

func (toolWriter) Stream(_ context.Context, req convo.ModelRequest, emit func(convo.Chunk)) (convo.Result, error) {
	if len(req.History[len(req.History)-1].ToolResults) > 0 || req.History[len(req.History)-1].Text != "Write it all down." {
		emit(convo.Chunk{Kind: convo.ChunkText, Text: "ok"})
		return convo.Result{StopReason: protocol.StopEndTurn}, nil
	}
	emit(convo.Chunk{Kind: convo.ChunkText, Text: "Writing."})
	input, _ := json.Marshal(map[string]string{"text": strings.Repeat("x", 2*convo.MaxReplyBytes)}) // a map of strings always marshals
	return convo.Result{StopReason: protocol.StopToolUse, ToolUses: []convo.ToolUse{{ID: "w1", Name: "t", Input: input}}}, nil
}

// oneTool offers one agent, "a", whose tool "t" counts its runs.
type oneTool struct{ runs atomic.Int32 }

func (a *oneTool) Agent(name, _, _ string) (*convo.Agent, bool) {
	run := func(context.Context, convo.ToolCall, func(convo.ToolProgress)) convo.ToolOutcome {
		a.runs.Add(1)
		return convo.ToolOutcome{Status: protocol.ResultOK, Output: json.RawMessage(`{}`)}
	}
	return &convo.Agent{Name: name, Model: "m", MaxSteps: 4, Run: run,
		Tools: []convo.AgentTool{{ToolSpec: convo.ToolSpec{Name: "t"}, Kind: protocol.ToolKindHTTP, Timeout: time.Minute}}}, name == "a"
}

func (*oneTool) Allowed(context.Context, string) bool { return true }

func (*oneTool) List(context.Context) []protocol.AgentInfo { return nil }

// markup is a model whose first answer is chunks of kind (text,
// thinking, or actions with the text as their input) of HTML, 1,000 bytes
// each, 500 of them '<', '>' and '&' (3,500 bytes each in an event), as
// many as chunks says unless ctx ends
// first; its later answers are "ok".
type markup struct {
	chunks int
	kind   convo.ChunkKind
	calls  atomic.Int32
}

func (m *markup) Stream(ctx context.Context, _ convo.ModelRequest, emit func(convo.Chunk)) (convo.Result, error) {
	if m.calls.Add(1) > 1 {
		emit(convo.Chunk{Kind: convo.ChunkText, Text: "ok"})
		return convo.Result{StopReason: protocol.StopEndTurn}, nil
	}
	chunk := convo.Chunk{Kind: m.kind, Text: strings.Repeat("<b>x&y</b>", 100)}
	if m.kind == convo.ChunkAction {
		input, _ := json.Marshal(chunk.Text) // a string always marshals
		chunk = convo.Chunk{Kind: m.kind, Name: "echo", Input: input}
	}
	for range m.chunks {
		if err := ctx.Err(); err != nil {
			return convo.Result{}, err
		}
		emit(chunk)
	}
	return convo.Result{StopReason: protocol.StopEndTurn}, nil
}

// testAlternatingChunks runs a Service on the Log, whose model answers
// with 16,000 one-byte chunks, thinking and text in turn: each change of
// kind is an event of its own, so the events that wait while an append
// is in flight grow past a turn_end's size in their frames, though not
// in their text. The turn still ends end_turn, every chunk stored: the
// buffer hands an append no more than a turn_end holds.
func testAlternatingChunks(t *testing.T, storage Storage) {
	svc, c := serve(t, storage, alternating{chunks: 16000}, nil)
	sub := turnEnds{ch: make(chan *protocol.Event, 1)}
	if _, err := svc.Send(ctx, "alice", &protocol.Send{Conversation: c.ID, Text: "Think aloud."}, sub); err != nil {
		t.Fatal(err)
	}
	if end := sub.next(t); end.StopReason != protocol.StopEndTurn || end.Message.Text != strings.Repeat("b", 8000) {
		t.Fatalf("the turn ended %s (%+v) with %d bytes of text, want end_turn with 8000", end.StopReason, end.Error, len(end.Message.Text))
	}
}

// alternating is a model that answers with chunks one-byte chunks:
// thinking "a" and text "b" in turn.
type alternating struct{ chunks int }

func (m alternating) Stream(ctx context.Context, _ convo.ModelRequest, emit func(convo.Chunk)) (convo.Result, error) {
	for i := range m.chunks {
		if err := ctx.Err(); err != nil {
			return convo.Result{}, err
		}
		c := convo.Chunk{Kind: convo.ChunkThinking, Text: "a"}
		if i%2 == 1 {
			c = convo.Chunk{Kind: convo.ChunkText, Text: "b"}
		}
		emit(c)
	}
	return convo.Result{StopReason: protocol.StopEndTurn}, nil
}

// turnEnds is a subscriber that passes on the turn_end events it gets.
type turnEnds struct{ ch chan *protocol.Event }

func (s turnEnds) Send(f convo.Frame) bool {
	var ev protocol.Event
	if json.Unmarshal(f.Data, &ev) == nil && ev.Type == protocol.EventTurnEnd {
		s.ch <- &ev
	}
	return true
}

func (s turnEnds) SendWait(_ context.Context, f convo.Frame) error {
	s.Send(f)
	return nil
}

func (turnEnds) Gone(string) {}

// next returns the next turn_end. It gives up just before the test
// binary's deadline (go test -timeout), not at a time of its own.
func (s turnEnds) next(t *testing.T) *protocol.Event {
	t.Helper()
	var timeout <-chan time.Time
	if deadline, ok := t.Deadline(); ok {
		timeout = time.After(time.Until(deadline) - 5*time.Second)
	}
	select {
	case ev := <-s.ch:
		return ev
	case <-timeout:
		t.Fatal("gave up waiting for a turn_end")
		return nil
	}
}
