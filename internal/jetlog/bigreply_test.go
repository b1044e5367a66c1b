package jetlog_test

import (
	"context"
	"strings"
	"testing"

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
