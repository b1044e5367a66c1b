package convo

import (
	"context"
	"encoding/json"
	"unicode/utf8"

	"github.com/chatgateway/gateway/protocol"
)

// keepSteps keeps on r's hub, while the calls of the step that ends run
// or wait, the history of the turn's next step, step, but for the
// results of the step that ends: history (what the step that ends sent)
// followed by that step's text and tool uses, as the log gives them
// back (see readBack), so that the next step need not read the history
// back from the log. It keeps it within the budget of the histories
// hubs keep (see keep): past it, the next step reads the log.
func (r *agentRun) keepSteps(step int, history []HistoryMessage, text string, uses []ToolUse) {
	// The results of the step before came from its calls.
	if n := len(history); n > 0 {
		history[n-1] = readBack(history[n-1])
	}
	history = append(history, readBack(HistoryMessage{Role: protocol.RoleAssistant, Text: text, ToolUses: uses}))
	r.s.keep(r.h, keptHistory{of: r.m.CreatedAt, size: stepsSize(history), steps: history, turn: r.turn, step: step})
}

// takeSteps returns, and forgets, the history r's hub keeps for the
// turn's step, step (see keepSteps), if the hub keeps that one and the
// turn is still the conversation's open turn (see stillOpen); nil
// otherwise.
func (r *agentRun) takeSteps(ctx context.Context, step int) []HistoryMessage {
	k := r.s.take(r.h)
	if k.steps == nil || k.turn != r.turn || k.step != step || !k.of.Equal(r.m.CreatedAt) || !r.stillOpen(ctx) {
		return nil
	}
	return k.steps
}

// stillOpen reports whether the turn is still the open turn of the
// conversation it began in. A delete on another gateway reaches this
// one's hubs (which forget what they keep) with its notice: until then
// the Log knows better.
func (r *agentRun) stillOpen(ctx context.Context) bool {
	m, err := r.s.log.Meta(ctx, r.id)
	return err == nil && m.CreatedAt.Equal(r.m.CreatedAt) && m.OpenTurn != nil && m.OpenTurn.Turn == r.turn
}

// dropSteps forgets the history r's hub keeps for the turn, if any: a
// turn that ends while its calls wait (cancelled, say) leaves none.
func (r *agentRun) dropSteps() {
	r.h.mu.Lock()
	defer r.h.mu.Unlock()
	if r.h.kept.turn == r.turn {
		r.s.forgetHistory(r.h)
	}
}

// stepsSize is what history counts against the budget of kept histories:
// its texts, tool inputs and results, and keptItemBytes for each.
func stepsSize(history []HistoryMessage) int64 {
	var n int
	for _, m := range history {
		n += len(m.Text) + keptItemBytes
		for _, u := range m.ToolUses {
			n += len(u.ID) + len(u.Name) + len(u.Input) + keptItemBytes
		}
		for _, r := range m.ToolResults {
			n += len(r.ID) + len(r.Output) + len(r.Error) + keptItemBytes
		}
	}
	return int64(n)
}

// readBack is m as toolSteps reads it back once its events are stored:
// texts with invalid UTF-8 replaced, a tool use's input as toolInput
// makes it, and JSON values compact, HTML characters escaped, as
// encoding/json writes a json.RawMessage. The step that follows sends it
// so, byte for byte, whether it reads the log or not.
func readBack(m HistoryMessage) HistoryMessage {
	m.Text = storedText(m.Text)
	if m.ToolUses != nil {
		uses := make([]ToolUse, len(m.ToolUses))
		for i, u := range m.ToolUses {
			uses[i] = ToolUse{ID: storedText(u.ID), Name: storedText(u.Name), Input: storedJSON(toolInput(u.Input))}
		}
		m.ToolUses = uses
	}
	if m.ToolResults != nil {
		results := make([]ToolResult, len(m.ToolResults))
		for i, r := range m.ToolResults {
			results[i] = ToolResult{ID: storedText(r.ID), Output: storedJSON(r.Output), Error: storedText(r.Error)}
		}
		m.ToolResults = results
	}
	return m
}

// storedText is s as an event's JSON gives it back.
func storedText(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	b, _ := json.Marshal(s) // a string always marshals
	var out string
	_ = json.Unmarshal(b, &out) // and reads back
	return out
}

// storedJSON is raw, valid JSON, as an event's JSON gives it back: nil
// stays nil.
func storedJSON(raw json.RawMessage) json.RawMessage {
	if raw == nil {
		return nil
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return raw
	}
	return b
}
