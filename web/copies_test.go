package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/cdproto/heapprofiler"
	"github.com/chromedp/chromedp"

	"github.com/chatgateway/gateway/protocol"
)

// heapString is a string in a tab's JavaScript heap.
type heapString struct {
	Type string
	Size int
}

// heapStrings takes a snapshot of the tab's JavaScript heap (after a
// garbage collection) and returns the strings in it that start with
// prefix.
func (tb *tab) heapStrings(prefix string) []heapString {
	tb.t.Helper()
	var (
		mu     sync.Mutex
		chunks strings.Builder
	)
	ctx, cancel := context.WithCancel(tb.ctx)
	defer cancel()
	err := chromedp.Listen(ctx, func(ev any) {
		if c, ok := ev.(*heapprofiler.EventAddHeapSnapshotChunk); ok {
			mu.Lock()
			chunks.WriteString(c.Chunk)
			mu.Unlock()
		}
	})
	if err != nil {
		tb.t.Fatal(err)
	}
	// The chunks come before the command's reply, and Listen sees each
	// event before the command that follows it returns.
	tb.do(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, heapprofiler.TakeHeapSnapshot, heapprofiler.TakeHeapSnapshotParams{})
		return err
	}))
	mu.Lock()
	raw := chunks.String()
	mu.Unlock()
	var snap struct {
		Snapshot struct {
			Meta struct {
				NodeFields []string          `json:"node_fields"`
				NodeTypes  []json.RawMessage `json:"node_types"`
			} `json:"meta"`
		} `json:"snapshot"`
		Nodes   []int    `json:"nodes"`
		Strings []string `json:"strings"`
	}
	if err := json.Unmarshal([]byte(raw), &snap); err != nil {
		tb.t.Fatalf("the heap snapshot (%d bytes): %v", len(raw), err)
	}
	var types []string
	if err := json.Unmarshal(snap.Snapshot.Meta.NodeTypes[0], &types); err != nil {
		tb.t.Fatalf("the heap snapshot's node types: %v", err)
	}
	field := map[string]int{}
	for i, f := range snap.Snapshot.Meta.NodeFields {
		field[f] = i
	}
	stride := len(snap.Snapshot.Meta.NodeFields)
	var found []heapString
	for i := 0; i+stride <= len(snap.Nodes); i += stride {
		n := snap.Nodes[i : i+stride]
		typ := types[n[field["type"]]]
		if strings.HasSuffix(typ, "string") && strings.HasPrefix(snap.Strings[n[field["name"]]], prefix) {
			found = append(found, heapString{typ, n[field["self_size"]]})
		}
	}
	return found
}

// TestStreamingReplyKeepsOneCopy streams a long reply and counts the
// copies of its text the page keeps: one, in the JavaScript heap, besides
// the rendered elements; none in attributes.
func TestStreamingReplyKeepsOneCopy(t *testing.T) {
	const marker = "Unique-marker-7f3a "
	var text strings.Builder
	model, g, tb, id := startChat(t, "tab", "Write at length")
	for i := range 100 {
		chunk := fmt.Sprintf("Paragraph %d %s\n\n", i, strings.Repeat("word ", 196))
		if i == 0 {
			chunk = marker + chunk
		}
		text.WriteString(chunk)
		model.say(t, chunk)
	}
	model.end(t, 1, 100)
	tb.waitTurnEnd(protocol.StopEndTurn)

	// A copy the page keeps in an attribute is a Blink string, which
	// the JavaScript heap refers to as an external string of its own.
	if found := tb.heapStrings(marker); len(found) != 1 {
		t.Errorf("the page holds %d strings of the reply's text, want 1: %+v", len(found), found)
	}
	var attrs int
	tb.eval(`[...document.querySelectorAll('[data-testid=messages] *')]
		.reduce((n, e) => n + [...e.attributes].reduce((m, a) => m + a.value.length, 0), 0)`, &attrs)
	if attrs > 1000 {
		t.Errorf("the attributes in the message list hold %d characters: a copy of the reply's text (%d)", attrs, text.Len())
	}
	checkStoredOnce(t, g, tb, id)
}
