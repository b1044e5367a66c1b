package convo_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/convo/boltlog"
	"github.com/chatgateway/gateway/protocol"
)

// scriptModel is a Model whose replies a test scripts: it answers with
// words, one chunk each, waiting for gate (if set) before every chunk, and
// records every request it gets.
type scriptModel struct {
	words func(req convo.ModelRequest) []string
	gate  chan struct{} // nil: no waiting

	mu   sync.Mutex
	reqs []convo.ModelRequest
}

func (m *scriptModel) Stream(ctx context.Context, req convo.ModelRequest, emit func(convo.Chunk)) (convo.Result, error) {
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
				return convo.Result{}, ctx.Err()
			}
		}
		if err := ctx.Err(); err != nil {
			return convo.Result{}, err
		}
		emit(convo.Chunk{Kind: convo.ChunkText, Text: w})
	}
	return convo.Result{StopReason: protocol.StopEndTurn, Usage: protocol.Usage{InputTokens: 3, OutputTokens: int64(len(words))}}, nil
}

func (m *scriptModel) requests() []convo.ModelRequest {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]convo.ModelRequest(nil), m.reqs...)
}

// recorder is a Subscriber that keeps every frame it gets, with a bounded
// queue like a real connection's. It keeps acks apart, noting how many
// events had arrived before each.
type recorder struct {
	ch chan []byte

	mu   sync.Mutex
	acks []recordedAck
}

// recordedAck is an ack a recorder got, with the number of events it had
// got before it.
type recordedAck struct {
	ack    protocol.Ack
	before int
}

func newRecorder(size int) *recorder { return &recorder{ch: make(chan []byte, size)} }

var ackPrefix = []byte(`{"type":"` + protocol.ReplyAck + `"`)

func (r *recorder) Send(f convo.Frame) bool {
	if bytes.HasPrefix(f.Data, ackPrefix) {
		var a protocol.Ack
		if err := json.Unmarshal(f.Data, &a); err != nil {
			panic(err)
		}
		r.mu.Lock()
		r.acks = append(r.acks, recordedAck{a, len(r.ch)})
		r.mu.Unlock()
		return true
	}
	select {
	case r.ch <- f.Data:
		return true
	default:
		return false
	}
}

func (r *recorder) SendWait(ctx context.Context, f convo.Frame) error {
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

// errorCounter is a slog.Handler that counts error records and passes
// every record on.
type errorCounter struct {
	slog.Handler
	n *atomic.Int64
}

func (h errorCounter) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		h.n.Add(1)
	}
	return h.Handler.Handle(ctx, r)
}

func (h errorCounter) WithAttrs(attrs []slog.Attr) slog.Handler {
	return errorCounter{h.Handler.WithAttrs(attrs), h.n}
}

func (h errorCounter) WithGroup(name string) slog.Handler {
	return errorCounter{h.Handler.WithGroup(name), h.n}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// testService is a Service on a bbolt file in t.TempDir, with its Log.
type testService struct {
	*convo.Service
	log  convo.Log
	path string
	// errorLogs counts the error records the Service logged.
	errorLogs atomic.Int64
}

// openTest opens a Service on a fresh file in t.TempDir and closes it at
// the end of the test.
func openTest(t *testing.T, m convo.Model) *testService {
	t.Helper()
	return openAt(t, filepath.Join(t.TempDir(), "gateway.db"), m)
}

// openAt opens a Service on the file at path and closes it at the end of
// the test.
func openAt(t *testing.T, path string, m convo.Model) *testService {
	t.Helper()
	return openOn(t, path, m, func(l convo.Log) convo.Log { return l })
}

// openOn is openAt with the Log that wrap makes of the file's.
func openOn(t *testing.T, path string, m convo.Model, wrap func(convo.Log) convo.Log) *testService {
	t.Helper()
	return openConfigured(t, path, m, wrap, convo.Config{})
}

// openConfigured is openOn with cfg, whose model and logger it sets.
func openConfigured(t *testing.T, path string, m convo.Model, wrap func(convo.Log) convo.Log, cfg convo.Config) *testService {
	t.Helper()
	l, err := boltlog.Open(path, boltlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ts := &testService{log: wrap(l), path: path}
	cfg.DefaultModel, cfg.Logger = "test-model", slog.New(errorCounter{testLogger(t).Handler(), &ts.errorLogs})
	ts.Service, err = convo.New(ts.log, m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ts.Close(context.Background()) })
	return ts
}

// meta returns conversation id's metadata as stored.
func (ts *testService) meta(t *testing.T, id string) *convo.Meta {
	t.Helper()
	m, err := ts.log.Meta(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// sender is what send needs of a Service.
type sender interface {
	Send(ctx context.Context, user string, req *protocol.Send, sub convo.Subscriber) (*protocol.Ack, error)
}

func send(t *testing.T, s sender, conversation, text string, sub convo.Subscriber) *protocol.Ack {
	t.Helper()
	ack, err := s.Send(context.Background(), "u1", &protocol.Send{Conversation: conversation, Text: text}, sub)
	if err != nil {
		t.Fatalf("send %q: %v", text, err)
	}
	return ack
}

// faultLog is a Log whose writes fail as when storage cannot write (with
// ErrUnavailable, storing nothing) while its fail function says so for
// the events they would store (nil for a Delete).
type faultLog struct {
	convo.Log

	mu   sync.Mutex
	fail func([]convo.Draft) bool // nil: no faults
	// failed receives a value for each write that failed (if there is
	// room).
	failed chan struct{}
}

// errInjected is what faultLog's Build returns to refuse an append.
var errInjected = errors.New("injected storage fault")

// set makes fail decide which writes fail from now on (nil: none).
func (f *faultLog) set(fail func([]convo.Draft) bool) {
	f.mu.Lock()
	f.fail = fail
	f.mu.Unlock()
}

func (f *faultLog) failing() func([]convo.Draft) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fail
}

func (f *faultLog) Append(ctx context.Context, a *convo.Append) (*convo.Appended, error) {
	fa, unwrap := f.faulty(a)
	res, err := f.Log.Append(ctx, fa)
	return res, unwrap(err)
}

func (f *faultLog) Post(ctx context.Context, a *convo.Append, done func(*convo.Appended, error)) {
	fa, unwrap := f.faulty(a)
	f.Log.Post(ctx, fa, func(res *convo.Appended, err error) { done(res, unwrap(err)) })
}

// faulty returns a, made to fail when f says so, and what turns the
// error of its append into the one storage would return.
func (f *faultLog) faulty(a *convo.Append) (*convo.Append, func(error) error) {
	fail := f.failing()
	if fail == nil {
		return a, func(err error) error { return err }
	}
	faulty := *a
	faulty.Build = func(m *convo.Meta) ([]convo.Draft, error) {
		drafts, err := a.Build(m)
		if err == nil && fail(drafts) {
			select {
			case f.failed <- struct{}{}:
			default:
			}
			return nil, errInjected
		}
		return drafts, err
	}
	return &faulty, func(err error) error {
		if errors.Is(err, errInjected) {
			return fmt.Errorf("%w (%w)", convo.ErrUnavailable, err)
		}
		return err
	}
}

func (f *faultLog) Delete(ctx context.Context, id, owner string) (time.Time, error) {
	if fail := f.failing(); fail != nil && fail(nil) {
		return time.Time{}, fmt.Errorf("%w (%w)", convo.ErrUnavailable, errInjected)
	}
	return f.Log.Delete(ctx, id, owner)
}
