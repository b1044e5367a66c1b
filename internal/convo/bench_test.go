package convo

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
)

// discard is a Subscriber that only counts frames.
type discard struct{ n atomic.Int64 }

func (d *discard) Send(Frame) bool { d.n.Add(1); return true }

func (d *discard) SendWait(context.Context, Frame) error { d.n.Add(1); return nil }

func (d *discard) Gone(string) {}

// BenchmarkHubBroadcast measures publishing one event to S live
// subscribers.
func BenchmarkHubBroadcast(b *testing.B) {
	for _, subs := range []int{1, 100, 1000} {
		b.Run(fmt.Sprint("subs=", subs), func(b *testing.B) {
			h := &hub{id: "c", metrics: nil, subs: map[Subscriber]uint64{}}
			for i := 0; i < subs; i++ {
				h.subs[&discard{}] = 0
			}
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
