package main

import (
	"strings"
	"sync"
	"testing"

	"github.com/chatgateway/gateway/internal/conn/conntest"
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
