package conn_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chatgateway/gateway/internal/conn/conntest"
	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/demo"
	"github.com/chatgateway/gateway/protocol"
)

// words returns a reply of n numbered words.
func words(n int) string {
	w := make([]string, n)
	for i := range w {
		w[i] = fmt.Sprintf("w%d", i+1)
	}
	return strings.Join(w, " ")
}

// scripted is the demo model answering reply, a word every wordDelay.
func scripted(reply string, wordDelay time.Duration) *demo.Model {
	return demo.New(demo.Options{WordDelay: wordDelay, Reply: func(convo.ModelRequest) string { return reply }})
}

// event is what fan-out and resume compare of an event frame.
type event struct {
	Type string
	Seq  uint64
	Text string
}

var eventTypes = map[string]bool{
	protocol.EventMessage: true, protocol.EventTurnStart: true, protocol.EventDelta: true,
	protocol.EventThinking: true, protocol.EventAction: true, protocol.EventTurnEnd: true,
}

// events keeps the conversation events of frames.
func events(frames []protocol.ServerFrame) []event {
	var out []event
	for i := range frames {
		f := &frames[i]
		if !eventTypes[f.Type] {
			continue
		}
		e := event{Type: f.Type, Seq: f.Seq, Text: f.Text}
		if m := f.StoredMessage(); m != nil {
			e.Text = m.Text
		}
		out = append(out, e)
	}
	return out
}

// checkTurnText checks that the deltas of each turn in frames add up to
// its turn_end message, and returns the last turn_end's text.
func checkTurnText(t *testing.T, frames []protocol.ServerFrame) string {
	t.Helper()
	deltas := map[string]*strings.Builder{}
	var last string
	for i := range frames {
		f := &frames[i]
		switch f.Type {
		case protocol.EventTurnStart:
			deltas[f.Turn] = &strings.Builder{}
		case protocol.EventDelta:
			deltas[f.Turn].WriteString(f.Text)
		case protocol.EventTurnEnd:
			last = f.StoredMessage().Text
			if got := deltas[f.Turn].String(); got != last {
				t.Errorf("turn %s: deltas add up to %q, turn_end has %q", f.Turn, got, last)
			}
		}
	}
	return last
}

// checkGapless checks that the events of frames have the seqs from+1,
// from+2, … in order.
func checkGapless(t *testing.T, evs []event, from uint64) {
	t.Helper()
	for i, e := range evs {
		if want := from + uint64(i) + 1; e.Seq != want {
			t.Fatalf("event %d (%s) has seq %d, want %d", i, e.Type, e.Seq, want)
		}
	}
}

// untilTurnEnd stops ReadUntil at a turn_end.
var untilTurnEnd = conntest.IsType(protocol.EventTurnEnd)

// createConversation creates a conversation with id over c.
func createConversation(t *testing.T, c *conntest.Client, id string) {
	t.Helper()
	if f := c.Call(&protocol.Create{ID: "create", Conversation: id}); f.Type != protocol.ReplyCreated {
		t.Fatalf("create: got %s %s %s", f.Type, f.Code, f.ErrorMessage())
	}
}

// subscribe subscribes c to conversation after seq and returns the
// subscribed reply.
func subscribe(t *testing.T, c *conntest.Client, conversation string, after uint64) protocol.ServerFrame {
	t.Helper()
	f := c.Call(&protocol.Subscribe{ID: "sub", Conversation: conversation, After: after})
	if f.Type != protocol.ReplySubscribed {
		t.Fatalf("subscribe: got %s %s %s", f.Type, f.Code, f.ErrorMessage())
	}
	return f
}

// gatedModel answers gatedReply once gate is closed.
type gatedModel struct{ gate chan struct{} }

const gatedReply = "the gate opened"

func (m gatedModel) Stream(ctx context.Context, _ convo.ModelRequest, emit func(convo.Chunk)) (convo.Result, error) {
	select {
	case <-m.gate:
	case <-ctx.Done():
		return convo.Result{}, ctx.Err()
	}
	emit(convo.Chunk{Kind: convo.ChunkText, Text: gatedReply})
	return convo.Result{StopReason: protocol.StopEndTurn}, nil
}
