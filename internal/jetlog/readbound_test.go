package jetlog_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/jetlog"
	"github.com/chatgateway/gateway/internal/jetlog/natstest"
	"github.com/chatgateway/gateway/protocol"
)

// longModel answers every turn with size bytes of text at once.
type longModel struct{ size int }

func (m longModel) Stream(_ context.Context, _ convo.ModelRequest, emit func(convo.Chunk)) (convo.Result, error) {
	emit(convo.Chunk{Kind: convo.ChunkText, Text: strings.Repeat("a", m.size)})
	return convo.Result{StopReason: protocol.StopEndTurn}, nil
}

// longLast answers a turn whose history holds history messages or more
// with size bytes of text at once, and others with one byte.
type longLast struct{ size, history int }

func (m longLast) Stream(ctx context.Context, req convo.ModelRequest, emit func(convo.Chunk)) (convo.Result, error) {
	if len(req.History) < m.history {
		return longModel{size: 1}.Stream(ctx, req, emit)
	}
	return longModel{size: m.size}.Stream(ctx, req, emit)
}

// TestReadsOfLongReplies fills a conversation with long replies (each a
// delta and a turn_end of 900 KiB, about 11 MiB in all): every send is
// acknowledged and every turn ends end_turn; a read of the whole log
// returns the records up to the first past a MiB (the caller reads on
// from there), not the whole log; and a subscriber on another gateway
// replays the whole log, read by read. The read takes in its records
// once from NATS: on an inbox under the connection's response inbox, the
// server sent them twice, once for each subscription. Before reads were bounded in
// bytes, each asked for 256 records, which the server sent up to its
// max_pending (64 MiB), whatever the caller needed (a replay page is 16
// events).
func TestReadsOfLongReplies(t *testing.T) {
	srv := natstest.Start(t)
	// Each send and turn reads the newest record, near a MiB: on a
	// loaded machine, under -race, that may take longer than the second
	// the other tests' gateways allow.
	opts := jetlog.Options{Timeout: 10 * time.Second}
	a := startNodeWith(t, "a", srv.URL(), longModel{size: 900 << 10}, opts)
	b := startNodeWith(t, "b", srv.URL(), longModel{size: 1}, opts)
	id := create(t, a)
	watch := subscribe(t, a, id, 0)
	const turns = 6
	for i := range turns {
		send(t, a, id, "more", nil)
		watch.waitFor(t, "the turn", turnEnds(i+1))
	}
	for _, ev := range watch.waitFor(t, "the turns", turnEnds(turns)) {
		if ev.Type == protocol.EventTurnEnd && ev.StopReason != protocol.StopEndTurn {
			t.Fatalf("turn %s ended %s (%v)", ev.Turn, ev.StopReason, ev.Error)
		}
	}
	nc := b.store.Conn()
	before := nc.Stats().InBytes
	recs, err := b.store.Log().Read(context.Background(), id, 1, 0, 256)
	if err != nil {
		t.Fatal(err)
	}
	in := nc.Stats().InBytes - before
	size := 0
	for i, r := range recs {
		if i > 0 && size >= 1<<20 {
			t.Fatalf("a read of the log got %d records, going on past %d bytes", len(recs), size)
		}
		for _, f := range r.Frames {
			size += len(f)
		}
	}
	if len(recs) >= 3*turns {
		t.Fatalf("a read of the log got all its %d records", len(recs))
	}
	// The records' headers, and what else the connection got meanwhile
	// (a lease or two), are small beside them.
	if in > uint64(size)+64<<10 {
		t.Fatalf("a read of %d bytes of records took in %d bytes", size, in)
	}
	evs := subscribe(t, b, id, 0).waitFor(t, "the replay on b", turnEnds(turns))
	checkLog(t, evs)
}

// TestReplayReadsTheLogOnce replays, on a gateway of its own, a
// conversation of many short turns ending with a long reply, page by
// page (convo replays 16 events at a time): the gateway takes in the
// log once, and the newest record (the long turn_end) once more, for the
// conversation's metadata (once: the second read of a subscribe finds
// it unchanged, and so do the follow's start and the replay's first
// page, which read it for the log's end until they kept it).
// Before, each page read the newest record again to find the log's end,
// searched the log for the page's start, and read past the page's end
// up to a MiB of records, the long reply's among them: some twenty times
// the log in all.
func TestReplayReadsTheLogOnce(t *testing.T) {
	srv := natstest.Start(t)
	opts := jetlog.Options{Timeout: 10 * time.Second}
	const long, turns = 900 << 10, 40
	writer := startNodeWith(t, "writer", srv.URL(), longLast{size: long, history: 2*turns - 1}, opts)
	replay := startNodeWith(t, "replay", srv.URL(), &words{n: 1}, opts)
	id := create(t, writer)
	watch := subscribe(t, writer, id, 0)
	for i := range turns {
		send(t, writer, id, "more", nil)
		watch.waitFor(t, "the turn", turnEnds(i+1))
	}
	stored := 0
	for pos := uint64(1); ; {
		recs, err := writer.store.Log().Read(context.Background(), id, pos, 0, 256)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			break
		}
		for _, r := range recs {
			stored += len(r.Meta)
			for _, f := range r.Frames {
				stored += len(f)
			}
			pos = r.Pos + 1
		}
	}
	if stored < 2*long {
		t.Fatalf("the log holds %d bytes: the long reply is missing", stored)
	}
	nc := replay.store.Conn()
	before := nc.Stats().InBytes
	evs := subscribe(t, replay, id, 0).waitFor(t, "the replay", turnEnds(turns))
	in := nc.Stats().InBytes - before
	checkLog(t, evs)
	// The newest record, which the stream's leader sends in base64, for
	// the metadata; leases and heartbeats.
	newest := 4 * long / 3
	if limit := uint64(stored + newest + 256<<10); in > limit {
		t.Fatalf("a replay of a log of %d bytes took in %d bytes; want %d at most", stored, in, limit)
	}
}
