package loadtest

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
	bolt "go.etcd.io/bbolt"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/demo"
	"github.com/chatgateway/gateway/internal/metrics"
	"github.com/chatgateway/gateway/protocol"
)

// TestMain lets the test binary serve as the load generator's client
// process (see RunChild).
func TestMain(m *testing.M) {
	if child, err := RunChild(os.Stdin, os.Stdout); child {
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// tiny is a configuration small enough for a smoke test under -race. The
// time cap only guards against a hang: the test checks nothing was cut.
func tiny(t *testing.T) Config {
	return Config{
		Dir:           t.TempDir(),
		Conversations: []int{2},
		Subscribers:   []int{3},
		Idle:          []int{5},

		ClusterConversations: []int{2},
		ClusterSubscribers:   []int{2},
		StoreEvents:          200,
		Turns:                2,
		MinSends:             6, // 3 turns each for the 2 conversations
		Chunks:               3,
		ChunkDelay:           time.Millisecond,
		Duration:             30 * time.Second,
		Commits:              20,
		PacedCommits:         5,
		BedrockCalls:         2,
		Log:                  testLogger(t),
		GatewayLog:           testLogger(t),
	}
}

// TestRunSmoke runs every scenario at tiny sizes and checks that each
// step ran to its end.
func TestRunSmoke(t *testing.T) {
	var out bytes.Buffer
	if err := Run(context.Background(), tiny(t), &out); err != nil {
		t.Fatalf("Run: %v\n%s", err, out.String())
	}
	report := out.String()
	for _, want := range []string{"### Baseline", "two files at once", "bare WebSocket frames", "### streams", "### fanout", "### idle", "### cluster", "store: 100 writers", "### Targets", "| 2 | 1ms | 6 |", "| 2 | 0s | 6 |", "| 2, bare pipeline | 1ms | 6 |", "| 2, bare pipeline, nothing stored | 1ms | 6 |"} {
		if !strings.Contains(report, want) {
			t.Errorf("the report lacks %q:\n%s", want, report)
		}
	}
	for _, bad := range []string{"failed", "client errors", "cut by the time cap", "missed a subscriber", "metrics:"} {
		if strings.Contains(report, bad) {
			t.Errorf("the report says %q:\n%s", bad, report)
		}
	}
}

// TestBarePipeline drives the baseline's bare pipelines with the streams
// step: storing or not, with the protocol's events or not, and the
// protocol's keyed by conversation. Every reply
// arrives whole and in order (the step checks), and each turn stores its
// send (two events with the protocol's: message and turn_start), 1 to
// chunks deltas and its end; only the storing pipelines commit.
func TestBarePipeline(t *testing.T) {
	cfg, err := tiny(t).withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	r := &runner{cfg: cfg, log: cfg.Log, dir: cfg.Dir, model: newStampModel(cfg.Chunks, cfg.ChunkBytes, cfg.ChunkDelay)}
	const c = 3
	for _, v := range barePipeVariants {
		res, err := r.streams(context.Background(), c, r.model, func(m *stampModel) (*target, error) { return startBarePipe(r.dir, m, v) })
		if err != nil {
			t.Fatal(err)
		}
		l, turns := res.load, c*cfg.streamTurns(c)
		if l.Errs > 0 || l.Cut || l.metricsErr != nil {
			t.Fatalf("%+v: errors %d (first %v), cut %v, metrics %v", v, l.Errs, l.FirstErr, l.Cut, l.metricsErr)
		}
		if res.turns != turns || res.ack.n != turns || res.relay.n != turns*cfg.Chunks {
			t.Errorf("%+v: turns %d, acks %d, chunks %d; want %d, %d, %d", v, res.turns, res.ack.n, res.relay.n, turns, turns, turns*cfg.Chunks)
		}
		send := 1
		if v.proto {
			send = 2
		}
		if lo, hi := float64((send+2)*turns), float64((send+1+cfg.Chunks)*turns); l.events < lo || l.events > hi {
			t.Errorf("%+v: %v events, want %v to %v", v, l.events, lo, hi)
		}
		if stored := l.commits > 0; stored != v.store {
			t.Errorf("%+v: %v commits", v, l.commits)
		}
	}
}

// TestBarePipelineProtocolFrames reads the frames of two turns from each
// bare pipeline that stores the protocol's events, as
// protocol.ServerFrame: an ack with the stored message, then the message,
// turn_start, deltas and a turn_end whose message is the deltas' text,
// all with a ts and gapless seqs across the turns (the second turn reads
// the first's messages back before it streams). Then it reads the file:
// every event stored, under its key in the global sequence or, by
// conversation, under its conversation and seq; through a tail, every
// event moved under its conversation and seq, and the tail emptied;
// through an index, every event in the global sequence, and one index
// record per turn, under the conversation and the turn's first seq,
// listing where the turn's events are.
func TestBarePipelineProtocolFrames(t *testing.T) {
	for _, v := range []pipeVariant{{store: true, proto: true}, {store: true, proto: true, layout: byConversation}, {store: true, proto: true, layout: throughTail}, {store: true, proto: true, layout: throughIndex}} {
		t.Run(v.name(), func(t *testing.T) {
			dir := t.TempDir()
			events := twoProtocolTurns(t, dir, v)
			files, err := filepath.Glob(filepath.Join(dir, "*.db"))
			if err != nil || len(files) != 1 {
				t.Fatalf("files %v, %v; want the pipeline's one", files, err)
			}
			db, err := bolt.Open(files[0], 0o600, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			stored := 0
			err = db.View(func(tx *bolt.Tx) error {
				bucket := bareLog
				if v.layout == throughIndex {
					checkIndex(t, tx.Bucket(bareIndex), events)
				}
				if v.layout == throughTail {
					bucket = bareEvents
					if n := tx.Bucket(bareTail).Stats().KeyN; n != 0 {
						t.Errorf("%d records left in the tail", n)
					}
				}
				return tx.Bucket(bucket).ForEach(func(k, data []byte) error {
					stored++
					var f protocol.ServerFrame
					if err := json.Unmarshal(data, &f); err != nil {
						return fmt.Errorf("%s: %w", data, err)
					}
					want := binary.BigEndian.AppendUint64(nil, f.Seq)
					if v.layout == byConversation || v.layout == throughTail {
						want = append(append([]byte(f.Conversation), 0), want...)
					}
					if !bytes.Equal(k, want) {
						t.Errorf("%s seq %d stored under %q, want %q", f.Type, f.Seq, k, want)
					}
					return nil
				})
			})
			if err != nil {
				t.Fatal(err)
			}
			if stored != events {
				t.Errorf("%d events stored, want %d", stored, events)
			}
		})
	}
}

// checkIndex checks that the index of a bare pipeline through an index,
// whose one conversation stored events events, lists them all in order:
// the records of the global sequence 1 to events, which are its seqs,
// under the first seq of each turn.
func checkIndex(t *testing.T, index *bolt.Bucket, events int) {
	t.Helper()
	var listed []uint64
	err := index.ForEach(func(k, where []byte) error {
		first := binary.BigEndian.Uint64(k[len(k)-8:])
		if first != uint64(len(listed))+1 || len(where) == 0 || len(where)%8 != 0 {
			t.Errorf("index record %q lists %x after %d records", k, where, len(listed))
		}
		for ; len(where) >= 8; where = where[8:] {
			listed = append(listed, binary.BigEndian.Uint64(where))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := make([]uint64, events)
	for i := range want {
		want[i] = uint64(i) + 1
	}
	if !slices.Equal(listed, want) {
		t.Errorf("the index lists %v, want %v", listed, want)
	}
}

// twoProtocolTurns plays two turns with the bare pipeline v (storing in
// dir), checks their frames, closes the pipeline and returns how many
// events the turns had.
func twoProtocolTurns(t *testing.T, dir string, v pipeVariant) int {
	t.Helper()
	m := newStampModel(3, 27, time.Millisecond)
	tg, err := startBarePipe(dir, m, v)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := tg.close(); err != nil {
			t.Error(err)
		}
	}()
	ws, _, err := websocket.Dial(t.Context(), tg.wsURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	read := func() *protocol.ServerFrame {
		t.Helper()
		_, data, err := ws.Read(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		var f protocol.ServerFrame
		if err := json.Unmarshal(data, &f); err != nil {
			t.Fatalf("%s: %v", data, err)
		}
		return &f
	}
	seq := uint64(0)
	event := func(f *protocol.ServerFrame, typ string) {
		t.Helper()
		seq++
		if f.Type != typ || f.Seq != seq || f.TS.IsZero() {
			t.Fatalf("got %s seq %d ts %v, want %s seq %d with a ts", f.Type, f.Seq, f.TS, typ, seq)
		}
	}
	for turn := range 2 {
		if err := ws.Write(t.Context(), websocket.MessageText, fmt.Appendf(nil, `{"type":"send","id":"s%d","conversation":"c","text":"hi"}`, turn)); err != nil {
			t.Fatal(err)
		}
		ack := read()
		if msg := ack.StoredMessage(); ack.Type != protocol.ReplyAck || msg == nil || msg.Seq != seq+1 || msg.Role != protocol.RoleUser {
			t.Fatalf("turn %d: ack %+v with message %+v", turn, ack, msg)
		}
		event(read(), protocol.EventMessage)
		start := read()
		event(start, protocol.EventTurnStart)
		var text strings.Builder
		f := read()
		for ; f.Type == protocol.EventDelta; f = read() {
			event(f, protocol.EventDelta)
			if f.Turn != start.Turn {
				t.Errorf("delta of turn %q in turn %q", f.Turn, start.Turn)
			}
			text.WriteString(f.Text)
		}
		event(f, protocol.EventTurnEnd)
		if msg := f.StoredMessage(); msg == nil || msg.Text != text.String() || msg.Role != protocol.RoleAssistant || f.Usage == nil || f.LatencyMS == nil {
			t.Errorf("turn %d: turn_end message %+v, usage %v, latency %v; want the deltas' text %q", turn, msg, f.Usage, f.LatencyMS, text.String())
		}
		if text.Len() != 3*27 {
			t.Errorf("turn %d: %d bytes of text, want %d", turn, text.Len(), 3*27)
		}
	}
	return int(seq)
}

// remoteRunner starts a gateway answering with the model newModel returns
// for the tiny configuration, and returns a runner that drives it as a
// remote target: by URL, its metrics scraped. (Its steps start no gateway
// of their own, so runner.model is not used.)
func remoteRunner(t *testing.T, newModel func(Config) convo.Model) *runner {
	t.Helper()
	cfg, err := tiny(t).withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	gw, err := startGateway(cfg.Dir, newModel(cfg), cfg.GatewayLog)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := gw.close(); err != nil {
			t.Error(err)
		}
	})
	cfg.URL = gw.wsURL
	return &runner{cfg: cfg, log: cfg.Log, dir: cfg.Dir, model: newStampModel(cfg.Chunks, cfg.ChunkBytes, cfg.ChunkDelay)}
}

// TestStepsAgainstURL drives a gateway as a remote target (by URL, its
// metrics scraped) and checks the counts the steps measured.
func TestStepsAgainstURL(t *testing.T) {
	r := remoteRunner(t, func(cfg Config) convo.Model { return newStampModel(cfg.Chunks, cfg.ChunkBytes, cfg.ChunkDelay) })
	ctx := context.Background()
	const c, s = 3, 4
	turns, chunks := r.cfg.Turns, r.cfg.Chunks
	model := r.model

	t.Run("streams", func(t *testing.T) {
		res, err := r.streams(ctx, c, model, r.newTarget)
		if err != nil {
			t.Fatal(err)
		}
		l := res.load
		if l.Errs > 0 || l.Cut || l.metricsErr != nil {
			t.Fatalf("errors %d (first %v), cut %v, metrics %v", l.Errs, l.FirstErr, l.Cut, l.metricsErr)
		}
		if res.turns != c*turns || res.ack.n != c*turns || res.relay.n != c*turns*chunks {
			t.Errorf("turns %d, acks %d, chunks %d; want %d, %d, %d", res.turns, res.ack.n, res.relay.n, c*turns, c*turns, c*turns*chunks)
		}
		// Each turn stores its message, turn_start, turn_end and 1 to
		// chunks deltas.
		if lo, hi := float64(c*turns*4), float64(c*turns*(3+chunks)); l.events < lo || l.events > hi {
			t.Errorf("stored events %v, want %v to %v", l.events, lo, hi)
		}
	})
	t.Run("fanout", func(t *testing.T) {
		res, err := r.fanout(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		if l := res.load; l.Errs > 0 || l.Cut || l.clients <= 0 {
			t.Fatalf("errors %d (first %v), cut %v, the subscribers' CPU %v", l.Errs, l.FirstErr, l.Cut, l.clients)
		}
		if res.toLast.n != turns*chunks || res.missing != 0 || res.each.n != s*turns*chunks {
			t.Errorf("chunks to all %d, missing %d, deliveries %d; want %d, 0, %d", res.toLast.n, res.missing, res.each.n, turns*chunks, s*turns*chunks)
		}
	})
}

// TestStepsAgainstUnstampedModel drives a gateway whose model does not
// stamp its chunks (the demo model), as a -url target may: latencies are
// missing, and nothing counts as an error or a lost chunk.
func TestStepsAgainstUnstampedModel(t *testing.T) {
	r := remoteRunner(t, func(Config) convo.Model { return demo.New(demo.Options{WordDelay: -1}) })
	cfg, ctx := r.cfg, context.Background()

	st, err := r.streams(ctx, 2, r.model, r.newTarget)
	if err != nil {
		t.Fatal(err)
	}
	if l := st.load; l.Errs > 0 || l.Cut || st.turns != 2*cfg.streamTurns(2) || st.relay.n != 0 || l.events == 0 {
		t.Errorf("streams: errors %d (first %v), cut %v, turns %d, relay samples %d, events %v", l.Errs, l.FirstErr, l.Cut, st.turns, st.relay.n, l.events)
	}
	fo, err := r.fanout(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	if l := fo.load; l.Errs > 0 || l.Cut || fo.toLast.n != 0 || fo.missing != 0 {
		t.Errorf("fanout: errors %d (first %v), cut %v, chunks %d, missing %d", l.Errs, l.FirstErr, l.Cut, fo.toLast.n, fo.missing)
	}
}

// TestStreamsClientsInChild: the streams step's clients run in a client
// process. Without one it fails; its CPU time is reported apart from
// this process's; and what its clients find wrong (here, replies of
// another length than the model the step was given) comes back as the
// step's client errors.
func TestStreamsClientsInChild(t *testing.T) {
	cfg, err := tiny(t).withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	r := &runner{cfg: cfg, log: cfg.Log, dir: cfg.Dir, model: newStampModel(cfg.Chunks, cfg.ChunkBytes, cfg.ChunkDelay)}
	ctx := context.Background()
	const c = 2

	res, err := r.streams(ctx, c, r.model, r.newTarget)
	if err != nil {
		t.Fatal(err)
	}
	if l := res.load; l.Errs > 0 || l.Cut || l.clients <= 0 || res.relay.n != c*cfg.streamTurns(c)*cfg.Chunks {
		t.Errorf("errors %d (first %v), cut %v, clients' CPU %v, chunks %d", l.Errs, l.FirstErr, l.Cut, l.clients, res.relay.n)
	}

	longer := newStampModel(cfg.Chunks+1, cfg.ChunkBytes, cfg.ChunkDelay)
	res, err = r.streams(ctx, c, r.model, func(*stampModel) (*target, error) { return r.newTarget(longer) })
	if err != nil {
		t.Fatal(err)
	}
	if l := res.load; l.Errs != c || !strings.Contains(l.FirstErr, "a reply carried") {
		t.Errorf("with longer replies than told: errors %d, first %q; want %d, a reply carried …", l.Errs, l.FirstErr, c)
	}

	r.cfg.Exe = "/bin/false"
	if _, err := r.streams(ctx, c, r.model, r.newTarget); err == nil || !strings.Contains(err.Error(), "did not get ready") {
		t.Errorf("without a client process: %v, want it did not get ready", err)
	}
}

func TestParseStamps(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 123_456_789)
	t1 := t0.Add(time.Millisecond)
	tests := []struct {
		name string
		text string
		want []chunkStamp
	}{
		{"one chunk with padding", stamp(t0, 0) + "....", []chunkStamp{{t0, 0}}},
		{"two coalesced chunks", stamp(t0, 7) + ".." + stamp(t1, 8) + "..", []chunkStamp{{t0, 7}, {t1, 8}}},
		{"another model's text", "Hello @you, 42 #1", nil},
		{"a cut stamp", stamp(t0, 1)[:MinChunkBytes-1], nil},
		{"a malformed stamp then a good one", "@12345678901234567x9#000001" + stamp(t1, 2), []chunkStamp{{t1, 2}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := parseStamps(tc.text)
			if len(got) != len(tc.want) {
				t.Fatalf("parseStamps(%q) = %v, want %v", tc.text, got, tc.want)
			}
			for i := range got {
				if !got[i].created.Equal(tc.want[i].created) || got[i].index != tc.want[i].index {
					t.Errorf("stamp %d = %v, want %v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	ms := func(n ...int) []time.Duration {
		out := make([]time.Duration, len(n))
		for i, v := range n {
			out[i] = time.Duration(v) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i
	}
	tests := []struct {
		name string
		in   []time.Duration
		want summary
	}{
		{"empty", nil, summary{}},
		{"one", ms(5), summary{1, 5 * time.Millisecond, 5 * time.Millisecond, 5 * time.Millisecond}},
		{"unsorted 1..100", ms(hundred...), summary{100, 50 * time.Millisecond, 99 * time.Millisecond, 100 * time.Millisecond}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := summarize(tc.in); got != tc.want {
				t.Errorf("summarize = %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestScrapeMatchesGather checks that scraping /metrics reads every series
// as Gather does in process, labelled histograms included (each bucket
// summed over the labels by its bound, not every bucket into one key).
func TestScrapeMatchesGather(t *testing.T) {
	m := metrics.New()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	for i, model := range []string{"a", "b", "a"} {
		m.FirstTokenSeconds.WithLabelValues(model).Observe(float64(i+1) / 100)
		m.Tokens.WithLabelValues(model, "out").Add(float64(i))
	}
	m.AckSeconds.Observe(0.002)
	m.Connections.Set(3)
	gathered, err := m.Gather()
	if err != nil {
		t.Fatal(err)
	}
	scraped, err := scrape(context.Background(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	// The gateway's own series; the runtime's change between the reads.
	ours := func(all map[string]float64) map[string]float64 {
		out := map[string]float64{}
		for k, v := range all {
			if strings.HasPrefix(k, "gateway_") {
				out[k] = v
			}
		}
		return out
	}
	gathered, scraped = ours(gathered), ours(scraped)
	for k, v := range gathered {
		if scraped[k] != v {
			t.Errorf("%s: scraped %v, gathered %v", k, scraped[k], v)
		}
	}
	if len(scraped) != len(gathered) || gathered[metrics.BucketKey("gateway_first_token_seconds", 0.0256)] != 2 {
		t.Errorf("scraped %d series, gathered %d: %v", len(scraped), len(gathered), gathered)
	}
}

// TestHistogramSummary estimates quantiles from the gateway's delivery
// histogram, gathered in process and scraped from /metrics alike.
func TestHistogramSummary(t *testing.T) {
	m := metrics.New()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	// snapshot reads the metrics both ways.
	snapshot := func() (gathered, scraped map[string]float64) {
		gathered, err := m.Gather()
		if err != nil {
			t.Fatal(err)
		}
		scraped, err = scrape(context.Background(), srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		return gathered, scraped
	}
	before, scrapedBefore := snapshot()
	for i := range 100 {
		d := time.Millisecond
		if i >= 98 {
			d = 50 * time.Millisecond
		}
		m.DeliverySeconds.Observe(d.Seconds())
	}
	after, scrapedAfter := snapshot()
	got := histogramSummary(before, after, "gateway_delivery_seconds")
	if scraped := histogramSummary(scrapedBefore, scrapedAfter, "gateway_delivery_seconds"); scraped != got {
		t.Errorf("scraped %+v, gathered %+v", scraped, got)
	}
	// Buckets are 25% apart: each estimate is within its sample's bucket.
	within := func(d, sample time.Duration) bool {
		return float64(d) > float64(sample)/1.25 && float64(d) < float64(sample)*1.25
	}
	if got.n != 100 || !within(got.p50, time.Millisecond) || !within(got.p99, 50*time.Millisecond) ||
		got.max < 50*time.Millisecond || !within(got.max, 50*time.Millisecond) {
		t.Errorf("summary %+v, want 100 samples, p50 ≈ 1ms, p99 and max ≈ 50ms", got)
	}
	if empty := histogramSummary(after, after, "gateway_delivery_seconds"); empty != (summary{}) {
		t.Errorf("no samples: %+v", empty)
	}
}

func TestReplyCheck(t *testing.T) {
	m := newStampModel(3, MinChunkBytes+2, 0)
	now := time.Now()
	chunk := func(i int) string { return stamp(now, i) + ".." }
	tests := []struct {
		name   string
		deltas []string
		ok     bool
	}{
		{"one delta per chunk", []string{chunk(0), chunk(1), chunk(2)}, true},
		{"coalesced", []string{chunk(0) + chunk(1), chunk(2)}, true},
		{"all in one", []string{chunk(0) + chunk(1) + chunk(2)}, true},
		{"a chunk lost", []string{chunk(0), chunk(2)}, false},
		{"reordered", []string{chunk(0), chunk(2), chunk(1)}, false},
		{"repeated", []string{chunk(0), chunk(1), chunk(1), chunk(2)}, false},
		{"text lost", []string{chunk(0), chunk(1), chunk(2)[:MinChunkBytes]}, false},
		{"nothing", nil, false},
		{"another model's text", []string{"Hello", " world"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r replyCheck
			for _, d := range tc.deltas {
				r.add(parseStamps(d), len(d))
			}
			if err := r.check(m); (err == nil) != tc.ok {
				t.Errorf("check = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

// TestStampModelPaces streams replies at once through one model with a
// delay (its pacer): each caller gets every chunk in order, each at least
// the delay after the one before, and a caller whose context ends gets no
// chunk after Stream returned.
func TestStampModelPaces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const replies, chunks, delay = 5, 4, 20 * time.Millisecond
		m := newStampModel(chunks, MinChunkBytes, delay)
		var wg sync.WaitGroup
		for i := range replies {
			wg.Go(func() {
				// Start apart, as the streams step's clients do.
				time.Sleep(time.Duration(i) * 3 * time.Millisecond)
				var got []chunkStamp
				if _, err := m.Stream(context.Background(), convo.ModelRequest{}, func(c convo.Chunk) { got = append(got, parseStamps(c.Text)...) }); err != nil {
					t.Error(err)
				}
				if len(got) != chunks {
					t.Errorf("reply %d: %d chunks, want %d", i, len(got), chunks)
				}
				for j, s := range got {
					if s.index != j {
						t.Errorf("reply %d: chunk %d came as %d", i, s.index, j)
					}
					if j > 0 && s.created.Sub(got[j-1].created) < delay {
						t.Errorf("reply %d: chunk %d came %v after the one before, want at least %v", i, j, s.created.Sub(got[j-1].created), delay)
					}
				}
			})
		}
		ctx, cancel := context.WithCancel(context.Background())
		var after atomic.Int64
		var returned atomic.Bool
		wg.Go(func() {
			_, err := m.Stream(ctx, convo.ModelRequest{}, func(convo.Chunk) {
				if returned.Load() {
					after.Add(1)
				}
			})
			returned.Store(true)
			if err == nil {
				t.Error("a cancelled reply ended without an error")
			}
		})
		time.Sleep(delay + delay/2)
		cancel()
		wg.Wait()
		time.Sleep(chunks * delay)
		if n := after.Load(); n > 0 {
			t.Errorf("%d chunks emitted after Stream returned", n)
		}
	})
}

// sink keeps TestGCWork's allocations from being optimized away.
var sink []byte

// TestGCWork checks the step's allocation and collection counts: what
// the process allocates between two readings, and a collection it runs,
// show in their difference.
func TestGCWork(t *testing.T) {
	before := readGCWork()
	for range 64 {
		sink = make([]byte, 64<<10)
	}
	runtime.GC()
	w := readGCWork().since(before)
	if w.allocated < 64*64<<10 {
		t.Errorf("allocated %d bytes, want at least %d", w.allocated, 64*64<<10)
	}
	if w.collections < 1 {
		t.Errorf("%d collections, want at least 1", w.collections)
	}
}
