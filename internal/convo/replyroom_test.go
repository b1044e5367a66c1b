package convo_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

// wordyAgentModel answers each step with HTML, whose '<', '>' and '&'
// take six bytes each in an event: 3,500 bytes a chunk. Its first step
// reasons for 60 chunks, writes 100, and calls the tool "t" (wordyUse);
// its second writes 200 and ends. The two steps take more than
// convo.MaxReplyBytes together, less each.
type wordyAgentModel struct{}

var wordyUse = convo.ToolUse{ID: "c1", Name: "t", Input: json.RawMessage(`{}`)}

func (wordyAgentModel) Stream(ctx context.Context, req convo.ModelRequest, emit func(convo.Chunk)) (convo.Result, error) {
	first := len(req.History[len(req.History)-1].ToolResults) == 0
	kinds := slices.Repeat([]convo.ChunkKind{convo.ChunkText}, 200)
	if first {
		kinds = append(slices.Repeat([]convo.ChunkKind{convo.ChunkThinking}, 60), kinds[:100]...)
	}
	chunk := strings.Repeat("<b>x&y</b>", 100)
	for _, kind := range kinds {
		if err := ctx.Err(); err != nil {
			return convo.Result{}, err
		}
		emit(convo.Chunk{Kind: kind, Text: chunk})
	}
	if first {
		return convo.Result{StopReason: protocol.StopToolUse, ToolUses: []convo.ToolUse{wordyUse}}, nil
	}
	return convo.Result{StopReason: protocol.StopEndTurn}, nil
}

// TestAgentTurnRoom runs an agent's turn whose two steps reason and write
// more than convo.MaxReplyBytes together: the bound holds for the whole
// turn, each step's text and reasoning counted once, with the first
// step's tool use, so the second step is cut right at the bound less the
// tool use's share (not before it, as a step's text counted twice would;
// not after it, as reasoning left out of the count would), and the turn
// ends max_tokens with its deltas' text.
func TestAgentTurnRoom(t *testing.T) {
	ok := func(context.Context, convo.ToolCall, func(convo.ToolProgress)) convo.ToolOutcome {
		return convo.ToolOutcome{Status: protocol.ResultOK, Output: json.RawMessage(`{}`)}
	}
	s, err := convo.New(openBolt(t), wordyAgentModel{}, convo.Config{Agents: benchAgents{run: ok}, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	conv, err := s.Create(context.Background(), "u1", &protocol.Create{Agent: "bench"})
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder(1000)
	send(t, s, conv.ID, "at length, please", rec)
	var deltas, thinking strings.Builder
	evs := rec.until(t, protocol.EventTurnEnd)
	for _, ev := range evs {
		switch ev.Type {
		case protocol.EventDelta:
			deltas.WriteString(ev.Text)
		case protocol.EventThinking:
			thinking.WriteString(ev.Text)
		}
	}
	end := evs[len(evs)-1]
	n := protocol.TextLen(end.Message.Text) + protocol.TextLen(thinking.String())
	limit := convo.MaxReplyBytes - convo.ToolUsesLen([]convo.ToolUse{wordyUse})
	if end.StopReason != protocol.StopMaxTokens || end.Steps != 2 || n > limit || n <= limit-6 {
		t.Fatalf("the turn ended %s after %d steps with %d bytes of text and reasoning, want max_tokens after 2 with at most %d and more than %d",
			end.StopReason, end.Steps, n, limit, limit-6)
	}
	if deltas.String() != end.Message.Text {
		t.Fatalf("the deltas hold %d bytes of text, the turn_end's message %d", deltas.Len(), len(end.Message.Text))
	}
}
