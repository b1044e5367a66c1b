package jetlog

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/jetlog/natstest"
	"github.com/chatgateway/gateway/protocol"
)

// TestOwnRecordAfterUnseenOnes: gateway b follows a new conversation, and
// before its follower has delivered anything, gateway a stores seqs 1–2
// and b stores seq 3. b reports 1 and 2 before 3: a hub that follows from
// the start must see every event, not the first one b itself stored.
func TestOwnRecordAfterUnseenOnes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := natstest.Start(t)
	a, b := openStore(t, srv.URL(), "a"), openStore(t, srv.URL(), "b")
	var mu sync.Mutex
	var got []uint64
	b.Start(func(cs []convo.Committed) {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range cs {
			got = append(got, c.Seq)
		}
	})
	const id = "c1"
	appendTo := func(s *Store, a *convo.Append) {
		t.Helper()
		if _, err := s.Append(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	create(t, a, id)

	// What Follow does at once; its follower, which starts in the
	// background, is left out, as if it had not delivered yet.
	c, err := b.acquire(id)
	if err != nil {
		t.Fatal(err)
	}
	c.repMu.Lock()
	c.follows++
	c.repMu.Unlock()
	defer b.release(c)

	appendTo(a, &convo.Append{Conversation: id, Build: deltas("one", "two")})
	appendTo(b, &convo.Append{Conversation: id, Build: deltas("three")})
	mu.Lock()
	defer mu.Unlock()
	if want := []uint64{1, 2, 3}; !slices.Equal(got, want) {
		t.Fatalf("b reported seqs %v, want %v", got, want)
	}
}

// TestOwnRecordReportedAfterItsAppend: a gateway that follows a
// conversation gets its own records twice, from the append once it is
// acknowledged and from its follower. Each is reported after the
// append's Durable has run (the ack of a send goes out there, before its
// message event), whichever comes first.
func TestOwnRecordReportedAfterItsAppend(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openStore(t, natstest.Start(t).URL(), "a")
	const id, appends = "c1", 100
	var mu sync.Mutex
	durable := map[uint64]bool{} // by seq: the append's Durable ran
	var early []uint64
	s.Start(func(cs []convo.Committed) {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range cs {
			if !durable[c.Seq] {
				early = append(early, c.Seq)
			}
		}
	})
	markDurable := func(res *convo.Appended) {
		mu.Lock()
		defer mu.Unlock()
		for _, ev := range res.Events {
			durable[ev.Seq] = true
		}
	}
	create(t, s, id)
	m, err := s.Meta(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Follow(id, 0, m.CreatedAt)()
	for range appends {
		if _, err := s.Append(ctx, &convo.Append{Conversation: id, Build: deltas("x"), Durable: markDurable}); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(early) > 0 {
		t.Fatalf("seqs %v reported before their append's Durable ran", early)
	}
}

// waitLocker is the lock of a conversation's ownCond that tells, as a
// waiter lets it go, that someone waits.
type waitLocker struct {
	*sync.Mutex
	waiting chan struct{}
}

func (l waitLocker) Unlock() {
	select {
	case l.waiting <- struct{}{}:
	default:
	}
	l.Mutex.Unlock()
}

// TestGapFilledAfterOwnAppend: this gateway's append of seq 1 is stored
// and its Durable has not run when another gateway's record (seq 2)
// reaches the follower here. Filling the gap before seq 2, the follower
// waits for the append to report seq 1 after its Durable, rather than
// report it first.
func TestGapFilledAfterOwnAppend(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := natstest.Start(t)
	a, b := openStore(t, srv.URL(), "a"), openStore(t, srv.URL(), "b")
	var mu sync.Mutex
	durable := false
	var early []uint64 // seq 1 reported before its Durable ran
	a.Start(func(cs []convo.Committed) {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range cs {
			if c.Seq == 1 && !durable {
				early = append(early, c.Seq)
			}
		}
	})
	const id = "c1"
	create(t, a, id)
	// Followed here, as Follow makes it, without a follower of its own:
	// the test delivers the other gateway's record itself.
	c, err := a.acquire(id)
	if err != nil {
		t.Fatal(err)
	}
	defer a.release(c)
	waiting := make(chan struct{}, 1)
	c.repMu.Lock()
	c.follows++
	c.ownCond = sync.NewCond(waitLocker{&c.repMu, waiting})
	c.repMu.Unlock()

	inDurable, release, appended := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		_, err := a.Append(ctx, &convo.Append{Conversation: id, Build: deltas("x"), Durable: func(*convo.Appended) {
			close(inDurable)
			<-release
			mu.Lock()
			durable = true
			mu.Unlock()
		}})
		appended <- err
	}()
	<-inDurable
	if _, err := b.Append(ctx, &convo.Append{Conversation: id, Build: deltas("x")}); err != nil {
		t.Fatal(err)
	}
	recs, err := a.log.Read(ctx, id, 1, 0, 10)
	if err != nil || len(recs) == 0 || recs[len(recs)-1].Seq != 2 {
		t.Fatalf("read %d records, %v; want seq 2 last", len(recs), err)
	}
	delivered := make(chan struct{})
	go func() {
		defer close(delivered)
		a.deliver(c, recs[len(recs)-1], nil, time.Now(), c.gen)
	}()
	select {
	case <-waiting: // the follower waits for the append
	case <-delivered: // it did not wait
	}
	close(release)
	if err := <-appended; err != nil {
		t.Fatal(err)
	}
	<-delivered
	mu.Lock()
	defer mu.Unlock()
	if len(early) > 0 {
		t.Fatal("seq 1 was reported before its append's Durable ran")
	}
}

// openStore opens a Store of gateway node on the NATS server at url,
// closed when the test ends.
func openStore(t *testing.T, url, node string) *Store {
	t.Helper()
	s, err := OpenStore(context.Background(), url, StoreOptions{Node: node, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// create stores conversation id, with no event, through s.
func create(t *testing.T, s *Store, id string) {
	t.Helper()
	if _, err := s.Append(context.Background(), &convo.Append{Conversation: id, New: &convo.Meta{Owner: "u", Conversation: protocol.Conversation{ID: id, Model: "m"}},
		Build: func(*convo.Meta) ([]convo.Draft, error) { return nil, nil }}); err != nil {
		t.Fatal(err)
	}
}

// deltas is the Build of one delta of turn t1 per text.
func deltas(texts ...string) func(*convo.Meta) ([]convo.Draft, error) {
	return func(*convo.Meta) ([]convo.Draft, error) {
		var out []convo.Draft
		for _, text := range texts {
			out = append(out, convo.Draft{Event: &protocol.Event{Type: protocol.EventDelta, Turn: "t1", Text: text}})
		}
		return out, nil
	}
}
