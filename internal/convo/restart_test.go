package convo_test

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/metrics"
	"github.com/chatgateway/gateway/protocol"
)

func TestRestartKeepsEverything(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, &scriptModel{})
	rec := newRecorder(100)
	ack := send(t, s, "", "one", rec)
	rec.until(t, protocol.EventTurnEnd)
	send(t, s, ack.Conversation, "two", rec)
	rec.until(t, protocol.EventTurnEnd)
	events, _, _ := s.Events(ctx, "u1", ack.Conversation, time.Time{}, 0, 1000)
	hist, _ := s.History(ctx, "u1", ack.Conversation, 0, 0)
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}

	s2 := openAt(t, s.path, &scriptModel{})
	events2, _, _ := s2.Events(ctx, "u1", ack.Conversation, time.Time{}, 0, 1000)
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
// behind it: both count as ended turns.
func TestCrashEndsTurnInterrupted(t *testing.T) {
	ctx := context.Background()
	m := &scriptModel{gate: make(chan struct{})}
	var faults *faultLog
	s := openOn(t, filepath.Join(t.TempDir(), "gateway.db"), m, func(l convo.Log) convo.Log {
		faults = &faultLog{Log: l}
		return faults
	})
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
	faults.set(func([]convo.Draft) bool { return true }) // the crash
	s.Close(ctx)

	reg := metrics.New()
	s2 := openConfigured(t, s.path, &scriptModel{}, func(l convo.Log) convo.Log { return l }, convo.Config{Metrics: reg})
	rec2 := newRecorder(100)
	if err := s2.Subscribe(ctx, "u1", &protocol.Subscribe{Conversation: ack.Conversation}, rec2, func(*protocol.Subscribed) {}); err != nil {
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
	// Both count as ended turns: the one the restart ended too.
	wantTurnsEnded(t, s2.Service, reg, 2)
}

func TestFailedCommitIsUnavailableAndRecovers(t *testing.T) {
	var faults *faultLog
	s := openOn(t, filepath.Join(t.TempDir(), "gateway.db"), &scriptModel{}, func(l convo.Log) convo.Log {
		faults = &faultLog{Log: l}
		return faults
	})
	faults.set(func([]convo.Draft) bool { return true })
	_, err := s.Send(context.Background(), "u1", &protocol.Send{Text: "x"}, nil)
	if protocol.AsError(err).Code != protocol.CodeUnavailable {
		t.Fatalf("send during failure: %v", err)
	}
	list, _ := s.List(context.Background(), "u1", "", 0)
	if len(list.Conversations) != 0 {
		t.Fatalf("a failed commit left %d conversations", len(list.Conversations))
	}
	faults.set(nil)
	rec := newRecorder(100)
	send(t, s, "", "works again", rec)
	rec.until(t, protocol.EventTurnEnd)
}
