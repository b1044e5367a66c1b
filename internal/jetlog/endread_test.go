package jetlog_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/chatgateway/gateway/internal/jetlog/natstest"
)

// TestReadsFindTheEndWithoutTheNewestRecord reads, on gateway b, which
// has read the metadata of a conversation whose newest record holds a
// reply of 900 KiB, the events of the conversation: a first page, a
// page after a seq, and reads to the log's end (an events page, a
// history): the first two take in a few KiB, the others the newest
// record once, as an event they return. Before, each read took in the
// newest record (from the stream's leader, in base64) first, to find
// the log's end. The reads still see a record appended on a since.
func TestReadsFindTheEndWithoutTheNewestRecord(t *testing.T) {
	ctx := context.Background()
	srv := natstest.Start(t)
	a, b := openStoreWith(t, srv.URL(), "a", longOpts), openStoreWith(t, srv.URL(), "b", longOpts)
	const id, short = "c1", 20
	appendDelta(t, a, id, "u", "0")
	for i := 1; i < short; i++ {
		appendDelta(t, a, id, "", fmt.Sprint(i))
	}
	appendDelta(t, a, id, "", strings.Repeat("a", longRecord))
	if _, err := b.Meta(ctx, id); err != nil { // b reads the newest record once
		t.Fatal(err)
	}
	nc := b.Conn()
	read := func(name string, limit uint64, get func() (int, error)) int {
		t.Helper()
		before := nc.Stats().InBytes
		n, err := get()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if in := nc.Stats().InBytes - before; in > limit {
			t.Fatalf("%s took in %d bytes", name, in)
		}
		return n
	}
	events := func(after uint64, limit int) func() (int, error) {
		return func() (int, error) {
			evs, err := b.Events(ctx, id, after, 0, limit)
			return len(evs), err
		}
	}
	const few, once = 64 << 10, longRecord + 64<<10
	if n := read("the first page", few, events(0, 16)); n != 16 {
		t.Fatalf("the first page has %d events", n)
	}
	if n := read("a page after seq 3", few, events(3, 16)); n != 16 {
		t.Fatalf("the page after seq 3 has %d events", n)
	}
	if n := read("a read to the end", once, events(0, 1000)); n != short+1 {
		t.Fatalf("the read to the end has %d events", n)
	}
	if n := read("a page to the end", once, events(10, 1000)); n != short+1-10 {
		t.Fatalf("the page after seq 10 has %d events", n)
	}
	read("a history", once, func() (int, error) {
		_, _, err := b.Messages(ctx, id, 0, 0, 0)
		return 0, err
	})
	appendDelta(t, a, id, "", "more")
	if evs, err := b.Events(ctx, id, short+1, 0, 16); err != nil || len(evs) != 1 || !strings.Contains(string(evs[0]), `"more"`) {
		t.Fatalf("after another record on a, b reads %q, %v", evs, err)
	}
}
