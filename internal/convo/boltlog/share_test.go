package boltlog

import (
	"context"
	"errors"
	"testing"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

// commitTogether queues appends so that one commit takes them all, and
// returns their results and errors in order.
func commitTogether(t *testing.T, l *Log, appends ...*convo.Append) ([]*convo.Appended, []error) {
	t.Helper()
	c0, _ := l.Stats()
	ops := make([]*op, len(appends))
	res := make([]*convo.Appended, len(appends))
	l.mu.Lock()
	for i, a := range appends {
		ops[i], res[i] = newAppendOp(context.Background(), a)
		ops[i].done = make(chan struct{})
	}
	l.queue = append(l.queue, ops...)
	l.mu.Unlock()
	l.wakeLoop()
	errs := make([]error, len(ops))
	for i, o := range ops {
		<-o.done
		errs[i] = o.err
	}
	if c1, _ := l.Stats(); c1-c0 != 1 {
		t.Fatalf("the appends took %d commits, want 1", c1-c0)
	}
	return res, errs
}

var errRefused = errors.New("refused by the test")

// build returns a Build that stores evs, and records the last seq of
// the metadata it was given in *saw.
func build(saw *uint64, evs ...*protocol.Event) func(*convo.Meta) ([]convo.Draft, error) {
	return func(m *convo.Meta) ([]convo.Draft, error) {
		*saw = m.LastSeq
		drafts := make([]convo.Draft, len(evs))
		for i, ev := range evs {
			c := *ev
			drafts[i] = convo.Draft{Event: &c}
		}
		return drafts, nil
	}
}

// TestAppendsOfOneCommit puts several appends to one conversation in one
// commit: each Build sees the appends before it, and each Appended.Meta
// stays as of its own append, though the commit loop hands out the
// metadata it keeps rather than copies. A create refused by its Build
// leaves no conversation behind for the appends after it.
func TestAppendsOfOneCommit(t *testing.T) {
	ctx := context.Background()
	l := openTest(t)
	create(t, l, "c")
	appendEvents(t, l, "c", delta("before"))
	var saw [4]uint64
	res, errs := commitTogether(t, l,
		&convo.Append{Conversation: "c", Build: build(&saw[0], &protocol.Event{Type: protocol.EventTurnStart, Turn: "t1"})},
		&convo.Append{Conversation: "c", Build: build(&saw[1], delta("a"), delta("b"))},
		&convo.Append{Conversation: "c", Build: build(&saw[2])},
		&convo.Append{Conversation: "c", Build: build(&saw[3], &protocol.Event{Type: protocol.EventTurnEnd, Turn: "t1"})},
		&convo.Append{Conversation: "n", New: &convo.Meta{Owner: "u1"},
			Build: func(*convo.Meta) ([]convo.Draft, error) { return nil, errRefused }},
		&convo.Append{Conversation: "n", Build: build(new(uint64), delta("x"))},
	)
	for i, want := range []error{nil, nil, nil, nil, errRefused, convo.ErrNotFound} {
		if !errors.Is(errs[i], want) {
			t.Fatalf("append %d: %v, want %v", i, errs[i], want)
		}
	}
	if saw != [4]uint64{1, 2, 4, 4} {
		t.Errorf("the Builds saw last seqs %v, want [1 2 4 4]", saw)
	}
	for i, want := range []struct {
		last uint64
		open bool
	}{{2, true}, {4, true}, {4, true}, {5, false}} {
		if m := res[i].Meta; m.LastSeq != want.last || (m.OpenTurn != nil) != want.open {
			t.Errorf("append %d: metadata at seq %d with open turn %+v, want seq %d, open %v", i, m.LastSeq, m.OpenTurn, want.last, want.open)
		}
	}
	if m, err := l.Meta(ctx, "c"); err != nil || m.LastSeq != 5 || m.OpenTurn != nil {
		t.Errorf("metadata after the commit: %+v, %v", m, err)
	}
	if _, err := l.Meta(ctx, "n"); !errors.Is(err, convo.ErrNotFound) {
		t.Errorf("a refused create left a conversation: %v", err)
	}
	checkLog(t, l, "c", 5)
}
