package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/chatgateway/gateway/client"
	"github.com/chatgateway/gateway/internal/conn/conntest"
	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

// TestChat types two lines into the chat and reads both replies.
func TestChat(t *testing.T) {
	t.Parallel()
	srv := conntest.Start(t, conntest.Config{})
	var out strings.Builder
	if err := run(conntest.Deadline(t), srv.URL, "", "", strings.NewReader("hello\n\nagain\n"), &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"you: hello\n", "assistant: (Demo model", "You said: “hello”", "you: again\n", "You said: “again”"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}

// TestChatResumesAfterDrop cuts the connection in the middle of a reply:
// the chat says so, reconnects, and shows the rest of the reply, nothing
// twice.
func TestChatResumesAfterDrop(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	srv := conntest.Start(t, conntest.Config{Model: conntest.GatedModel{Gate: gate}})
	out := &watched{marker: "a4 ", seen: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- run(conntest.Deadline(t), srv.URL, "", "", strings.NewReader("hello\n"), out) }()
	<-out.seen // the first half of the reply is on the screen
	srv.Drop()
	close(gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{"[connection lost", "[reconnected]", "a0 ", "a4 ", "b0 ", "b4 "} {
		if n := strings.Count(text, want); n != 1 {
			t.Errorf("%q shown %d times, want once:\n%s", want, n, text)
		}
	}
}

// TestChatStopsOnInterrupt ends the chat's context (Ctrl-C) while it
// waits for a line that never comes: the chat returns at once, instead of
// waiting for the next line to be typed.
func TestChatStopsOnInterrupt(t *testing.T) {
	t.Parallel()
	srv := conntest.Start(t, conntest.Config{})
	ctx, interrupt := context.WithCancel(conntest.Deadline(t))
	in, typed := io.Pipe()
	t.Cleanup(func() { typed.Close() })
	out := &watched{marker: "type a message", seen: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- run(ctx, srv.URL, "", "", in, out) }()
	<-out.seen // the chat waits for a line
	interrupt()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("run after Ctrl-C: %v, want context.Canceled", err)
	}
}

// TestChatEndsWhenDeleted deletes the conversation while the chat waits
// for a line: the chat ends at once and says why, instead of going on
// with no replies to show (and ending with success).
func TestChatEndsWhenDeleted(t *testing.T) {
	t.Parallel()
	srv := conntest.Start(t, conntest.Config{})
	in, typed := io.Pipe()
	t.Cleanup(func() { typed.Close() })
	out := &watched{marker: "type a message", seen: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- run(conntest.Deadline(t), srv.URL, "", "", in, out) }()
	<-out.seen
	id, _, _ := strings.Cut(strings.TrimPrefix(out.String(), "conversation "), ":")
	if status, body := conntest.Do(t, http.MethodDelete, srv.URL+"/v1/conversations/"+id, ""); status != http.StatusOK {
		t.Fatalf("delete %q: %d %s", id, status, body)
	}
	if err := <-done; !errors.Is(err, client.ErrDeleted) {
		t.Fatalf("run once its conversation is deleted: %v, want client.ErrDeleted", err)
	}
}

// watched is the chat's output; seen is closed once it shows marker.
type watched struct {
	marker string
	seen   chan struct{}
	mu     sync.Mutex
	b      strings.Builder
	closed bool
}

func (w *watched) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b.Write(p)
	if !w.closed && strings.Contains(w.b.String(), w.marker) {
		w.closed = true
		close(w.seen)
	}
	return len(p), nil
}

func (w *watched) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestChatShowsRepliesAfterManyTurns continues a conversation of 17
// turns, more than the chat kept track of without blocking, and types a
// line: its reply shows while the chat still reads lines.
func TestChatShowsRepliesAfterManyTurns(t *testing.T) {
	t.Parallel()
	srv := conntest.Start(t, conntest.Config{Convo: convo.Config{MaxQueuedTurns: 32}})
	base := srv.URL + "/v1/conversations"
	if status, body := conntest.Do(t, http.MethodPost, base, `{"conversation":"long"}`); status != http.StatusCreated {
		t.Fatalf("create: %d %s", status, body)
	}
	watcher := srv.Dial(t, "conversation=long")
	for i := range 17 {
		if status, body := conntest.Do(t, http.MethodPost, base+"/long/messages", fmt.Sprintf(`{"text":"m%d"}`, i)); status != http.StatusAccepted {
			t.Fatalf("send: %d %s", status, body)
		}
		watcher.ReadUntil(conntest.IsType(protocol.EventTurnEnd))
	}

	ctx := conntest.Deadline(t)
	in, typed := io.Pipe()
	out := &watched{marker: "You said: “one more”", seen: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- run(ctx, srv.URL, "long", "", in, out) }()
	if _, err := io.WriteString(typed, "one more\n"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-out.seen:
	case <-ctx.Done():
		t.Fatalf("the reply to a line typed after 17 turns never showed:\n%s", out.String())
	}
	typed.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
