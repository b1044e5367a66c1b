package convo_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

// heldLog holds each append of a user message whose text hold names
// before passing it on, as a slow disk would before it is durable: it
// signals held, then waits for release (failing as unavailable, storing
// nothing, if the value received is true).
type heldLog struct {
	convo.Log
	hold    string
	held    chan struct{}
	release chan bool
}

func (l *heldLog) Append(ctx context.Context, a *convo.Append) (*convo.Appended, error) {
	// Build is pure: called here, on the conversation as it is (or as
	// the append creates it), it shows what the append stores.
	m := a.New
	if m == nil {
		var err error
		if m, err = l.Log.Meta(ctx, a.Conversation); err != nil {
			return nil, err
		}
	}
	probe, _ := a.Build(m)
	if len(probe) > 0 && probe[0].Event.Message != nil && probe[0].Event.Message.Text == l.hold {
		l.held <- struct{}{}
		if <-l.release {
			return nil, fmt.Errorf("%w (%w)", convo.ErrUnavailable, errInjected)
		}
	}
	return l.Log.Append(ctx, a)
}

// callModel reports each call on calls, then waits for its context to end
// if the last message is "wait", or else emits a reply made of the number
// of history messages and the last one's text. Every call's end is
// reported on ended.
type callModel struct {
	calls chan convo.ModelRequest
	ended chan error
}

func newCallModel() *callModel {
	return &callModel{calls: make(chan convo.ModelRequest, 10), ended: make(chan error, 10)}
}

func (m *callModel) Stream(ctx context.Context, req convo.ModelRequest, emit func(convo.Chunk)) (res convo.Result, err error) {
	m.calls <- req
	defer func() { m.ended <- err }()
	last := req.History[len(req.History)-1].Text
	if last == "wait" {
		<-ctx.Done()
		return convo.Result{}, ctx.Err()
	}
	emit(convo.Chunk{Kind: convo.ChunkText, Text: fmt.Sprintf("%d:%s", len(req.History), last)})
	return convo.Result{StopReason: protocol.StopEndTurn}, nil
}

// call returns the model's next request, failing the test if none comes.
func (m *callModel) call(t *testing.T, what string) convo.ModelRequest {
	t.Helper()
	select {
	case req := <-m.calls:
		return req
	case <-time.After(10 * time.Second):
		t.Fatalf("the model was not called %s within 10s", what)
		return convo.ModelRequest{}
	}
}

// end returns how the model's next call to end ended, failing the test
// if none does.
func (m *callModel) end(t *testing.T) error {
	t.Helper()
	select {
	case err := <-m.ended:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("no model call ended within 10s")
		return nil
	}
}

// history is req's history as "role:text" words.
func history(req convo.ModelRequest) string {
	var parts []string
	for _, h := range req.History {
		parts = append(parts, h.Role+":"+h.Text)
	}
	return strings.Join(parts, " ")
}

// openHeld opens a Service on m whose appends of a message with text hold
// wait for the test.
func openHeld(t *testing.T, m convo.Model, hold string) (*testService, *heldLog) {
	held := &heldLog{hold: hold, held: make(chan struct{}), release: make(chan bool)}
	s := openOn(t, filepath.Join(t.TempDir(), "gateway.db"), m, func(l convo.Log) convo.Log {
		held.Log = l
		return held
	})
	return s, held
}

// TestModelCalledWhileSendCommits holds a send before it is stored: the
// model is called meanwhile with the conversation's history and the new
// message, and nothing of its reply (which it has already emitted) is
// shown or stored until the send is; then the ack, the message, the
// turn_start and the reply come in that order.
func TestModelCalledWhileSendCommits(t *testing.T) {
	m := newCallModel()
	s, held := openHeld(t, m, "second")
	rec := newRecorder(100)
	id := send(t, s, "", "first", rec).Conversation
	rec.until(t, protocol.EventTurnEnd)
	m.call(t, "for the first turn")
	m.end(t)
	if err := s.WaitTurns(context.Background()); err != nil {
		t.Fatal(err)
	}

	acked := sendInBackground(s, id, "second")
	<-held.held
	if got, want := history(m.call(t, "while the send is stored")), "user:first assistant:1:first user:second"; got != want {
		t.Fatalf("history %q, want %q", got, want)
	}
	if err := m.end(t); err != nil {
		t.Fatal(err)
	}
	if n, last := len(rec.ch), s.meta(t, id).LastSeq; n != 0 || last != 4 {
		t.Fatalf("before the send is stored: %d events shown, last seq %d (want 0 and 4)", n, last)
	}
	held.release <- false
	ack := acked(t)
	evs := rec.until(t, protocol.EventTurnEnd)
	var types []string
	for _, ev := range evs {
		types = append(types, ev.Type)
	}
	if got, want := strings.Join(types, " "), "message turn_start delta turn_end"; got != want {
		t.Fatalf("events %q, want %q", got, want)
	}
	if evs[0].Message.ID != ack.Message.ID || evs[2].Text != "3:second" || evs[2].Turn != ack.Message.Turn {
		t.Fatalf("message %+v, delta %+v for ack %+v", evs[0].Message, evs[2], ack.Message)
	}
}

// TestFailedSendCancelsEarlyCall fails a send after the model was called
// for its turn: the call is cancelled, and nothing of it is shown or
// stored; the next send is answered as if the failed one never was.
func TestFailedSendCancelsEarlyCall(t *testing.T) {
	m := newCallModel()
	s, held := openHeld(t, m, "wait")
	ctx := context.Background()
	conv, err := s.Create(ctx, "u1", &protocol.Create{})
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder(100)
	failed := make(chan error)
	go func() {
		_, err := s.Send(ctx, "u1", &protocol.Send{Conversation: conv.ID, Text: "wait"}, rec)
		failed <- err
	}()
	<-held.held
	m.call(t, "while the send is stored")
	held.release <- true
	if err := <-failed; !errors.Is(err, convo.ErrUnavailable) {
		t.Fatalf("send: %v, want unavailable", err)
	}
	if err := m.end(t); !errors.Is(err, context.Canceled) {
		t.Fatalf("the model call ended with %v, want cancelled", err)
	}
	if err := s.WaitTurns(ctx); err != nil {
		t.Fatal(err)
	}
	if n, last := len(rec.ch), s.meta(t, conv.ID).LastSeq; n != 0 || last != 0 {
		t.Fatalf("after the failed send: %d events shown, last seq %d", n, last)
	}
	send(t, s, conv.ID, "again", rec)
	if got := history(m.call(t, "for the next send")); got != "user:again" {
		t.Fatalf("history %q, want only the new message", got)
	}
	evs := rec.until(t, protocol.EventTurnEnd)
	if end := evs[len(evs)-1]; end.Message.Text != "1:again" || end.Seq != 4 {
		t.Fatalf("turn_end %+v", end)
	}
}

// TestEarlyCallOfOvertakenSend lets another send open its turn while the
// first send, whose model call has started, waits to be stored: that
// call is dropped (its history lacks the other message), the other turn
// runs, then the first send's turn with the whole history.
func TestEarlyCallOfOvertakenSend(t *testing.T) {
	m := newCallModel()
	s, held := openHeld(t, m, "first")
	ctx := context.Background()
	conv, err := s.Create(ctx, "u1", &protocol.Create{})
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder(100)
	if err := s.Subscribe(ctx, "u1", &protocol.Subscribe{Conversation: conv.ID}, rec, func(*protocol.Subscribed) {}); err != nil {
		t.Fatal(err)
	}
	acked := sendInBackground(s, conv.ID, "first")
	<-held.held
	if got := history(m.call(t, "while the send is stored")); got != "user:first" {
		t.Fatalf("early history %q", got)
	}
	send(t, s, conv.ID, "second", nil)
	held.release <- false
	acked(t)
	for _, want := range []string{"user:second", "user:second assistant:1:second user:first"} {
		if got := history(m.call(t, "for a stored turn")); got != want {
			t.Fatalf("history %q, want %q", got, want)
		}
	}
	rec.until(t, protocol.EventTurnEnd)
	rec.until(t, protocol.EventTurnEnd)
	if err := s.WaitTurns(ctx); err != nil {
		t.Fatal(err)
	}
	frames, err := s.log.Events(ctx, conv.ID, 0, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var deltas []string
	for _, f := range frames {
		var ev protocol.Event
		if err := json.Unmarshal(f, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Type == protocol.EventDelta {
			deltas = append(deltas, ev.Text)
		}
	}
	if got := strings.Join(deltas, " "); got != "1:second 3:first" {
		t.Fatalf("stored deltas %q, want the two stored turns' only", got)
	}
}

// TestEarlyCallOfRecreatedConversation deletes the conversation and
// creates it again (same id, another system prompt) while a send whose
// model call has started waits to be stored: the send, checked against
// the deleted conversation, is not found, and nothing of it or of its
// model call is stored in the new one, whose own sends' model calls get
// the new system prompt.
func TestEarlyCallOfRecreatedConversation(t *testing.T) {
	m := newCallModel()
	s, held := openHeld(t, m, "hi")
	ctx := context.Background()
	if _, err := s.Create(ctx, "u1", &protocol.Create{Conversation: "c", System: "old"}); err != nil {
		t.Fatal(err)
	}
	failed := make(chan error, 1)
	go func() {
		_, err := s.Send(ctx, "u1", &protocol.Send{Conversation: "c", Text: "hi"}, nil)
		failed <- err
	}()
	<-held.held
	if req := m.call(t, "while the send is stored"); req.System != "old" {
		t.Fatalf("early call's system %q", req.System)
	}
	if err := s.Delete(ctx, "u1", "c"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Create(ctx, "u1", &protocol.Create{Conversation: "c", System: "new"}); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder(100)
	if err := s.Subscribe(ctx, "u1", &protocol.Subscribe{Conversation: "c"}, rec, func(*protocol.Subscribed) {}); err != nil {
		t.Fatal(err)
	}
	held.release <- false
	if err := <-failed; !errors.Is(err, convo.ErrNotFound) {
		t.Fatalf("send checked against the deleted conversation: %v, want not found", err)
	}
	if err := s.WaitTurns(ctx); err != nil {
		t.Fatal(err)
	}
	if n, last := len(rec.ch), s.meta(t, "c").LastSeq; n != 0 || last != 0 {
		t.Fatalf("the new conversation: %d events shown, last seq %d", n, last)
	}
	send(t, s, "c", "again", nil)
	if req := m.call(t, "for the new conversation's send"); req.System != "new" || history(req) != "user:again" {
		t.Fatalf("call with system %q, history %q; want new, user:again", req.System, history(req))
	}
	evs := rec.until(t, protocol.EventTurnEnd)
	if end := evs[len(evs)-1]; end.StopReason != protocol.StopEndTurn || end.Message.Text != "1:again" {
		t.Fatalf("turn_end %+v", end)
	}
}

// sendInBackground sends text to conversation as user u1, as send does,
// but on another goroutine, which may not stop the test: the function it
// returns waits for the ack on the test's goroutine, and fails the test
// there if the send failed.
func sendInBackground(s sender, conversation, text string) func(t *testing.T) *protocol.Ack {
	type sent struct {
		ack *protocol.Ack
		err error
	}
	done := make(chan sent, 1)
	go func() {
		ack, err := s.Send(context.Background(), "u1", &protocol.Send{Conversation: conversation, Text: text}, nil)
		done <- sent{ack, err}
	}()
	return func(t *testing.T) *protocol.Ack {
		t.Helper()
		r := <-done
		if r.err != nil {
			t.Fatalf("send %q: %v", text, r.err)
		}
		return r.ack
	}
}

// historyLog counts the reads of whole histories (Messages without a
// limit) of the Log it wraps. Once gate is set, the Meta call after skip
// more closes held and waits for gate to close.
type historyLog struct {
	convo.Log
	reads atomic.Int32
	mu    sync.Mutex
	skip  int
	gate  chan struct{}
	held  chan struct{}
}

func (l *historyLog) Meta(ctx context.Context, id string) (*convo.Meta, error) {
	l.mu.Lock()
	var gate, held chan struct{}
	if l.gate != nil {
		if l.skip == 0 {
			gate, held, l.gate = l.gate, l.held, nil
		}
		l.skip--
	}
	l.mu.Unlock()
	if gate != nil {
		close(held)
		<-gate
	}
	return l.Log.Meta(ctx, id)
}

func (l *historyLog) Messages(ctx context.Context, id string, before uint64, limit, maxBytes int) ([]protocol.Message, bool, error) {
	if limit == 0 {
		l.reads.Add(1)
	}
	return l.Log.Messages(ctx, id, before, limit, maxBytes)
}

// TestHistoryKeptBetweenTurns sends one message after another's reply:
// the next turn's model sees the whole history without reading it all
// back from the Log (only the newest messages), the runner kept it. A
// turn that ends with a message pending keeps nothing: the next turn
// reads the whole history, and keeps it for the one after.
func TestHistoryKeptBetweenTurns(t *testing.T) {
	// Room for every call and end: the test reads the calls only.
	m := &callModel{calls: make(chan convo.ModelRequest, 20), ended: make(chan error, 20)}
	hl := &historyLog{}
	s := openOn(t, filepath.Join(t.TempDir(), "gateway.db"), m, func(l convo.Log) convo.Log {
		hl.Log = l
		return hl
	})
	rec := newRecorder(1000)
	ack := send(t, s, "", "one", rec)
	m.call(t, "for one")
	rec.until(t, protocol.EventTurnEnd)
	// More turns than the newest messages readHistory reads, so that a
	// history it joins to them is not all of them.
	want := "user:one assistant:1:one"
	for i := 2; i <= 8; i++ {
		text := fmt.Sprint("q", i)
		reads := hl.reads.Load()
		send(t, s, ack.Conversation, text, nil)
		want += " user:" + text
		if got := history(m.call(t, "for "+text)); got != want {
			t.Errorf("history of %s:\n%q, want\n%q", text, got, want)
		}
		want += fmt.Sprintf(" assistant:%d:%s", 2*i-1, text)
		rec.until(t, protocol.EventTurnEnd)
		if n := hl.reads.Load() - reads; n != 0 {
			t.Errorf("the turn of %s read the whole history %d times, want the one kept", text, n)
		}
	}
	// A message sent while a turn runs: that turn ends with it pending.
	reads := hl.reads.Load()
	send(t, s, ack.Conversation, "wait", nil)
	m.call(t, "for wait")
	send(t, s, ack.Conversation, "three", nil)
	if err := s.Cancel(context.Background(), "u1", ack.Conversation); err != nil {
		t.Fatal(err)
	}
	rec.until(t, protocol.EventTurnEnd)
	want += " user:wait assistant: user:three"
	if got := history(m.call(t, "for three")); got != want {
		t.Errorf("history of three:\n%q, want\n%q", got, want)
	}
	rec.until(t, protocol.EventTurnEnd)
	if n := hl.reads.Load() - reads; n != 1 {
		t.Errorf("the turns of wait and three read the whole history %d times, want once (three's)", n)
	}
	reads = hl.reads.Load()
	send(t, s, ack.Conversation, "four", nil)
	want += " assistant:19:three user:four"
	if got := history(m.call(t, "for four")); got != want {
		t.Errorf("history of four:\n%q, want\n%q", got, want)
	}
	if n := hl.reads.Load() - reads; n != 0 {
		t.Errorf("the turn of four read the whole history %d times, want the one kept", n)
	}
	rec.until(t, protocol.EventTurnEnd)

	// A send while the runner that ended a turn still looks for the next
	// one: the send opens its turn without starting it, that runner runs
	// it, with the kept history and the message sent since.
	send(t, s, ack.Conversation, "wait", nil)
	m.call(t, "for the second wait")
	gate, held := make(chan struct{}), make(chan struct{})
	hl.mu.Lock()
	// Cancel reads the metadata first, then the turn ends.
	hl.skip, hl.gate, hl.held = 1, gate, held
	hl.mu.Unlock()
	if err := s.Cancel(context.Background(), "u1", ack.Conversation); err != nil {
		t.Fatal(err)
	}
	<-held // the runner after the cancelled turn, looking for another
	reads = hl.reads.Load()
	send(t, s, ack.Conversation, "five", nil)
	close(gate)
	want += " assistant:21:four user:wait assistant: user:five"
	if got := history(m.call(t, "for five")); got != want {
		t.Errorf("history of five:\n%q, want\n%q", got, want)
	}
	if n := hl.reads.Load() - reads; n != 0 {
		t.Errorf("the turn of five read the whole history %d times, want the one kept", n)
	}
}
