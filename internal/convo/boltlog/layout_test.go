package boltlog

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/chatgateway/gateway/protocol"
)

// openFixture copies the gzipped bbolt file testdata/name to a file in
// t.TempDir and returns its path.
func openFixture(t *testing.T, name string) string {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "gateway.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestOpensFileOfFirstLayout opens a file that the first layout wrote
// (at commit ee9434b, by the test that commit adds): conversations whose
// turns ended, their events in the events bucket; turns in progress, one
// longer than runMax; an ended turn moved out of the tail but not
// cut yet; a conversation deleted (its mark in the tail) and created
// again; client_msg_ids in both places. Every conversation reads as it
// did then (testdata/layout1.json), the tail keeps only the entries the
// index lists, the turns in progress go on, and deletes take
// everything.
func TestOpensFileOfFirstLayout(t *testing.T) {
	ctx := context.Background()
	path := openFixture(t, "layout1.db.gz")
	data, err := os.ReadFile("testdata/layout1.json")
	if err != nil {
		t.Fatal(err)
	}
	var golden map[string][]json.RawMessage
	if err := json.Unmarshal(data, &golden); err != nil {
		t.Fatal(err)
	}
	l := openAt(t, path)
	if u := checkTail(t, l); u.inRuns != 0 || u.entries != u.listed || len(l.tail.refs) != 4 {
		t.Fatalf("tail of %d entries, %d in runs, %d listed of %d conversations; want only open, again, long and keyed's listed",
			u.entries, u.inRuns, u.listed, len(l.tail.refs))
	}
	read := func(id string) {
		t.Helper()
		frames, err := l.Events(ctx, id, 0, 0, 10000)
		if err != nil {
			t.Fatal(err)
		}
		if len(frames) != len(golden[id]) {
			t.Fatalf("%s: %d events, want %d", id, len(frames), len(golden[id]))
		}
		for i, f := range frames {
			// The file has the frames as indented JSON.
			var want bytes.Buffer
			if err := json.Compact(&want, golden[id][i]); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(f, want.Bytes()) {
				t.Fatalf("%s: event %d is %s, want %s", id, i+1, f, want.Bytes())
			}
		}
		checkLog(t, l, id, uint64(len(frames)))
	}
	for id := range golden {
		read(id)
	}
	for _, key := range []string{"kt1", "kt2"} {
		res, err := l.Append(ctx, keyedSend("done", key, "again"))
		if err != nil || res.Duplicate == nil || res.Duplicate.ID != "m_"+key {
			t.Errorf("%s sent again: %+v, %v; want the message stored under it", key, res, err)
		}
	}
	if res, err := l.Append(ctx, keyedSend("keyed", "k1", "again")); err != nil || res.Duplicate == nil {
		t.Errorf("k1 sent again: %+v, %v; want the message stored under it", res, err)
	}

	// The turns in progress end.
	last := map[string]uint64{}
	for _, id := range []string{"open", "again", "long", "keyed"} {
		appendEvents(t, l, id, delta("end"), turnEnd())
		last[id] = uint64(len(golden[id]) + 2)
		checkLog(t, l, id, last[id])
	}
	if u := checkTail(t, l); u.listed != 0 {
		t.Fatalf("%d entries listed once every turn ended", u.listed)
	}
	// Deletes take the events bucket's events, the runs and their
	// entries.
	for _, id := range []string{"done", "long"} {
		if _, err := l.Delete(ctx, id, "u1"); err != nil {
			t.Fatal(err)
		}
		create(t, l, id)
		if frames, err := l.Events(ctx, id, 0, 0, 10000); err != nil || len(frames) != 0 {
			t.Fatalf("%s created again: %d events (%v)", id, len(frames), err)
		}
	}
	u := checkTail(t, l)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = openAt(t, path)
	if got := checkTail(t, l); got != u {
		t.Errorf("opened again: %+v, want %+v", got, u)
	}
	for _, id := range []string{"open", "again", "keyed"} {
		checkLog(t, l, id, last[id])
	}
	if frames, _ := l.Events(ctx, "again", 0, 0, 10000); len(frames) < 2 || !bytes.Contains(frames[1], []byte(`"new"`)) {
		t.Errorf("again after reopening: %q, want the new conversation's events", frames)
	}
	appendEvents(t, l, "ended", &protocol.Event{Type: protocol.EventTurnStart, Turn: "t2"})
	checkLog(t, l, "ended", uint64(len(golden["ended"])+1))
}
