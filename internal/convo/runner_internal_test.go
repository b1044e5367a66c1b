package convo

import (
	"fmt"
	"testing"

	"github.com/chatgateway/gateway/protocol"
)

// TestModelHistoryAllocatesOnce checks that the history of a plain
// conversation, which every turn makes, takes one allocation however
// many messages it holds: its slice, sized once.
func TestModelHistoryAllocatesOnce(t *testing.T) {
	var msgs []protocol.Message
	for i := range 5 {
		turn := fmt.Sprint("t", i)
		msgs = append(msgs, protocol.Message{Role: protocol.RoleUser, Text: "hi", Turn: turn, Seq: uint64(len(msgs) + 1)})
		if i < 4 {
			msgs = append(msgs, protocol.Message{Role: protocol.RoleAssistant, Text: "hello", Turn: turn, Seq: uint64(len(msgs) + 1)})
		}
	}
	var h []HistoryMessage
	if n := testing.AllocsPerRun(100, func() { h = modelHistory(msgs, "t4", nil) }); n > 1 {
		t.Fatalf("%v allocations for a history of %d messages, want 1", n, len(h))
	}
	if len(h) != len(msgs) {
		t.Fatalf("a history of %d messages, want %d", len(h), len(msgs))
	}
}
