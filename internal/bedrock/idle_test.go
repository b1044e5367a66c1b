package bedrock_test

import (
	"runtime"
	"testing"
	"time"

	"github.com/chatgateway/gateway/internal/bedrock"
	"github.com/chatgateway/gateway/internal/bedrock/fakebedrock"
)

// idle is the IdleTimeout of these tests: far above the gaps of a local
// stream, so that only a stall reaches it. 100ms was too short under -race
// on a busy machine: a 20ms gap once took longer.
const idle = 500 * time.Millisecond

// TestStreamStalls streams from a fake that stops sending without closing
// the connection (a Hold never released): after IdleTimeout the client
// closes the stream. Stalled before the first chunk, the call is retried
// like a cut stream; after it, the turn ends with a model_error that keeps
// the chunks already emitted, and is not retried. Every stalled
// connection is closed, with no goroutine left behind.
func TestStreamStalls(t *testing.T) {
	const stalled = "the stream stalled: Bedrock sent nothing for 500ms"
	parts := []string{"Once ", "upon ", "a ", "time"}
	for _, tc := range []struct {
		name string
		// stalls is how many calls stall, after HoldAfter chunks.
		stalls, holdAfter int
		want              string // the error's message, or "" for none
		text              string
		calls             int
	}{
		{"after chunks: not retried", 1, 2, stalled, "Once upon ", 1},
		{"before the first chunk: retried", 1, 0, "", "after retry", 2},
		{"before the first chunk every time", 3, 0, stalled, "", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hold := make(chan struct{}) // never released
			gone := make([]chan struct{}, tc.stalls)
			for i := range gone {
				gone[i] = make(chan struct{})
			}
			srv := startFake(t, func(call int, _ fakebedrock.Request) fakebedrock.Reply {
				switch {
				case call == 1:
					return fakebedrock.Reply{Chunks: []string{"warm"}}
				case call <= 1+tc.stalls:
					return fakebedrock.Reply{Chunks: parts, Hold: hold, HoldAfter: tc.holdAfter, Gone: gone[call-2]}
				}
				return okReply
			})
			c := newClient(t, srv, bedrock.Options{MaxAttempts: 3, IdleTimeout: idle})
			// The warm-up leaves the client's idle connection and its
			// goroutines in place, so that noLeak sees only the turn's.
			if _, _, err := stream(t, c, ask("warm up")); err != nil {
				t.Fatalf("warm-up Stream: %v", err)
			}
			before := runtime.NumGoroutine()

			chunks, _, err := stream(t, c, ask("a story"))
			if tc.want == "" && err != nil {
				t.Fatalf("Stream: %v", err)
			}
			if tc.want != "" {
				if msg := modelError(t, err); msg != tc.want {
					t.Errorf("message = %q, want %q", msg, tc.want)
				}
			}
			if got := text(chunks); got != tc.text {
				t.Errorf("text = %q, want %q", got, tc.text)
			}
			// The fake sees each stalled request go away: the client
			// closed its connection.
			for _, g := range gone {
				closed(t, g, "the fake to see a stalled request closed")
			}
			wantCalls(t, srv, 1+tc.calls)
			noLeak(t, before)
		})
	}
}

// TestStreamSlowButAlive streams a reply whose events come with gaps well
// under IdleTimeout but take longer than it in all: the timeout is between
// events, not for the whole reply.
func TestStreamSlowButAlive(t *testing.T) {
	// Gaps far below the timeout, so that no pause of a loaded machine
	// stretches one past it, and enough of them to outlast it.
	parts := make([]string, 100)
	for i := range parts {
		parts[i] = "w "
	}
	const gap = idle / 40
	srv := startFake(t, fakebedrock.Always(fakebedrock.Reply{Chunks: parts, Delay: gap}))
	c := newClient(t, srv, bedrock.Options{IdleTimeout: idle})
	start := time.Now()
	chunks, _, err := stream(t, c, ask("slowly"))
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	if len(chunks) != len(parts) {
		t.Errorf("got %d chunks, want %d", len(chunks), len(parts))
	}
	// A check of the test itself: the reply outlasted one IdleTimeout.
	if d := time.Since(start); d < 2*idle {
		t.Errorf("the reply took %v, want more than %v for the test to mean anything", d, 2*idle)
	}
}
