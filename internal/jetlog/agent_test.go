package jetlog_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/jetlog"
	"github.com/chatgateway/gateway/internal/jetlog/natstest"
	"github.com/chatgateway/gateway/protocol"
)

// toolModel calls the tool "lookup" in the first step of a turn and
// answers with text once it has the result.
type toolModel struct{}

func (toolModel) Stream(_ context.Context, req convo.ModelRequest, emit func(convo.Chunk)) (convo.Result, error) {
	if last := req.History[len(req.History)-1]; len(last.ToolResults) > 0 {
		emit(convo.Chunk{Kind: convo.ChunkText, Text: "found it"})
		return convo.Result{StopReason: protocol.StopEndTurn}, nil
	}
	return convo.Result{StopReason: protocol.StopToolUse,
		ToolUses: []convo.ToolUse{{ID: "u1", Name: "lookup", Input: json.RawMessage(`{"q":"x"}`)}}}, nil
}

// toolAgents offers one agent, "finder", whose tool "lookup" answers at
// once.
type toolAgents struct{}

func (toolAgents) Agent(name, _, _ string) (*convo.Agent, bool) {
	return &convo.Agent{Name: name, Model: "test", MaxSteps: 4,
		Tools: []convo.AgentTool{{ToolSpec: convo.ToolSpec{Name: "lookup"}, Kind: protocol.ToolKindHTTP, Timeout: time.Minute}},
		Run: func(context.Context, convo.ToolCall, func(convo.ToolProgress)) convo.ToolOutcome {
			return convo.ToolOutcome{Status: protocol.ResultOK, Output: json.RawMessage(`{"hit":true}`)}
		}}, name == "finder"
}
func (toolAgents) Allowed(context.Context, string) bool      { return true }
func (toolAgents) List(context.Context) []protocol.AgentInfo { return nil }

// TestAgentTurnAcrossGateways runs an agent's turn (a tool call, its
// result, the answer) on one gateway and follows it on the other.
func TestAgentTurnAcrossGateways(t *testing.T) {
	srv := natstest.Start(t)
	a := startNode(t, "a", srv.URL(), toolModel{}, 0)
	b := startNode(t, "b", srv.URL(), toolModel{}, 0)
	evs := agentTurn(t, a, b, "find x")
	seen := map[string]bool{}
	for _, ev := range evs {
		seen[ev.Type] = true
	}
	end := evs[len(evs)-1]
	if !seen[protocol.EventToolCall] || !seen[protocol.EventToolResult] || end.StopReason != protocol.StopEndTurn || end.Message.Text != "found it" {
		t.Fatalf("b saw %s", describe(evs))
	}
}

// agentTurn creates a conversation with the agent "finder" on a, sends
// it text there, and returns what a subscriber on b gets up to the
// turn's end, checked for gapless seqs and one turn at a time.
func agentTurn(t *testing.T, a, b *node, text string) []*protocol.Event {
	t.Helper()
	c, err := a.svc.Create(context.Background(), user, &protocol.Create{Agent: "finder"})
	if err != nil {
		t.Fatal(err)
	}
	sub := subscribe(t, b, c.ID, 0)
	send(t, a, c.ID, text, nil)
	evs := sub.waitFor(t, "the agent's turn", turnEnds(1))
	checkLog(t, evs)
	return evs
}

// heldToolModel is toolModel, except that once it has the tool's result
// it says "found " and then waits for its context's end.
type heldToolModel struct{}

func (heldToolModel) Stream(ctx context.Context, req convo.ModelRequest, emit func(convo.Chunk)) (convo.Result, error) {
	if last := req.History[len(req.History)-1]; len(last.ToolResults) > 0 {
		emit(convo.Chunk{Kind: convo.ChunkText, Text: "found "})
		<-ctx.Done()
		return convo.Result{}, ctx.Err()
	}
	return toolModel{}.Stream(ctx, req, emit)
}

// TestAgentNodeKilledMidStep cuts a gateway off NATS while its agent's
// turn streams the step after a tool call: the gateway that takes the
// conversation over (one started once the first died) ends the turn interrupted after two model calls, the
// second one's text kept.
func TestAgentNodeKilledMidStep(t *testing.T) {
	srv := natstest.Start(t)
	a := startNode(t, "a", srv.URL(), heldToolModel{}, longLease)
	b := startNode(t, "b", srv.URL(), toolModel{}, longLease)
	evs := cutMidTurn(t, srv, a, b, "finder", func(ev *protocol.Event) bool { return ev.Type == protocol.EventDelta && ev.Text == "found " },
		func() { startNode(t, "c", srv.URL(), toolModel{}, longLease) })
	checkLog(t, evs)
	if end := evs[len(evs)-1]; end.StopReason != protocol.StopInterrupted || end.Steps != 2 || end.Message.Text != "found " {
		t.Fatalf("the cut-off turn ended %s after %d steps with %q, want interrupted after 2 with %q: %s",
			end.StopReason, end.Steps, end.Message.Text, "found ", describe(evs))
	}
}

// askAgents offers one agent, "asker", whose client tool "lookup" waits
// an hour for its output.
type askAgents struct{}

func (askAgents) Agent(name, _, _ string) (*convo.Agent, bool) {
	return &convo.Agent{Name: name, Model: "test", MaxSteps: 4,
		Tools: []convo.AgentTool{{ToolSpec: convo.ToolSpec{Name: "lookup"}, Kind: protocol.ToolKindClient, Timeout: time.Hour}}}, name == "asker"
}
func (askAgents) Allowed(context.Context, string) bool      { return true }
func (askAgents) List(context.Context) []protocol.AgentInfo { return nil }

// closeFailsOnce is a Store whose first append of "interrupted" tool
// results fails, as storage that cannot write for a moment does.
type closeFailsOnce struct {
	*jetlog.Store
	failed atomic.Bool
}

func (s *closeFailsOnce) Append(ctx context.Context, a *convo.Append) (*convo.Appended, error) {
	fa := *a
	fa.Build = func(m *convo.Meta) ([]convo.Draft, error) {
		drafts, err := a.Build(m)
		if err == nil && len(drafts) > 0 && drafts[0].Event.Status == protocol.ResultInterrupted && s.failed.CompareAndSwap(false, true) {
			return nil, fmt.Errorf("%w: injected", convo.ErrUnavailable)
		}
		return drafts, err
	}
	return s.Store.Append(ctx, &fa)
}

// TestAgentNodeKilledMidCallStoreFails cuts a gateway off NATS while its
// agent's turn waits for a client's tool output; the gateway that takes
// the conversation over fails once to store the call's "interrupted"
// result: it stores it again, and only then the turn_end.
func TestAgentNodeKilledMidCallStoreFails(t *testing.T) {
	srv := natstest.Start(t)
	opts := jetlog.Options{LeaseTTL: longLease, Timeout: time.Second}
	plain := func(st *jetlog.Store) convo.Log { return st }
	a := startNodeOn(t, "a", srv.URL(), toolModel{}, opts, askAgents{}, plain)
	b := startNodeOn(t, "b", srv.URL(), toolModel{}, opts, askAgents{}, plain)
	evs := cutMidTurn(t, srv, a, b, "asker", func(ev *protocol.Event) bool { return ev.Type == protocol.EventToolCall }, func() {
		startNodeOn(t, "c", srv.URL(), toolModel{}, opts, askAgents{}, func(st *jetlog.Store) convo.Log {
			return &closeFailsOnce{Store: st}
		})
	})
	checkLog(t, evs)
	if res := evs[len(evs)-2]; res.Type != protocol.EventToolResult || res.Status != protocol.ResultInterrupted ||
		evs[len(evs)-1].StopReason != protocol.StopInterrupted {
		t.Fatalf("want the call's interrupted result, then the turn_end: %s", describe(evs))
	}
}

// cutMidTurn starts a turn of a new conversation with agent on gateway
// a, and once gateway b has seen an event that seen accepts, kills a and
// has the gateway that takeOver starts take the turn over (see kill); it
// returns what b saw up to the turn's end.
func cutMidTurn(t *testing.T, srv *natstest.Server, a, b *node, agent string, seen func(*protocol.Event) bool, takeOver func()) []*protocol.Event {
	t.Helper()
	c, err := a.svc.Create(context.Background(), user, &protocol.Create{Agent: agent})
	if err != nil {
		t.Fatal(err)
	}
	watch := subscribe(t, b, c.ID, 0)
	send(t, a, c.ID, "go", nil)
	evs := watch.waitFor(t, "the event to cut after", func(evs []*protocol.Event) bool {
		return slices.ContainsFunc(evs, seen) || turnEnds(1)(evs)
	})
	if !slices.ContainsFunc(evs, seen) {
		t.Fatalf("the turn ended before the event to cut after: %s", describe(evs))
	}
	kill(t, srv, a, c.ID, takeOver)
	return watch.waitFor(t, "the turn's end", turnEnds(1))
}

// wordyToolModel is toolModel, except that each step first writes 180
// chunks of HTML of 3,400 bytes each in a turn_end: two steps' worth
// take more than convo.MaxReplyBytes.
type wordyToolModel struct{}

func (wordyToolModel) Stream(ctx context.Context, req convo.ModelRequest, emit func(convo.Chunk)) (convo.Result, error) {
	chunk := strings.Repeat("<b>x&y</b>", 100)
	for range 180 {
		if err := ctx.Err(); err != nil {
			return convo.Result{}, err
		}
		emit(convo.Chunk{Kind: convo.ChunkText, Text: chunk})
	}
	return toolModel{}.Stream(ctx, req, func(convo.Chunk) {})
}

// TestAgentReplyOverLimit runs an agent's turn whose two steps write
// more than convo.MaxReplyBytes together, less each: the bound holds for
// the turn, whose turn_end holds every step's text, so the second step
// is cut, and the turn ends max_tokens with its deltas' text.
func TestAgentReplyOverLimit(t *testing.T) {
	srv := natstest.Start(t)
	// The default timeout: publishing records of half a megabyte under
	// -race on a busy machine may take more than the second of startNode.
	a := startNodeWith(t, "a", srv.URL(), wordyToolModel{}, jetlog.Options{})
	evs := agentTurn(t, a, a, "find x, at length")
	var deltas strings.Builder
	for _, ev := range evs {
		if ev.Type == protocol.EventDelta {
			deltas.WriteString(ev.Text)
		}
	}
	end := evs[len(evs)-1]
	if n := protocol.TextLen(end.Message.Text); end.StopReason != protocol.StopMaxTokens || end.Steps != 2 || n > convo.MaxReplyBytes {
		t.Fatalf("the turn ended %s after %d steps with %d bytes of text, want max_tokens after 2 with at most %d",
			end.StopReason, end.Steps, n, convo.MaxReplyBytes)
	}
	if deltas.String() != end.Message.Text {
		t.Fatalf("the deltas hold %d bytes of text, the turn_end's message %d", deltas.Len(), len(end.Message.Text))
	}
}
