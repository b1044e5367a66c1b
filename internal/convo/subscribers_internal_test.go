package convo

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// countingSub counts the frames it takes, and refuses them (a full
// queue) when full is set.
type countingSub struct {
	full bool
	n    int
}

func (c *countingSub) Send(Frame) bool {
	if c.full {
		return false
	}
	c.n++
	return true
}

func (c *countingSub) SendWait(context.Context, Frame) error { c.n++; return nil }

func (c *countingSub) Gone(string) {}

// TestPublishDropsFullSubscribersOnTheWay checks that a publish that
// drops subscribers as it goes still delivers each event to every other
// subscriber once: a dropped one's place is taken by the last, which
// the walk must not skip.
func TestPublishDropsFullSubscribersOnTheWay(t *testing.T) {
	h := newBenchHub("c", 0)
	subs := []*countingSub{{full: true}, {}, {full: true}, {}, {full: true}}
	for _, s := range subs {
		h.add(s, 0)
	}
	for seq := uint64(1); seq <= 2; seq++ {
		dropped := h.publish([]Committed{{Conversation: "c", Seq: seq, Frame: []byte("{}")}})
		if want := map[uint64]int{1: 3, 2: 0}[seq]; dropped != want {
			t.Fatalf("event %d dropped %d subscribers, want %d", seq, dropped, want)
		}
	}
	for i, s := range subs {
		want := 2
		if s.full {
			want = 0
		}
		if s.n != want || h.subs.has(s) == s.full {
			t.Errorf("subscriber %d (full %v) got %d frames, subscribed %v; want %d frames", i, s.full, s.n, h.subs.has(s), want)
		}
	}
	for i, e := range h.subs.list {
		if h.subs.at[e.sub] != i {
			t.Errorf("subscriber at %d is listed at %d", i, h.subs.at[e.sub])
		}
	}
	if got := testutil.ToFloat64(h.metrics.Subscriptions); got != 2 {
		t.Errorf("subscriptions gauge %v, want 2", got)
	}
}

// TestAddAgainMovesTheSubscriber checks that adding a live subscriber
// again moves where it resumes from, without a second entry: a send can
// make a subscriber live while its subscribe replays.
func TestAddAgainMovesTheSubscriber(t *testing.T) {
	h := newBenchHub("c", 0)
	s := &countingSub{}
	h.add(s, 0)
	h.add(s, 5)
	if len(h.subs.list) != 1 || h.subs.list[0].after != 5 {
		t.Fatalf("subscribers %+v, want one from seq 5", h.subs.list)
	}
	if got := testutil.ToFloat64(h.metrics.Subscriptions); got != 1 {
		t.Errorf("subscriptions gauge %v, want 1", got)
	}
	h.publish([]Committed{{Conversation: "c", Seq: 5, Frame: []byte("{}")}, {Conversation: "c", Seq: 6, Frame: []byte("{}")}})
	if s.n != 1 {
		t.Errorf("got %d frames, want 1 (seq 6 only)", s.n)
	}
}
