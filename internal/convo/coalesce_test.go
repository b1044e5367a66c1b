package convo_test

import (
	"context"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

// TestChunksJoinTheAppendWaitingForACommit holds a reply's first chunk
// append before it reaches the Log, as a busy commit loop holds it in its
// queue, while the model streams on. The chunks that came meanwhile must
// go with that append, in its one delta: an append takes its turn's
// chunks when its commit runs, not when it was queued (otherwise each
// waits for a commit more, and under load for several).
func TestChunksJoinTheAppendWaitingForACommit(t *testing.T) {
	gate := make(chan struct{})
	m := &scriptModel{gate: gate, words: func(convo.ModelRequest) []string { return []string{"a", "b", "c", "d"} }}
	var hold *deferrableGate
	s := openOn(t, filepath.Join(t.TempDir(), "gateway.db"), m, func(l convo.Log) convo.Log {
		hold = &deferrableGate{Log: l, held: make(chan struct{}), release: make(chan struct{})}
		return hold
	})
	rec := newRecorder(64)
	send(t, s, "", "hi", rec)
	gate <- struct{}{} // "a" comes: its append is held
	<-hold.held
	// "b" and "c" come while it waits: the model takes the fourth token
	// only once it has emitted "c".
	for range 3 {
		gate <- struct{}{}
	}
	close(hold.release)
	var deltas []string
	for _, ev := range rec.until(t, protocol.EventTurnEnd) {
		if ev.Type == protocol.EventDelta {
			deltas = append(deltas, ev.Text)
		}
	}
	if len(deltas) == 0 || !strings.HasPrefix(deltas[0], "abc") || strings.Join(deltas, "") != "abcd" {
		t.Errorf("deltas %q, want the first to carry at least \"abc\" and all of them \"abcd\" in order", deltas)
	}
}

// deferrableGate is a Log that holds the first deferrable append (a
// reply's chunks, which its turn posts) before passing it on: it signals
// held and waits for release. Other appends pass.
type deferrableGate struct {
	convo.Log
	taken         atomic.Bool
	held, release chan struct{}
}

func (g *deferrableGate) Post(ctx context.Context, a *convo.Append, done func(*convo.Appended, error)) {
	if a.Deferrable && g.taken.CompareAndSwap(false, true) {
		close(g.held)
		go func() {
			<-g.release
			g.Log.Post(ctx, a, done)
		}()
		return
	}
	g.Log.Post(ctx, a, done)
}
