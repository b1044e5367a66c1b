package boltlog

import "testing"

// TestNoSpanWhileTracingIsOff checks that a commit's span costs nothing
// while tracing is off: no allocation for a span that records nothing.
func TestNoSpanWhileTracingIsOff(t *testing.T) {
	l := &Log{}
	ops := []*op{{ctx: t.Context()}}
	if n := testing.AllocsPerRun(100, func() { endCommitSpan(l.startCommitSpan(ops), 1, nil) }); n != 0 {
		t.Fatalf("a commit's span allocates %v times with tracing off, want none", n)
	}
}
