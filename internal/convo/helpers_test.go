package convo

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatgateway/gateway/protocol"
)

// scriptModel is a Model whose replies a test scripts: it answers with
// words, one chunk each, waiting for gate (if set) before every chunk, and
// records every request it gets.
type scriptModel struct {
	words func(req ModelRequest) []string
	gate  chan struct{} // nil: no waiting

	mu   sync.Mutex
	reqs []ModelRequest
}

func (m *scriptModel) Stream(ctx context.Context, req ModelRequest, emit func(Chunk)) (Result, error) {
	m.mu.Lock()
	m.reqs = append(m.reqs, req)
	m.mu.Unlock()
	words := []string{"hello ", "from ", "the ", "script"}
	if m.words != nil {
		words = m.words(req)
	}
	for _, w := range words {
		if m.gate != nil {
			select {
			case <-m.gate:
			case <-ctx.Done():
				return Result{}, ctx.Err()
			}
		}
		if err := ctx.Err(); err != nil {
			return Result{}, err
		}
		emit(Chunk{Kind: ChunkText, Text: w})
	}
	return Result{StopReason: protocol.StopEndTurn, Usage: protocol.Usage{InputTokens: 3, OutputTokens: int64(len(words))}}, nil
}

func (m *scriptModel) requests() []ModelRequest {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]ModelRequest(nil), m.reqs...)
}

// recorder is a Subscriber that keeps every frame it gets, with a bounded
// queue like a real connection's.
type recorder struct {
	ch chan []byte
}

func newRecorder(size int) *recorder { return &recorder{ch: make(chan []byte, size)} }

func (r *recorder) Send(f Frame) bool {
	select {
	case r.ch <- f.Data:
		return true
	default:
		return false
	}
}

func (r *recorder) SendWait(ctx context.Context, f Frame) error {
	select {
	case r.ch <- f.Data:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Gone records a deleted conversation as a frame of type "gone".
func (r *recorder) Gone(conversation string) {
	r.ch <- []byte(`{"type":"gone","conversation":"` + conversation + `"}`)
}

// next returns the next event, failing the test after a while.
func (r *recorder) next(t *testing.T) *protocol.Event {
	t.Helper()
	select {
	case f := <-r.ch:
		var ev protocol.Event
		if err := json.Unmarshal(f, &ev); err != nil {
			t.Fatalf("bad frame %s: %v", f, err)
		}
		return &ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
		return nil
	}
}

// until reads events up to and including the first of type typ.
func (r *recorder) until(t *testing.T, typ string) []*protocol.Event {
	t.Helper()
	var out []*protocol.Event
	for {
		ev := r.next(t)
		out = append(out, ev)
		if ev.Type == typ {
			return out
		}
	}
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// openTest opens a Service on a fresh file in t.TempDir and closes it at
// the end of the test.
func openTest(t *testing.T, m Model) (*Service, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "gateway.db")
	s, err := Open(path, m, Config{DefaultModel: "test-model", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	return s, path
}

func send(t *testing.T, s *Service, conversation, text string, sub Subscriber) *protocol.Ack {
	t.Helper()
	ack, err := s.Send(context.Background(), "u1", &protocol.Send{Conversation: conversation, Text: text}, sub)
	if err != nil {
		t.Fatalf("send %q: %v", text, err)
	}
	return ack
}
