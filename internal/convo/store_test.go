package convo

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/chatgateway/gateway/protocol"
)

// TestGroupCommit checks that concurrent appends share transactions.
func TestGroupCommit(t *testing.T) {
	s, _ := openTest(t, &scriptModel{gate: make(chan struct{})})
	const senders = 200
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < senders; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			if _, err := s.Send(context.Background(), "u1", &protocol.Send{Text: "hi"}, nil); err != nil {
				t.Error(err)
			}
		}()
	}
	c0, o0 := s.st.stats()
	close(start)
	wg.Wait()
	c1, o1 := s.st.stats()
	commits, ops := c1-c0, o1-o0
	t.Logf("%d ops in %d commits", ops, commits)
	if commits >= ops {
		t.Fatalf("%d ops took %d commits: no grouping", ops, commits)
	}
}

func TestRestartKeepsEverything(t *testing.T) {
	ctx := context.Background()
	s, path := openTest(t, &scriptModel{})
	rec := newRecorder(100)
	ack := send(t, s, "", "one", rec)
	rec.until(t, protocol.EventTurnEnd)
	send(t, s, ack.Conversation, "two", rec)
	rec.until(t, protocol.EventTurnEnd)
	events, _ := s.Events(ctx, "u1", ack.Conversation, 0, 1000)
	hist, _ := s.History(ctx, "u1", ack.Conversation, 0, 0)
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}

	s2, err := Open(path, &scriptModel{}, Config{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close(ctx)
	events2, _ := s2.Events(ctx, "u1", ack.Conversation, 0, 1000)
	hist2, _ := s2.History(ctx, "u1", ack.Conversation, 0, 0)
	if len(events2) != len(events) || len(events) == 0 {
		t.Fatalf("%d events after restart, %d before", len(events2), len(events))
	}
	for i := range events {
		if !bytes.Equal(events[i], events2[i]) {
			t.Fatalf("event %d differs:\n%s\n%s", i, events[i], events2[i])
		}
	}
	if len(hist2.Messages) != 4 || len(hist.Messages) != 4 {
		t.Fatalf("history %d messages after restart, %d before", len(hist2.Messages), len(hist.Messages))
	}
	for i := range hist.Messages {
		if hist.Messages[i] != hist2.Messages[i] {
			t.Fatalf("message %d: %+v vs %+v", i, hist.Messages[i], hist2.Messages[i])
		}
	}
}

// TestCrashEndsTurnInterrupted cuts a turn off the way a crash does (no
// commit succeeds after the cut) and checks that the next start ends it as
// interrupted with the text streamed so far, then runs the turn queued
// behind it.
func TestCrashEndsTurnInterrupted(t *testing.T) {
	ctx := context.Background()
	m := &scriptModel{gate: make(chan struct{})}
	s, path := openTest(t, m)
	rec := newRecorder(100)
	ack := send(t, s, "", "one", rec)
	send(t, s, ack.Conversation, "queued", nil)
	m.gate <- struct{}{}
	m.gate <- struct{}{}
	seen := ""
	for len(seen) < len("hello from ") {
		if ev := rec.next(t); ev.Type == protocol.EventDelta {
			seen += ev.Text
		}
	}
	crash := errors.New("crashed")
	s.st.setFailCommit(func() error { return crash })
	s.Close(ctx)

	s2, err := Open(path, &scriptModel{}, Config{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close(ctx)
	rec2 := newRecorder(100)
	if err := s2.Subscribe(ctx, "u1", ack.Conversation, 0, rec2, func(uint64) {}); err != nil {
		t.Fatal(err)
	}
	first := rec2.until(t, protocol.EventTurnEnd)
	end := first[len(first)-1]
	if end.StopReason != protocol.StopInterrupted || end.Message.Text != seen {
		t.Fatalf("turn_end %+v text %q, want interrupted %q", end, end.Message.Text, seen)
	}
	second := rec2.until(t, protocol.EventTurnEnd)
	if end := second[len(second)-1]; end.StopReason != protocol.StopEndTurn {
		t.Fatalf("queued turn ended %q", end.StopReason)
	}
}

func TestFailedCommitIsUnavailableAndRecovers(t *testing.T) {
	s, _ := openTest(t, &scriptModel{})
	s.st.setFailCommit(func() error { return errors.New("disk full") })
	_, err := s.Send(context.Background(), "u1", &protocol.Send{Text: "x"}, nil)
	if protocol.AsError(err).Code != protocol.CodeUnavailable {
		t.Fatalf("send during failure: %v", err)
	}
	list, _ := s.List(context.Background(), "u1")
	if len(list) != 0 {
		t.Fatalf("a failed commit left %d conversations", len(list))
	}
	s.st.setFailCommit(nil)
	rec := newRecorder(100)
	send(t, s, "", "works again", rec)
	rec.until(t, protocol.EventTurnEnd)
}
