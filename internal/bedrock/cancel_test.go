package bedrock_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatgateway/gateway/internal/bedrock"
	"github.com/chatgateway/gateway/internal/bedrock/fakebedrock"
	"github.com/chatgateway/gateway/internal/convo"
)

func TestCancelMidStream(t *testing.T) {
	gone := make(chan struct{})
	hold := make(chan struct{}) // never released: only the cancel ends the stream
	srv := startFake(t, func(call int, _ fakebedrock.Request) fakebedrock.Reply {
		if call == 1 {
			return fakebedrock.Reply{Chunks: []string{"warm"}}
		}
		return fakebedrock.Reply{Chunks: []string{"a", "b", "c"}, Hold: hold, HoldAfter: 2, Gone: gone}
	})
	c := newClient(t, srv, bedrock.Options{})
	// A first turn leaves the client's idle connection and its goroutines
	// in place, so that the count below only sees what the turn adds.
	if _, _, err := stream(t, c, ask("warm up")); err != nil {
		t.Fatalf("warm-up Stream: %v", err)
	}
	before := runtime.NumGoroutine()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var got []string
	_, err := c.Stream(ctx, ask("hi"), func(ch convo.Chunk) {
		got = append(got, ch.Text)
		if len(got) == 2 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Stream error = %v, want one wrapping context.Canceled", err)
	}
	if strings.Join(got, "") != "ab" {
		t.Errorf("chunks before cancel = %q, want a, b", got)
	}
	closed(t, gone, "the fake to see the request closed")
	wantCalls(t, srv, 2) // the warm-up and the cancelled turn, not retried
	noLeak(t, before)
}

// noLeak waits (boundedly) for the goroutine count to fall back to before,
// and fails with a dump of the goroutines if it does not.
func noLeak(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			var buf bytes.Buffer
			_ = pprof.Lookup("goroutine").WriteTo(&buf, 1)
			t.Fatalf("%d goroutines, want at most %d as before the turn:\n%s", runtime.NumGoroutine(), before, buf.String())
		}
		time.Sleep(10 * time.Millisecond) // polling: there is nothing to wait on
	}
}

// TestConcurrentStreams runs turns at once on one client: each stream must
// get its own event-stream codec (go test -race fails otherwise), and every
// text must arrive intact.
func TestConcurrentStreams(t *testing.T) {
	const streams, parts = 6, 40
	srv := startFake(t, func(_ int, req fakebedrock.Request) fakebedrock.Reply {
		var chunks []string
		for i := range parts {
			chunks = append(chunks, fmt.Sprintf("%s-%d ", req.Body.Messages[0].Content[0].Text, i))
		}
		return fakebedrock.Reply{Chunks: chunks, Delay: 100 * time.Microsecond}
	})
	c := newClient(t, srv, bedrock.Options{})
	var wg sync.WaitGroup
	for s := range streams {
		wg.Go(func() {
			name := fmt.Sprintf("s%d", s)
			var b strings.Builder
			_, err := c.Stream(context.Background(), ask(name), func(ch convo.Chunk) { b.WriteString(ch.Text) })
			if err != nil {
				t.Errorf("stream %s: %v", name, err)
				return
			}
			var want strings.Builder
			for i := range parts {
				fmt.Fprintf(&want, "%s-%d ", name, i)
			}
			if b.String() != want.String() {
				t.Errorf("stream %s text = %q, want %q", name, b.String(), want.String())
			}
		})
	}
	wg.Wait()
}
