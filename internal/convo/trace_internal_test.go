package convo

import "testing"

// TestNoSpanWhileTracingIsOff checks that a turn's span and a tool call's
// cost nothing while tracing is off: no allocation for spans that record
// nothing.
func TestNoSpanWhileTracingIsOff(t *testing.T) {
	s := &Service{}
	c := &call{}
	n := testing.AllocsPerRun(100, func() {
		ctx, turn := s.startTurnSpan(t.Context(), "c", "t", "m")
		_, tool := s.startToolSpan(ctx, c)
		tool.End()
		turn.End()
	})
	if n != 0 {
		t.Fatalf("a turn's and a tool call's spans allocate %v times with tracing off, want none", n)
	}
}
