package convo_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

// TestSubscribeReplayThenLive subscribes many clients at random points of a
// fast stream, each with a random after (including the live edge), and
// checks that each gets every later event exactly once, in order.
func TestSubscribeReplayThenLive(t *testing.T) {
	const words, subscribers = 400, 40
	m := &scriptModel{gate: make(chan struct{}), words: func(convo.ModelRequest) []string {
		w := make([]string, words)
		for i := range w {
			w[i] = fmt.Sprintf("w%d ", i)
		}
		return w
	}}
	s := openTest(t, m)
	ack := send(t, s, "", "stream please", nil)
	id := ack.Conversation

	var joined sync.WaitGroup
	joined.Add(subscribers)
	go func() {
		for i := 0; i < words-1; i++ {
			m.gate <- struct{}{}
		}
		joined.Wait() // the last word only after everyone has subscribed
		m.gate <- struct{}{}
	}()

	var wg sync.WaitGroup
	errs := make(chan error, subscribers)
	for i := 0; i < subscribers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m, err := s.log.Meta(context.Background(), id)
			if err != nil {
				errs <- err
				joined.Done()
				return
			}
			last := m.LastSeq
			after := last
			if i%4 != 0 { // every fourth joins at the live edge
				after = rand.Uint64N(last + 1)
			}
			rec := newRecorder(words + 100)
			err = s.Subscribe(context.Background(), "u1", &protocol.Subscribe{Conversation: id, After: after}, rec, func(*protocol.Subscribed) {})
			joined.Done()
			if err != nil {
				errs <- err
				return
			}
			want := after + 1
			for {
				ev := rec.next(t)
				if ev.Seq != want {
					errs <- fmt.Errorf("subscriber after %d: got seq %d, want %d", after, ev.Seq, want)
					return
				}
				want++
				if ev.Type == protocol.EventTurnEnd {
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestSlowSubscriberIsDroppedOthersUnaffected(t *testing.T) {
	m := &scriptModel{gate: make(chan struct{})}
	s := openTest(t, m)
	fast := newRecorder(100)
	slow := newRecorder(2)
	ack := send(t, s, "", "hi", fast)
	if err := s.Subscribe(context.Background(), "u1", &protocol.Subscribe{Conversation: ack.Conversation, After: ack.Message.Seq}, slow, func(*protocol.Subscribed) {}); err != nil {
		t.Fatal(err)
	}
	close(m.gate)
	evs := fast.until(t, protocol.EventTurnEnd)
	if len(slow.ch) != 2 {
		t.Fatalf("slow subscriber holds %d frames, want its queue size 2", len(slow.ch))
	}
	if s.Subscribed(ack.Conversation, slow) {
		t.Fatal("slow subscriber was not dropped")
	}
	// It resumes from the last seq it got and misses nothing.
	var lastSeen uint64
	for len(slow.ch) > 0 {
		lastSeen = slow.next(t).Seq
	}
	again := newRecorder(100)
	if err := s.Subscribe(context.Background(), "u1", &protocol.Subscribe{Conversation: ack.Conversation, After: lastSeen}, again, func(*protocol.Subscribed) {}); err != nil {
		t.Fatal(err)
	}
	got := again.until(t, protocol.EventTurnEnd)
	if got[0].Seq != lastSeen+1 || got[len(got)-1].Seq != evs[len(evs)-1].Seq {
		t.Fatalf("resume got seqs %d..%d, want %d..%d", got[0].Seq, got[len(got)-1].Seq, lastSeen+1, evs[len(evs)-1].Seq)
	}
}

func TestDeleteThenRecreateSameID(t *testing.T) {
	s := openTest(t, &scriptModel{})
	ctx := context.Background()
	c, err := s.Create(ctx, "u1", &protocol.Create{Conversation: "room-1", Title: "first"})
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder(100)
	send(t, s, c.ID, "one", rec)
	rec.until(t, protocol.EventTurnEnd)
	if err := s.Delete(ctx, "u1", c.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "u1", c.ID); !errors.Is(err, convo.ErrNotFound) {
		t.Fatalf("get after delete: %v", err)
	}
	if _, err := s.Create(ctx, "u1", &protocol.Create{Conversation: "room-1"}); err != nil {
		t.Fatal(err)
	}
	rec2 := newRecorder(100)
	send(t, s, c.ID, "again", rec2)
	if evs := rec2.until(t, protocol.EventTurnEnd); evs[0].Seq != 1 {
		t.Fatalf("new conversation starts at seq %d", evs[0].Seq)
	}
}

func TestSubscribeAgainStartsOver(t *testing.T) {
	s := openTest(t, &scriptModel{})
	rec := newRecorder(100)
	ack := send(t, s, "", "hi", rec) // send subscribes rec at the live edge
	evs := rec.until(t, protocol.EventTurnEnd)
	if err := s.Subscribe(context.Background(), "u1", &protocol.Subscribe{Conversation: ack.Conversation}, rec, func(*protocol.Subscribed) {}); err != nil {
		t.Fatal(err)
	}
	again := rec.until(t, protocol.EventTurnEnd)
	if len(again) != len(evs) || again[0].Seq != 1 {
		t.Fatalf("subscribe after=0 again replayed %d events from seq %d, want %d from 1", len(again), again[0].Seq, len(evs))
	}
}
