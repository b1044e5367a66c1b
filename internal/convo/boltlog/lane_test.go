package boltlog

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

// TestSendNotQueuedBehindReplies queues, while a commit is in flight, a
// flood of reply chunks from many conversations with one send in the
// middle and more chunks after it. The send must be in the very next
// commit, no commit may carry more than MaxDeferrable chunks, and every
// chunk must be stored, each conversation's in order.
func TestSendNotQueuedBehindReplies(t *testing.T) {
	const maxDeferrable, conversations, perConversation = 8, 10, 5
	ctx := context.Background()
	l, err := Open(filepath.Join(t.TempDir(), "gateway.db"), Options{MaxDeferrable: maxDeferrable})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := range conversations {
		create(t, l, fmt.Sprint("c", i))
	}
	create(t, l, "s")

	// Hold the commit loop inside a commit while the flood is queued.
	entered, release := make(chan struct{}), make(chan struct{})
	held := make(chan error, 1)
	go func() {
		_, err := l.Append(ctx, &convo.Append{Conversation: "s", Build: func(*convo.Meta) ([]convo.Draft, error) {
			close(entered)
			<-release
			return nil, nil
		}})
		held <- err
	}()
	<-entered
	heldCommit, _ := l.Stats()

	// commitOf records the commit each op was durable in; only the commit
	// loop writes it.
	commitOf := map[string]uint64{}
	var dones []<-chan struct{}
	queue := func(id, name string, deferrable bool, ev *protocol.Event) *op {
		o, _ := newAppendOp(ctx, &convo.Append{Conversation: id, Deferrable: deferrable,
			Build:   func(*convo.Meta) ([]convo.Draft, error) { return []convo.Draft{{Event: ev}}, nil },
			Durable: func(*convo.Appended) { commitOf[name], _ = l.Stats() }})
		dones = append(dones, await(o))
		if err := l.enqueue(o); err != nil {
			t.Fatal(err)
		}
		return o
	}
	var ops []*op
	chunks := func(from, to int) {
		for j := from; j < to; j++ {
			for i := range conversations {
				id := fmt.Sprint("c", i)
				ops = append(ops, queue(id, fmt.Sprint(id, "/", j), true, delta(fmt.Sprint(j))))
			}
		}
	}
	chunks(0, 3)
	ops = append(ops, queue("s", "send", false, &protocol.Event{Type: protocol.EventMessage,
		Message: &protocol.Message{ID: "m1", Role: protocol.RoleUser, Text: "hello", Turn: "t1"}}))
	chunks(3, perConversation)
	close(release)
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	for i, o := range ops {
		<-dones[i]
		if o.err != nil {
			t.Fatal(o.err)
		}
	}

	if got := commitOf["send"]; got != heldCommit+1 {
		t.Errorf("the send was durable in commit %d, want %d: the one right after the commit in flight", got, heldCommit+1)
	}
	perCommit := map[uint64]int{}
	for name, c := range commitOf {
		if name != "send" {
			perCommit[c]++
		}
	}
	const flood = conversations * perConversation
	if want := (flood + maxDeferrable - 1) / maxDeferrable; len(perCommit) != want {
		t.Errorf("%d chunks took %d commits, want %d", flood, len(perCommit), want)
	}
	for c, n := range perCommit {
		if n > maxDeferrable {
			t.Errorf("commit %d carried %d chunks, more than %d", c, n, maxDeferrable)
		}
	}
	for i := range conversations {
		id := fmt.Sprint("c", i)
		frames, err := l.Events(ctx, id, 0, 0, 100)
		if err != nil {
			t.Fatal(err)
		}
		var text string
		for _, f := range frames {
			var ev protocol.Event
			if err := json.Unmarshal(f, &ev); err != nil {
				t.Fatal(err)
			}
			text += ev.Text
		}
		if text != "01234" {
			t.Errorf("conversation %s stored %q, want the chunks 0 to 4 in order", id, text)
		}
	}
}
