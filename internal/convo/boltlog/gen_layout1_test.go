package boltlog

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/chatgateway/gateway/protocol"
)

// TestGenLayout1 writes testdata/layout1.db.gz and layout1.json, a file
// of the first layout (events moved out of the tail into the events
// bucket) and what reading it gives, for the test that opens it with a
// later layout. It runs only with BOLTLOG_WRITE_LAYOUT1=1.
func TestGenLayout1(t *testing.T) {
	if os.Getenv("BOLTLOG_WRITE_LAYOUT1") == "" {
		t.Skip("writes the fixture only with BOLTLOG_WRITE_LAYOUT1=1")
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "gateway.db")
	l := openAt(t, path)
	start := func(id, turn string) *protocol.Event {
		return &protocol.Event{Type: protocol.EventTurnStart, Turn: turn}
	}
	end := func(turn, text string) *protocol.Event {
		return &protocol.Event{Type: protocol.EventTurnEnd, Turn: turn, StopReason: protocol.StopEndTurn,
			Message: &protocol.Message{ID: "r_" + turn, Role: protocol.RoleAssistant, Text: text, Turn: turn}}
	}
	for _, id := range []string{"done", "open", "ended", "again", "long", "keyed"} {
		create(t, l, id)
	}
	// done: two ended turns, all in the events bucket.
	for _, turn := range []string{"t1", "t2"} {
		if _, err := l.Append(ctx, keyedSend("done", "k"+turn, "hello "+turn)); err != nil {
			t.Fatal(err)
		}
		appendEvents(t, l, "done", start("done", turn), delta("a"), delta("b"))
		appendEvents(t, l, "done", end(turn, "ab"))
	}
	// open: a turn in progress that holds the tail's head.
	appendEvents(t, l, "open", start("open", "t1"), delta("open "))
	// ended: a turn that ended after open's began: moved, not cut.
	appendEvents(t, l, "ended", start("ended", "t1"), delta("x"), delta("y"))
	appendEvents(t, l, "open", delta("more"))
	appendEvents(t, l, "ended", end("t1", "xy"))
	// again: deleted with moved and live entries, created again.
	appendEvents(t, l, "again", start("again", "t1"), delta("gone"))
	appendEvents(t, l, "again", end("t1", "gone"))
	appendEvents(t, l, "again", start("again", "t2"), delta("also gone"))
	if _, err := l.Delete(ctx, "again", "u1"); err != nil {
		t.Fatal(err)
	}
	create(t, l, "again")
	appendEvents(t, l, "again", start("again", "t3"), delta("new"))
	// long: a turn in progress longer than tailMoveAt.
	appendEvents(t, l, "long", start("long", "t1"))
	for i := range 300 {
		appendEvents(t, l, "long", delta(fmt.Sprint(i, " ")))
	}
	// keyed: a keyed message in the tail, its turn open.
	if _, err := l.Append(ctx, keyedSend("keyed", "k1", "in the tail")); err != nil {
		t.Fatal(err)
	}
	appendEvents(t, l, "keyed", start("keyed", "t_k1"), delta("z"))
	golden := map[string][]json.RawMessage{}
	for _, id := range []string{"done", "open", "ended", "again", "long", "keyed"} {
		frames, err := l.Events(ctx, id, 0, 0, 10000)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range frames {
			golden[id] = append(golden[id], json.RawMessage(f))
		}
	}
	entries, convs := tailLen(t, l)
	t.Logf("tail: %d entries, %d conversations listed", entries, convs)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := json.MarshalIndent(golden, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("testdata/layout1.json", append(data, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	db, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	if _, err := w.Write(db); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("testdata/layout1.db.gz", gz.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
