package jetlog_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chatgateway/gateway/internal/jetlog"
	"github.com/chatgateway/gateway/internal/jetlog/natstest"
)

func TestAppendIsFencedByPosition(t *testing.T) {
	l, _ := open(t, jetlog.Options{})
	ctx := context.Background()
	first := rec(1, `{"n":1}`)
	p1, err := l.Append(ctx, "c.1", first, 0)
	if err != nil {
		t.Fatal(err)
	}
	// Trying the same record again (its answer was lost) stores nothing.
	if again, err := l.Append(ctx, "c.1", first, 0); err != nil || again != p1 {
		t.Fatalf("the same record again: %d, %v; want %d", again, err, p1)
	}
	// A writer that has not seen event 1 must not store another seq 1.
	if _, err := l.Append(ctx, "c.1", rec(1, `{"fork":1}`), 0); !errors.Is(err, jetlog.ErrFenced) {
		t.Fatalf("stale append: got %v, want ErrFenced", err)
	}
	// Another conversation's events do not move this one's position.
	if _, err := l.Append(ctx, "other", rec(1, `{}`), 0); err != nil {
		t.Fatal(err)
	}
	two := rec(2, `{"n":2}`, `{"n":3}`)
	two.Meta = []byte(`{"last_seq":3}`)
	p2, err := l.Append(ctx, "c.1", two, p1)
	if err != nil {
		t.Fatal(err)
	}
	last, err := l.Last(ctx, "c.1")
	if err != nil {
		t.Fatal(err)
	}
	if last.Seq != 2 || last.Last() != 3 || last.Pos != p2 || string(last.Frames[1]) != `{"n":3}` || string(last.Meta) != `{"last_seq":3}` {
		t.Fatalf("last = %+v, want seqs 2 and 3 at %d", last, p2)
	}
	got, err := l.Read(ctx, "c.1", 1, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Seq != 1 || string(got[0].Frames[0]) != `{"n":1}` || got[1].Seq != 2 || len(got[1].Frames) != 2 {
		t.Fatalf("read = %+v", got)
	}
	if none, err := l.Last(ctx, "none"); err != nil || none != nil {
		t.Fatalf("last of an empty conversation = %+v, %v", none, err)
	}
}

func TestConcurrentWritersStayGapless(t *testing.T) {
	l, _ := open(t, jetlog.Options{})
	ctx := context.Background()
	const writers, each = 4, 25
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := 0; i < each; {
				last, err := l.Last(ctx, "c")
				if err != nil {
					t.Error(err)
					return
				}
				var seq, pos uint64
				if last != nil {
					seq, pos = last.Last(), last.Pos
				}
				_, err = l.Append(ctx, "c", rec(seq+1, fmt.Sprintf(`{"w":%d,"i":%d}`, w, i)), pos)
				if errors.Is(err, jetlog.ErrFenced) {
					continue // read what the others wrote, then try again
				}
				if err != nil {
					t.Error(err)
					return
				}
				i++
			}
		})
	}
	wg.Wait()
	var all []*jetlog.Record
	for from := uint64(1); ; {
		got, err := l.Read(ctx, "c", from, 0, 30)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 {
			break
		}
		all = append(all, got...)
		from = got[len(got)-1].Pos + 1
	}
	if len(all) != writers*each {
		t.Fatalf("%d events, want %d", len(all), writers*each)
	}
	for i, e := range all {
		if e.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d", i, e.Seq)
		}
	}
}

func TestLocateFindsEverySeq(t *testing.T) {
	l, _ := open(t, jetlog.Options{})
	ctx := context.Background()
	want := map[uint64]uint64{} // seq of c1 → position of its record
	var next [2]uint64
	var prev [2]uint64
	for i := range 40 {
		// Interleave two conversations so that positions skip, and
		// store some records with two events.
		c := i % 2
		r := rec(next[c]+1, `{}`)
		if i%3 == 0 {
			r = rec(next[c]+1, `{}`, `{}`)
		}
		pos, err := l.Append(ctx, fmt.Sprint("c", c), r, prev[c])
		if err != nil {
			t.Fatal(err)
		}
		prev[c], next[c] = pos, r.Last()
		if c == 1 {
			for seq := r.Seq; seq <= r.Last(); seq++ {
				want[seq] = pos
			}
		}
	}
	for seq, pos := range want {
		got, err := l.Locate(ctx, "c1", seq, nil)
		if err != nil || got != pos {
			t.Fatalf("locate %d = %d, %v; want %d", seq, got, err, pos)
		}
	}
	if _, err := l.Locate(ctx, "c1", next[1]+1, nil); !errors.Is(err, jetlog.ErrNotFound) {
		t.Fatalf("locate beyond the end: %v", err)
	}
}

func TestFollowSeesEveryWriter(t *testing.T) {
	l, srv := open(t, jetlog.Options{})
	other := connect(t, srv.URL(), jetlog.Options{})
	ctx := context.Background()
	got := make(chan *jetlog.Record, 100)
	f, err := l.Follow(ctx, "c", 1, slog.Default(), func(r *jetlog.Record) { got <- r })
	if err != nil {
		t.Fatal(err)
	}
	defer f.Stop()
	var prev uint64
	for i := range 10 {
		w := l
		if i%2 == 1 {
			w = other
		}
		if prev, err = w.Append(ctx, "c", rec(uint64(i+1), `{}`), prev); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 10 {
		if r := <-got; r.Seq != uint64(i+1) {
			t.Fatalf("followed seq %d, want %d", r.Seq, i+1)
		}
	}
}

// TestManyFollowers follows more conversations at once than nats-server
// lets a stream have consumers unless it sets a limit of its own (1,000),
// then stops every follow: the stream must hold no consumer afterwards,
// or follows that come and go would use the limit up within minutes.
func TestManyFollowers(t *testing.T) {
	l, srv := open(t, jetlog.Options{})
	ctx := context.Background()
	const n = 1001
	fs := make([]*jetlog.Follower, 0, n)
	for i := range n {
		f, err := l.Follow(ctx, fmt.Sprint("c", i), 1, slog.Default(), func(*jetlog.Record) {})
		if err != nil {
			t.Fatalf("follow %d: %v", i, err)
		}
		fs = append(fs, f)
	}
	for _, f := range fs {
		f.Stop()
	}
	s, err := rawJetStream(t, srv).Stream(ctx, jetlog.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Consumers != 0 {
		t.Fatalf("after every follow stopped the stream has %d consumers, want none", info.State.Consumers)
	}
}

func TestMetaCompareAndSet(t *testing.T) {
	l, _ := open(t, jetlog.Options{})
	ctx := context.Background()
	rev, err := l.CreateMeta(ctx, "c.1", "ann@example.com", []byte(`v1`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.CreateMeta(ctx, "c.1", "ann@example.com", []byte(`v1`)); !errors.Is(err, jetlog.ErrExists) {
		t.Fatalf("second create: %v", err)
	}
	rev2, err := l.UpdateMeta(ctx, "c.1", []byte(`v2`), rev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.UpdateMeta(ctx, "c.1", []byte(`stale`), rev); !errors.Is(err, jetlog.ErrConflict) {
		t.Fatalf("stale update: %v", err)
	}
	data, got, err := l.Meta(ctx, "c.1")
	if err != nil || got != rev2 || string(data) != "v2" {
		t.Fatalf("meta = %s @%d, %v", data, got, err)
	}
	if _, err := l.CreateMeta(ctx, "c2", "ann@example.com", nil); err != nil {
		t.Fatal(err)
	}
	ids, err := l.Owned(ctx, "ann@example.com")
	if err != nil || len(ids) != 2 {
		t.Fatalf("owned = %v, %v", ids, err)
	}
	if ids, err := l.Owned(ctx, "bob"); err != nil || len(ids) != 0 {
		t.Fatalf("bob owns %v, %v", ids, err)
	}
	if _, err := l.Append(ctx, "c.1", rec(1, `{}`), 0); err != nil {
		t.Fatal(err)
	}
	if err := l.Delete(ctx, "c.1", "ann@example.com"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.Meta(ctx, "c.1"); !errors.Is(err, jetlog.ErrNotFound) {
		t.Fatalf("meta after delete: %v", err)
	}
	if last, err := l.Last(ctx, "c.1"); err != nil || last != nil {
		t.Fatalf("events after delete: %+v, %v", last, err)
	}
	if ids, _ := l.Owned(ctx, "ann@example.com"); len(ids) != 1 || ids[0] != "c2" {
		t.Fatalf("owned after delete = %v", ids)
	}
}

func TestLeaseIsExclusive(t *testing.T) {
	l, _ := open(t, jetlog.Options{})
	ctx := context.Background()
	a, err := l.Acquire(ctx, "c", "node-a")
	if err != nil {
		t.Fatal(err)
	}
	if !a.Valid() {
		t.Fatal("a fresh lease is not valid")
	}
	if _, err := l.Acquire(ctx, "c", "node-b"); !errors.Is(err, jetlog.ErrLeaseHeld) {
		t.Fatalf("b acquired a held lease: %v", err)
	}
	if h, _ := l.Holder(ctx, "c"); h != "node-a" {
		t.Fatalf("holder = %q", h)
	}
	// node-a restarted: it takes its own lease back, and the old handle is
	// fenced.
	a2, err := l.Acquire(ctx, "c", "node-a")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Renew(ctx); !errors.Is(err, jetlog.ErrLeaseLost) {
		t.Fatalf("renewing a superseded lease: %v", err)
	}
	if a.Valid() {
		t.Fatal("a lost lease is still valid")
	}
	if err := a2.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a2.Release(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := l.Acquire(ctx, "c", "node-b")
	if err != nil {
		t.Fatalf("b after release: %v", err)
	}
	_ = b.Release(ctx)
}

// TestConcurrentAppendsShareBatches appends to many conversations at
// once, so that appends go to the stream in atomic batches, in the last
// round some of them stale: each append gets its own answer (a stale one
// ErrFenced, the others their position), and the stream holds exactly
// the others. It runs on one server and on a three-server cluster (a
// replicated stream, where a batch is one proposal).
func TestConcurrentAppendsShareBatches(t *testing.T) {
	t.Run("OneServer", func(t *testing.T) {
		l, _ := open(t, jetlog.Options{})
		appendsShareBatches(t, l)
	})
	t.Run("Replicated", func(t *testing.T) {
		c := natstest.StartCluster(t, 3)
		appendsShareBatches(t, connect(t, c.URLs(), jetlog.Options{Replicas: 3}))
	})
}

func appendsShareBatches(t *testing.T, l *jetlog.Log) {
	t.Helper()
	ctx := context.Background()
	const convs = 60
	first := make([]uint64, convs)
	for i := range convs {
		var err error
		if first[i], err = l.Append(ctx, fmt.Sprint("c", i), rec(1, `{"n":1}`), 0); err != nil {
			t.Fatal(err)
		}
	}
	stale := func(round, i int) bool { return round == 2 && i%5 == 0 }
	for round := range 3 {
		pos := make([]uint64, convs)
		errs := make([]error, convs)
		var wg sync.WaitGroup
		for i := range convs {
			wg.Go(func() {
				prev := first[i]
				if stale(round, i) {
					prev = 0 // stale: it has not seen seq 1
				}
				pos[i], errs[i] = l.Append(ctx, fmt.Sprint("c", i), rec(uint64(round+2), fmt.Sprintf(`{"round":%d}`, round)), prev)
			})
		}
		wg.Wait()
		for i := range convs {
			id := fmt.Sprint("c", i)
			last, err := l.Last(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if stale(round, i) {
				if !errors.Is(errs[i], jetlog.ErrFenced) || last.Pos != first[i] {
					t.Fatalf("round %d: the stale append to %s: %v, and its last record is at %d, want fenced at %d", round, id, errs[i], last.Pos, first[i])
				}
				continue
			}
			if errs[i] != nil {
				t.Fatalf("round %d: append to %s: %v", round, id, errs[i])
			}
			if last.Pos != pos[i] || last.Seq != uint64(round+2) || string(last.Frames[0]) != fmt.Sprintf(`{"round":%d}`, round) {
				t.Fatalf("round %d: %s's last record is %+v, want seq %d at the acknowledged %d", round, id, last, round+2, pos[i])
			}
			first[i] = pos[i]
		}
	}
}

// TestOpenUpgradesAnOlderSetup opens a Log where an earlier version of
// the gateway left its stream without atomic batches and its leases
// bucket without markers, both with the server's default consumer limit:
// Open turns both on and raises the limits.
func TestOpenUpgradesAnOlderSetup(t *testing.T) {
	srv := natstest.Start(t)
	js := rawJetStream(t, srv)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: jetlog.DefaultStream, Subjects: []string{"conv.>"},
		Storage: jetstream.FileStorage, AllowDirect: true}); err != nil {
		t.Fatal(err)
	}
	leases := jetlog.DefaultStream + "_leases"
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: leases, TTL: 2 * time.Second, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	connect(t, srv.URL(), jetlog.Options{LeaseTTL: 2 * time.Second})
	s, err := js.Stream(ctx, jetlog.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, leases)
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	leaseConsumers := st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.MaxConsumers
	if !cfg.AllowAtomicPublish || cfg.MaxConsumers <= 1000 || leaseConsumers <= 1000 || st.LimitMarkerTTL() != 2*time.Second || st.TTL() != 2*time.Second {
		t.Fatalf("after Open: atomic batches %v, max consumers %d and %d in the leases bucket (want over the server's default of 1,000), lease TTL %s, marker TTL %s",
			cfg.AllowAtomicPublish, cfg.MaxConsumers, leaseConsumers, st.TTL(), st.LimitMarkerTTL())
	}
}

// TestOpenUnderAnAccountLimit opens the log on an account that allows
// fewer consumers than jetlog asks a stream to allow: the stream gets the
// account's limit, instead of JetStream refusing it.
func TestOpenUnderAnAccountLimit(t *testing.T) {
	srv, creds := natstest.StartWithCreds(t)
	js := rawJetStream(t, srv, nats.UserCredentials(creds))
	ctx := context.Background()
	if _, err := jetlog.Open(ctx, js.Conn(), jetlog.Options{}); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, jetlog.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.CachedInfo().Config.MaxConsumers; got != natstest.AccountConsumers {
		t.Fatalf("the stream allows %d consumers, want the account's %d", got, natstest.AccountConsumers)
	}
}

// TestOpenRefusesASmallMaxPayload opens the log on a server whose largest
// message is under MinPayload: a long reply's turn_end could not be
// stored there, so Open refuses, naming the setting.
func TestOpenRefusesASmallMaxPayload(t *testing.T) {
	srv := natstest.StartWith(t, func(o *server.Options) { o.MaxPayload = jetlog.MinPayload / 2 })
	nc := rawJetStream(t, srv).Conn()
	if _, err := jetlog.Open(context.Background(), nc, jetlog.Options{}); err == nil || !strings.Contains(err.Error(), "max_payload") {
		t.Fatalf("Open on a server with max_payload %d: %v, want a refusal naming max_payload", jetlog.MinPayload/2, err)
	}
}

// TestReadStopsAtUpTo reads a conversation's log up to the position of
// its third record, with other conversations' records in between: the
// read ends there. The server takes no bound of position for a batch of
// a subject's records (up_to_seq bounds only a batch of subjects' last
// records), and sent the records after it too.
func TestReadStopsAtUpTo(t *testing.T) {
	l, _ := open(t, jetlog.Options{})
	ctx := context.Background()
	var pos []uint64
	var prev uint64
	for i := range 5 {
		var err error
		if prev, err = l.Append(ctx, "c", rec(uint64(i+1), `{}`), prev); err != nil {
			t.Fatal(err)
		}
		pos = append(pos, prev)
		if _, err := l.Append(ctx, fmt.Sprint("other", i), rec(1, `{}`), 0); err != nil {
			t.Fatal(err)
		}
	}
	got, err := l.Read(ctx, "c", 1, pos[2], 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[2].Pos != pos[2] {
		t.Fatalf("a read up to position %d got %d records", pos[2], len(got))
	}
}
