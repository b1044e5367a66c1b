package convo

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/chatgateway/gateway/internal/metrics"
)

// discard is a Subscriber that only counts frames.
type discard struct{ n atomic.Int64 }

func (d *discard) Send(Frame) bool { d.n.Add(1); return true }

func (d *discard) SendWait(context.Context, Frame) error { d.n.Add(1); return nil }

func (d *discard) Gone(string) {}

// newBenchHub returns a hub of conversation id with subs live
// subscribers that discard what they get.
func newBenchHub(id string, subs int) *hub {
	h := &hub{id: id, metrics: metrics.New()}
	for range subs {
		h.add(&discard{}, 0)
	}
	return h
}

// BenchmarkPublishEach measures what a commit's hand-off does for each
// of its events: publishing it to its conversation's hub, here one of
// 1,000 with one subscriber each, taken in turn as the commits of a
// thousand streams take them, so that each hub's memory has left the
// cache since its last event.
func BenchmarkPublishEach(b *testing.B) {
	hubs := make([]*hub, 1000)
	for i := range hubs {
		hubs[i] = newBenchHub(fmt.Sprint("c", i), 1)
	}
	frame := []byte(`{"type":"delta","conversation":"c","seq":1,"turn":"t","text":"hello"}`)
	ev := []Committed{{Frame: frame}}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		h := hubs[i%len(hubs)]
		ev[0].Conversation, ev[0].Seq = h.id, uint64(i+1)
		h.publish(ev)
	}
}

// BenchmarkHubBroadcast measures publishing one event to S live
// subscribers.
func BenchmarkHubBroadcast(b *testing.B) {
	for _, subs := range []int{1, 100, 1000} {
		b.Run(fmt.Sprint("subs=", subs), func(b *testing.B) {
			h := newBenchHub("c", subs)
			frame := []byte(`{"type":"delta","conversation":"c","seq":1,"turn":"t","text":"hello"}`)
			ev := []Committed{{Conversation: "c", Frame: frame}}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ev[0].Seq = uint64(i + 1)
				h.publish(ev)
			}
		})
	}
}
