package conn

import (
	"testing"
	"time"

	"github.com/chatgateway/gateway/protocol"
)

// TestNoSpanWhileTracingIsOff checks that a send's span costs nothing
// while tracing is off: no allocation for a span that records nothing.
func TestNoSpanWhileTracingIsOff(t *testing.T) {
	c := &conn{h: &Handler{}}
	r := &protocol.Send{Conversation: "c", Text: "hi"}
	read := time.Now()
	n := testing.AllocsPerRun(100, func() {
		_, span := c.startSend(t.Context(), r, read)
		sent(span, &protocol.Ack{}, nil)
		span.End()
	})
	if n != 0 {
		t.Fatalf("a send's span allocates %v times with tracing off, want none", n)
	}
}
