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
	dones := make([]<-chan struct{}, len(appends))
	res := make([]*convo.Appended, len(appends))
	l.mu.Lock()
	for i, a := range appends {
		ops[i] = newAppendOp(context.Background(), a)
		res[i] = &ops[i].res
		dones[i] = await(ops[i])
	}
	l.queue = append(l.queue, ops...)
	l.mu.Unlock()
	l.wakeLoop()
	errs := make([]error, len(ops))
	for i, o := range ops {
		<-dones[i]
		errs[i] = o.err
	}
	if c1, _ := l.Stats(); c1-c0 != 1 {
		t.Fatalf("the appends took %d commits, want 1", c1-c0)
	}
	return res, errs
}

// await sets o's done, which the commit loop's finish calls, to close
// the channel it returns.
func await(o *op) <-chan struct{} {
	done := make(chan struct{})
	o.done = func(*convo.Appended, error) { close(done) }
	return done
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

// TestCommitsLeaveKeptMetadataAlone stores a delta and then a tool call in
// one commit, then fails commits that carry a delta, and a delta with a
// tool call: each Appended.Meta stays as of its append, and the
// metadata the Log keeps as of the last commit that succeeded, though
// the commit loop copies only the top level of the metadata for a delta.
func TestCommitsLeaveKeptMetadataAlone(t *testing.T) {
	ctx := context.Background()
	l := openTest(t)
	create(t, l, "c")
	appendEvents(t, l, "c", &protocol.Event{Type: protocol.EventTurnStart, Turn: "t1"})
	call := func(id string) *protocol.Event {
		return &protocol.Event{Type: protocol.EventToolCall, Turn: "t1", Call: id, Name: "lookup", Status: protocol.CallRunning, Step: 1}
	}
	var saw uint64
	res, errs := commitTogether(t, l,
		&convo.Append{Conversation: "c", Build: build(&saw, delta("a"))},
		&convo.Append{Conversation: "c", Build: build(&saw, call("k1"))},
	)
	if errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
	if m := res[0].Meta; m.LastSeq != 2 || len(m.OpenTurn.Calls) != 0 {
		t.Errorf("the delta's metadata: seq %d, calls %+v", m.LastSeq, m.OpenTurn.Calls)
	}
	if m := res[1].Meta; m.LastSeq != 3 || len(m.OpenTurn.Calls) != 1 {
		t.Errorf("the tool call's metadata: seq %d, calls %+v", m.LastSeq, m.OpenTurn.Calls)
	}
	l.failCommit = func() error { return errors.New("disk full") }
	for _, evs := range [][]*protocol.Event{{delta("b")}, {delta("c"), call("k2")}} {
		_, err := l.Append(ctx, &convo.Append{Conversation: "c", Build: build(&saw, evs...)})
		if !errors.Is(err, convo.ErrUnavailable) {
			t.Fatalf("append in a failing commit: %v", err)
		}
		if m, err := l.Meta(ctx, "c"); err != nil || m.LastSeq != 3 || len(m.OpenTurn.Calls) != 1 {
			t.Fatalf("metadata after a failed commit: %+v, %v", m, err)
		}
	}
	l.failCommit = nil
	if m := res[1].Meta; m.LastSeq != 3 || len(m.OpenTurn.Calls) != 1 {
		t.Errorf("the tool call's metadata after the failed commits: seq %d, calls %+v", m.LastSeq, m.OpenTurn.Calls)
	}
	appendEvents(t, l, "c", delta("d"))
	checkLog(t, l, "c", 4)
}
