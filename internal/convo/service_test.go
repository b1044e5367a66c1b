package convo

import (
	"strings"
	"testing"

	"github.com/chatgateway/gateway/protocol"
)

func TestSendStreamsReply(t *testing.T) {
	s, _ := openTest(t, &scriptModel{})
	rec := newRecorder(100)
	ack := send(t, s, "", "hi there", rec)
	if ack.Message.Seq != 1 || ack.Conversation == "" {
		t.Fatalf("ack = %+v", ack)
	}
	evs := rec.until(t, protocol.EventTurnEnd)
	var text strings.Builder
	for i, ev := range evs {
		if ev.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d", i, ev.Seq)
		}
		if ev.Type == protocol.EventDelta {
			text.WriteString(ev.Text)
		}
	}
	end := evs[len(evs)-1]
	if end.StopReason != protocol.StopEndTurn || end.Message.Text != text.String() || text.String() == "" {
		t.Fatalf("turn_end %+v, deltas %q", end, text.String())
	}
	if evs[0].Type != protocol.EventMessage || evs[1].Type != protocol.EventTurnStart || evs[1].Model != "test-model" {
		t.Fatalf("first events: %+v %+v", evs[0], evs[1])
	}
}
