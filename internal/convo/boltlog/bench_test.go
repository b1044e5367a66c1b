package boltlog

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

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
			s, err := Open(filepath.Join(b.TempDir(), "db"), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			appendOne := func(id string) {
				_, err := s.Append(ctx, &convo.Append{Conversation: id, Build: func(*convo.Meta) ([]convo.Draft, error) {
					return []convo.Draft{{Event: &protocol.Event{Type: protocol.EventDelta, Turn: "t", Text: "a few words of text"}}}, nil
				}})
				if err != nil {
					b.Error(err)
				}
			}
			var ids atomic.Int64
			newConvo := func() string {
				id := fmt.Sprint("c", ids.Add(1))
				_, err := s.Append(ctx, &convo.Append{Conversation: id, New: &convo.Meta{Owner: "u"},
					Build: func(*convo.Meta) ([]convo.Draft, error) { return nil, nil }})
				if err != nil {
					b.Fatal(err)
				}
				return id
			}
			c0, o0 := s.Stats()
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
			c1, o1 := s.Stats()
			b.ReportMetric(float64(o1-o0)/float64(c1-c0), "ops/commit")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

// BenchmarkHistory reads the whole history (200 messages) of a
// conversation of 10,000 events, 100 turns of 97 deltas each, as a turn
// does at its start: the walk over the conversation's events that
// history makes since messages are read from the events that carry them.
func BenchmarkHistory(b *testing.B) {
	l, err := Open(filepath.Join(b.TempDir(), "db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	ctx := context.Background()
	_, err = l.Append(ctx, &convo.Append{Conversation: "c", New: &convo.Meta{Owner: "u"},
		Build: func(*convo.Meta) ([]convo.Draft, error) { return nil, nil }})
	if err != nil {
		b.Fatal(err)
	}
	for turn := range 100 {
		t := fmt.Sprint("t", turn)
		drafts := []convo.Draft{{Event: &protocol.Event{Type: protocol.EventMessage,
			Message: &protocol.Message{ID: "m" + t, Role: protocol.RoleUser, Text: "a question", Turn: t}}},
			{Event: &protocol.Event{Type: protocol.EventTurnStart, Turn: t}}}
		for range 97 {
			drafts = append(drafts, convo.Draft{Event: &protocol.Event{Type: protocol.EventDelta, Turn: t, Text: "a few words "}})
		}
		drafts = append(drafts, convo.Draft{Event: &protocol.Event{Type: protocol.EventTurnEnd, Turn: t, StopReason: protocol.StopEndTurn,
			Message: &protocol.Message{ID: "r" + t, Role: protocol.RoleAssistant, Text: "a few words", Turn: t}}})
		_, err := l.Append(ctx, &convo.Append{Conversation: "c", Build: func(*convo.Meta) ([]convo.Draft, error) { return drafts, nil }})
		if err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		msgs, _, err := l.Messages(ctx, "c", 0, 0, 0)
		if err != nil || len(msgs) != 200 {
			b.Fatalf("%d messages, %v", len(msgs), err)
		}
	}
}

// BenchmarkCommit times rounds of commits shaped like those of 1,000
// streaming conversations (docs/PERFORMANCE.md): each round queues one op
// for each of 210 conversations at once, taken in turn from 1,000 that
// each go round a cycle of a send (message and turn_start, keyed by a
// client_msg_id), nine deltas of two coalesced chunks and a turn_end
// with the reply: about 172 deltas, 19 sends and 19 turn ends a round.
// The loop stores a round in two commits, the sends and turn ends first
// (the reply chunks wait for the next commit). Besides the time per round
// it reports the process's CPU time per round (all threads, so the
// collector's work on what the commits allocated counts too), and the
// commits and pages bbolt wrote per round. With fsync=false the file is
// not synced (bbolt's NoSync): the CPU figure then varies much less from
// run to run, which small changes need.
func BenchmarkCommit(b *testing.B) {
	for _, fsync := range []bool{true, false} {
		b.Run(fmt.Sprint("fsync=", fsync), func(b *testing.B) { benchmarkCommit(b, fsync) })
	}
}

func benchmarkCommit(b *testing.B, fsync bool) {
	const (
		conversations = 1000
		perCommit     = 210
		deltas        = 9
		cycle         = deltas + 2
	)
	l, err := Open(filepath.Join(b.TempDir(), "db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	// Before the first op: the loop then reads it after this write.
	l.db.NoSync = !fsync
	ctx := context.Background()
	ids := make([]string, conversations)
	step := make([]int, conversations)
	turns := make([]int, conversations)
	for i := range ids {
		ids[i] = fmt.Sprintf("c_%016x", i)
		_, err := l.Append(ctx, &convo.Append{Conversation: ids[i], New: &convo.Meta{Owner: "u"},
			Build: func(*convo.Meta) ([]convo.Draft, error) { return nil, nil }})
		if err != nil {
			b.Fatal(err)
		}
	}
	// nextAppend returns conversation i's next append, a step further round its
	// cycle; spreading the conversations over the cycle at the start
	// gives every commit the same mix.
	nextAppend := func(i int) *convo.Append {
		id, s := ids[i], step[i]%cycle
		step[i]++
		turn := fmt.Sprint("t", turns[i])
		switch s {
		case 0:
			return &convo.Append{Conversation: id, ClientMsgID: fmt.Sprint("k", turns[i]), Build: func(*convo.Meta) ([]convo.Draft, error) {
				return []convo.Draft{{Event: &protocol.Event{Type: protocol.EventMessage,
					Message: &protocol.Message{ID: "m_" + turn, Role: protocol.RoleUser, Text: "a question of a few words", Turn: turn}}},
					{Event: &protocol.Event{Type: protocol.EventTurnStart, Turn: turn, Model: "m"}}}, nil
			}}
		case cycle - 1:
			turns[i]++
			return &convo.Append{Conversation: id, Build: func(*convo.Meta) ([]convo.Draft, error) {
				return []convo.Draft{{Event: &protocol.Event{Type: protocol.EventTurnEnd, Turn: turn, StopReason: protocol.StopEndTurn,
					Usage:   &protocol.Usage{InputTokens: 100, OutputTokens: 200},
					Message: &protocol.Message{ID: "r_" + turn, Role: protocol.RoleAssistant, Text: "the reply, all its chunks together", Turn: turn}}}}, nil
			}}
		default:
			return &convo.Append{Conversation: id, Deferrable: true, Build: func(*convo.Meta) ([]convo.Draft, error) {
				return []convo.Draft{{Event: &protocol.Event{Type: protocol.EventDelta, Turn: turn,
					Text: "1764864000000000000 chunk 1764864000000000000 chunk"}}}, nil
			}}
		}
	}
	for i := range step {
		step[i] = i % cycle
	}
	// commit queues one op for each of the next perCommit conversations
	// at once, so that one round of commits takes them all, and waits for
	// them.
	next := 0
	ops := make([]*op, perCommit)
	dones := make([]<-chan struct{}, perCommit)
	commit := func() {
		l.mu.Lock()
		for j := range ops {
			ops[j] = newAppendOp(ctx, nextAppend(next))
			dones[j] = await(ops[j])
			next = (next + 1) % conversations
		}
		l.queue = append(l.queue, ops...)
		l.mu.Unlock()
		l.wakeLoop()
		for j, o := range ops {
			<-dones[j]
			if o.err != nil {
				b.Fatal(o.err)
			}
		}
	}
	// Go round every cycle twice, so that the tail and the events bucket
	// hold what they hold in a steady state.
	for range 2 * cycle * conversations / perCommit {
		commit()
	}
	c0, o0 := l.Stats()
	w0 := pagesWritten(l)
	cpu0 := cpuTime(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		commit()
	}
	b.StopTimer()
	c1, o1 := l.Stats()
	if o1-o0 != uint64(b.N*perCommit) || c1-c0 != uint64(2*b.N) {
		b.Fatalf("%d ops in %d commits, want %d in %d", o1-o0, c1-c0, b.N*perCommit, 2*b.N)
	}
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N)/1e3, "cpu-µs/round")
	b.ReportMetric(float64(pagesWritten(l)-w0)/float64(b.N), "pages/round")
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// pagesWritten is how many pages l's file has had written.
func pagesWritten(l *Log) int64 {
	st := l.db.Stats()
	return st.TxStats.GetWrite()
}

// deleteFromKeys is how many keys BenchmarkDeleteFrom deletes at a time.
const deleteFromKeys = 4096

// BenchmarkDeleteFrom deletes deleteFromKeys keys in order from the head
// of a bucket of 8-byte keys and values of a delta's size, in one
// transaction, as deleting a long conversation deletes its keys:
// deleteFrom against bbolt's own way, a Bucket.Delete for each key read
// beforehand.
func BenchmarkDeleteFrom(b *testing.B) {
	ways := []struct {
		name string
		cut  func(bk *bolt.Bucket) error
	}{
		{"bucket-delete", func(bk *bolt.Bucket) error {
			var keys [][]byte
			c := bk.Cursor()
			for k, _ := c.First(); k != nil && len(keys) < deleteFromKeys; k, _ = c.Next() {
				keys = append(keys, k)
			}
			for _, k := range keys {
				if err := bk.Delete(k); err != nil {
					return err
				}
			}
			return nil
		}},
		{"deleteFrom", func(bk *bolt.Bucket) error {
			n := 0
			return deleteFrom(bk, nil, func([]byte) bool { n++; return n <= deleteFromKeys })
		}},
	}
	for _, w := range ways {
		b.Run(w.name, func(b *testing.B) {
			db, err := bolt.Open(filepath.Join(b.TempDir(), "db"), 0o600, &bolt.Options{NoSync: true})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			frame := make([]byte, 150)
			var next uint64
			fill := func(n int) error {
				return db.Update(func(tx *bolt.Tx) error {
					bk, err := tx.CreateBucketIfNotExists(bucketTail)
					bk.FillPercent = appendFill
					for range n {
						if err == nil {
							err = bk.Put(tailKey(next), frame)
							next++
						}
					}
					return err
				})
			}
			if err := fill(4 * deleteFromKeys); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				b.StopTimer()
				if err := fill(deleteFromKeys); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if err := db.Update(func(tx *bolt.Tx) error { return w.cut(tx.Bucket(bucketTail)) }); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
