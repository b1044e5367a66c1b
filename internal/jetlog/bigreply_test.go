package jetlog_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/jetlog"
	"github.com/chatgateway/gateway/internal/jetlog/natstest"
	"github.com/chatgateway/gateway/protocol"
)

// TestCutOffReplyOverLimit ends a turn cut off with more delta text than
// a turn_end can hold, as a gateway that predates convo.MaxReplyBytes
// left it (its turn_end could not be stored, the turn stayed open): the
// gateway that takes the conversation over ends it interrupted, its
// message the start of the text that fits.
func TestCutOffReplyOverLimit(t *testing.T) {
	srv := natstest.Start(t)
	old, err := jetlog.OpenStore(context.Background(), srv.URL(), jetlog.StoreOptions{Node: "old", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	old.Start(func([]convo.Committed) {})
	// Two deltas of 612,000 bytes each in a turn_end.
	half := strings.Repeat("<b>x&y</b>", 18000)
	drafts := func(evs ...*protocol.Event) func(*convo.Meta) ([]convo.Draft, error) {
		return func(*convo.Meta) ([]convo.Draft, error) {
			out := make([]convo.Draft, len(evs))
			for i, ev := range evs {
				out[i] = convo.Draft{Event: ev}
			}
			return out, nil
		}
	}
	for i, a := range []*convo.Append{
		{New: &convo.Meta{Owner: user, Conversation: protocol.Conversation{Model: "test"}}, Build: drafts(
			&protocol.Event{Type: protocol.EventMessage, Message: &protocol.Message{ID: "m1", Role: protocol.RoleUser, Text: "a long page", Turn: "t1"}},
			&protocol.Event{Type: protocol.EventTurnStart, Turn: "t1", Model: "test"})},
		{Build: drafts(&protocol.Event{Type: protocol.EventDelta, Turn: "t1", Text: half})},
		{Build: drafts(&protocol.Event{Type: protocol.EventDelta, Turn: "t1", Text: half})},
	} {
		a.Conversation = "c1"
		if _, err := old.Append(context.Background(), a); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	// The default timeout: reading records of half a megabyte under
	// -race on a busy machine may take more than the second of startNode.
	a := startNodeWith(t, "a", srv.URL(), &words{n: 1}, jetlog.Options{})
	evs := subscribe(t, a, "c1", 0).waitFor(t, "the cut-off turn's end", turnEnds(1))
	checkLog(t, evs)
	end := evs[len(evs)-1]
	n := protocol.TextLen(end.Message.Text)
	if end.StopReason != protocol.StopInterrupted || n > convo.MaxReplyBytes || n <= convo.MaxReplyBytes-6 || !strings.HasPrefix(half+half, end.Message.Text) {
		t.Fatalf("the turn ended %s with %d bytes of text, want interrupted with the start of the deltas' text, at most %d", end.StopReason, n, convo.MaxReplyBytes)
	}
}

// htmlAgents is toolAgents, whose tool answers with 200 KiB of '<' in a
// JSON string: under the tool output limit, but 1.2 MiB as the log
// stores it ('<' escaped), more than a NATS message holds.
type htmlAgents struct{ toolAgents }

func (htmlAgents) Agent(name, user, conversation string) (*convo.Agent, bool) {
	ag, ok := toolAgents{}.Agent(name, user, conversation)
	page, _ := json.Marshal(map[string]string{"html": strings.Repeat("<", 200<<10)})
	ag.Run = func(context.Context, convo.ToolCall, func(convo.ToolProgress)) convo.ToolOutcome {
		return convo.ToolOutcome{Status: protocol.ResultOK, Output: page}
	}
	return ag, ok
}

// TestToolOutputTooLargeToStore runs an agent's turn whose tool answers
// more than a NATS message holds: the call fails (a tool_result with
// status error, which the model gets too), and the turn goes on to its
// end, where it used to try storing the result for ever.
func TestToolOutputTooLargeToStore(t *testing.T) {
	srv := natstest.Start(t)
	a := startNodeOn(t, "a", srv.URL(), toolModel{}, jetlog.Options{}, htmlAgents{}, func(st *jetlog.Store) convo.Log { return st })
	evs := agentTurn(t, a, a, "fetch the page")
	var result *protocol.Event
	for _, ev := range evs {
		if ev.Type == protocol.EventToolResult {
			result = ev
		}
	}
	end := evs[len(evs)-1]
	if result == nil || result.Status != protocol.ResultError || !strings.Contains(result.ToolError, "too large") ||
		end.StopReason != protocol.StopEndTurn || end.Message.Text != "found it" {
		t.Fatalf("the turn went %s", describe(evs))
	}
}

// TestRecordOverMaxPayload appends records of many conversations at
// once, some of them over max_payload: those fail with
// nats.ErrMaxPayload, and the others, which may share an atomic batch
// with them, are stored.
func TestRecordOverMaxPayload(t *testing.T) {
	l, _ := open(t, jetlog.Options{})
	ctx := context.Background()
	const convs = 60
	big := `"` + strings.Repeat("x", jetlog.MinPayload) + `"`
	oversize := func(i int) bool { return i%10 == 0 }
	errs := make([]error, convs)
	var wg sync.WaitGroup
	for i := range convs {
		wg.Go(func() {
			frame := `{"n":1}`
			if oversize(i) {
				frame = big
			}
			_, errs[i] = l.Append(ctx, fmt.Sprint("c", i), rec(1, frame), 0)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if oversize(i) != errors.Is(err, nats.ErrMaxPayload) || !oversize(i) && err != nil {
			t.Errorf("append %d (over max_payload: %v): %v", i, oversize(i), err)
		}
	}
}
