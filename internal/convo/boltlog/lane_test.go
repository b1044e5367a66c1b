package boltlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

// TestSendNotQueuedBehindReplies queues, while a commit is in flight, a
// flood of reply chunks from many conversations with one send in the
// middle and more chunks after it. The send must be in the very next
// commit, with at most MaxDeferrable/othersShare chunks (the oldest), no
// commit may carry more than MaxDeferrable chunks, and every chunk must be
// stored, each conversation's in order.
func TestSendNotQueuedBehindReplies(t *testing.T) {
	const maxDeferrable, conversations, perConversation = 8, 10, 5
	ctx := context.Background()
	l := openDeferring(t, maxDeferrable)
	for i := range conversations {
		create(t, l, fmt.Sprint("c", i))
	}
	create(t, l, "s")

	// Hold the commit loop inside a commit while the flood is queued.
	heldCommit, release := holdCommit(t, l, "s")

	// commitOf records the commit each op was durable in; only the commit
	// loop writes it.
	commitOf := map[string]uint64{}
	var dones []<-chan struct{}
	queue := func(id, name string, deferrable bool, ev *protocol.Event) *op {
		o := newAppendOp(ctx, &convo.Append{Conversation: id, Deferrable: deferrable,
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
	release()
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
	const share = maxDeferrable / othersShare
	if n := perCommit[commitOf["send"]]; n != share {
		t.Errorf("the send's commit carried %d chunks, want %d: a send's commit is short", n, share)
	}
	for i := range conversations {
		if name := fmt.Sprint("c", i, "/0"); i < share && commitOf[name] != commitOf["send"] {
			t.Errorf("chunk %s, one of the oldest, was durable in commit %d, not with the send in %d", name, commitOf[name], commitOf["send"])
		}
	}
	const flood = conversations * perConversation
	if want := 1 + (flood-share+maxDeferrable-1)/maxDeferrable; len(perCommit) != want {
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

// holdCommit holds l's commit loop inside a commit (of an append to
// conversation id, which stores nothing) until release is called, which
// waits for that commit to end. held is the commit's number (see Stats).
func holdCommit(t *testing.T, l *Log, id string) (held uint64, release func()) {
	t.Helper()
	entered, proceed := make(chan struct{}), make(chan struct{})
	ended := make(chan error, 1)
	go func() {
		_, err := l.Append(context.Background(), &convo.Append{Conversation: id, Build: func(*convo.Meta) ([]convo.Draft, error) {
			close(entered)
			<-proceed
			return nil, nil
		}})
		ended <- err
	}()
	<-entered
	held, _ = l.Stats()
	return held, func() {
		t.Helper()
		close(proceed)
		if err := <-ended; err != nil {
			t.Fatal(err)
		}
	}
}

// TestChunksGoOnUnderSends keeps a send queued at every commit (each
// send's completion posts the next) while reply chunks wait. A commit
// with a send takes MaxDeferrable/othersShare chunks, so every commit
// carries a send and that many chunks until the chunks are stored.
func TestChunksGoOnUnderSends(t *testing.T) {
	const maxDeferrable, chunks, sends = 8, 12, 10
	ctx := context.Background()
	l := openDeferring(t, maxDeferrable)
	create(t, l, "c")
	create(t, l, "s")
	held, release := holdCommit(t, l, "s")

	// What each commit after the held one carried; only the commit loop
	// writes these, before the test reads them (after wg and finished).
	sent, stored := make([]int, sends+1), make([]int, sends+1)
	var errs []error
	at := func(n []int) func(*convo.Appended) {
		return func(*convo.Appended) {
			c, _ := l.Stats()
			if i := int(c - held - 1); i >= 0 && i < len(n) {
				n[i]++
			}
		}
	}
	var wg sync.WaitGroup
	for i := range chunks {
		wg.Add(1)
		l.Post(ctx, &convo.Append{Conversation: "c", Deferrable: true, Durable: at(stored),
			Build: func(*convo.Meta) ([]convo.Draft, error) { return []convo.Draft{{Event: delta(fmt.Sprint(i))}}, nil }},
			func(_ *convo.Appended, err error) {
				if err != nil {
					errs = append(errs, err)
				}
				wg.Done()
			})
	}
	finished := make(chan struct{})
	var send func(i int)
	send = func(i int) {
		msg := &protocol.Message{ID: fmt.Sprint("m", i), Role: protocol.RoleUser, Text: "hello", Turn: fmt.Sprint("t", i)}
		l.Post(ctx, &convo.Append{Conversation: "s", Durable: at(sent),
			Build: func(*convo.Meta) ([]convo.Draft, error) {
				return []convo.Draft{{Event: &protocol.Event{Type: protocol.EventMessage, Message: msg}}}, nil
			}},
			func(_ *convo.Appended, err error) {
				switch {
				case err != nil:
					errs = append(errs, err)
					close(finished)
				case i+1 < sends:
					send(i + 1)
				default:
					close(finished)
				}
			})
	}
	send(0)
	release()
	wg.Wait()
	<-finished
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	var got, want []string
	for i := range sends {
		got = append(got, fmt.Sprintf("%d+%d", sent[i], stored[i]))
		// The chunks go in every commit until all are stored.
		c := 0
		if i < chunks/(maxDeferrable/othersShare) {
			c = maxDeferrable / othersShare
		}
		want = append(want, fmt.Sprintf("1+%d", c))
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("sends+chunks per commit: %v, want %v", got, want)
	}
}

// openDeferring opens a Log on a fresh file whose commits carry at most
// maxDeferrable deferrable ops, closed at the end of the test.
func openDeferring(t *testing.T, maxDeferrable int) *Log {
	t.Helper()
	return openWith(t, filepath.Join(t.TempDir(), "gateway.db"), Options{MaxDeferrable: maxDeferrable})
}
