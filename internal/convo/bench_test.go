package convo

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/chatgateway/gateway/protocol"
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
			ev := []committed{{conversation: "c", frame: frame}}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				ev[0].seq = uint64(i + 1)
				h.publish(ev)
			}
		})
	}
}

// BenchmarkAppend measures storing delta events through the commit loop,
// from one writer (each append pays a commit) and from many in parallel
// (appends share commits), against bare bbolt Updates of the same size on
// the same disk.
func BenchmarkAppend(b *testing.B) {
	b.Run("bare-bolt-update", func(b *testing.B) {
		db, err := bolt.Open(filepath.Join(b.TempDir(), "bare.db"), 0o600, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		val := make([]byte, 120)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			err := db.Update(func(tx *bolt.Tx) error {
				bk, err := tx.CreateBucketIfNotExists([]byte("b"))
				if err != nil {
					return err
				}
				return bk.Put(seqKey("c", uint64(i)), val)
			})
			if err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, parallel := range []bool{false, true} {
		b.Run(fmt.Sprint("parallel=", parallel), func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), "db"), &scriptModel{gate: make(chan struct{})}, Config{MaxQueuedTurns: 1 << 20})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close(context.Background())
			appendOne := func(id string) {
				err := s.st.do(func(bt *batch) error {
					m, err := bt.meta(id)
					if err != nil {
						return err
					}
					return bt.append(m, &protocol.Event{Type: protocol.EventDelta, Turn: "t", Text: "a few words of text"})
				})
				if err != nil {
					b.Error(err)
				}
			}
			newConvo := func() string {
				c, err := s.Create(context.Background(), "u", &protocol.Create{})
				if err != nil {
					b.Fatal(err)
				}
				return c.ID
			}
			c0, o0 := s.st.stats()
			b.ReportAllocs()
			b.ResetTimer()
			if parallel {
				b.SetParallelism(64)
				b.RunParallel(func(pb *testing.PB) {
					id := newConvo()
					for pb.Next() {
						appendOne(id)
					}
				})
			} else {
				id := newConvo()
				for i := 0; i < b.N; i++ {
					appendOne(id)
				}
			}
			b.StopTimer()
			c1, o1 := s.st.stats()
			b.ReportMetric(float64(o1-o0)/float64(c1-c0), "ops/commit")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
