// Package logtest is the conformance suite of convo.Log: every
// implementation of the storage seam runs it, so that the Service can rely
// on the same contract from each (see convo.Log).
//
//	func TestConformance(t *testing.T) {
//		logtest.Run(t, func(t *testing.T) func(t *testing.T) convo.Log { … })
//	}
package logtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

// Storage makes fresh, empty storage for one test and returns a function
// that opens a Log on it. The suite calls open again after closing the
// first Log, to check that what was stored survives; open must then see
// the same storage. open should not call Start: the suite does.
type Storage func(t *testing.T) (open func(t *testing.T) convo.Log)

// Run runs the conformance suite against the Logs that storage opens.
func Run(t *testing.T, storage Storage) {
	tests := []struct {
		name string
		run  func(t *testing.T, storage Storage)
	}{
		{"CreateAndMeta", testCreateAndMeta},
		{"GaplessSeqs", testGaplessSeqs},
		{"BuildRefuses", testBuildRefuses},
		{"BuildSeesEnd", testBuildSeesEnd},
		{"ConcurrentWriters", testConcurrentWriters},
		{"ClientMsgID", testClientMsgID},
		{"DurableBeforeCommitted", testDurableBeforeCommitted},
		{"Post", testPost},
		{"EventsBounds", testEventsBounds},
		{"Messages", testMessages},
		{"ListByOwner", testListByOwner},
		{"ListPages", testListPages},
		{"PageBytes", testPageBytes},
		{"Delete", testDelete},
		{"Unfinished", testUnfinished},
		{"Reopen", testReopen},
		{"CanceledContext", testCanceledContext},
		{"Closed", testClosed},
		{"LongestTurnEnd", testLongestTurnEnd},
		{"ReplyOverLimit", testReplyOverLimit},
		{"ReasoningOverLimit", testReasoningOverLimit},
		{"ActionsOverLimit", testActionsOverLimit},
		{"ToolInputOverLimit", testToolInputOverLimit},
		{"AlternatingChunks", testAlternatingChunks},
		{"AgentStepHistory", testAgentStepHistory},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.run(t, storage)
		})
	}
}

// harness is one open Log and what it reported as committed.
type harness struct {
	log convo.Log

	mu        sync.Mutex
	committed []convo.Committed
}

// start opens a Log on fresh storage and closes it at the end of the test.
func start(t *testing.T, storage Storage) (*harness, func(t *testing.T) convo.Log) {
	t.Helper()
	open := storage(t)
	return startOn(t, open), open
}

func startOn(t *testing.T, open func(t *testing.T) convo.Log) *harness {
	t.Helper()
	h := &harness{log: open(t)}
	h.log.Start(func(evs []convo.Committed) {
		h.mu.Lock()
		h.committed = append(h.committed, evs...)
		h.mu.Unlock()
	})
	t.Cleanup(func() { h.log.Close() })
	return h
}

// reported returns the committed events reported for conversation id.
func (h *harness) reported(id string) []convo.Committed {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []convo.Committed
	for _, c := range h.committed {
		if c.Conversation == id {
			out = append(out, c)
		}
	}
	return out
}

var ctx = context.Background()

// newMeta is the metadata of a new conversation id owned by owner.
func newMeta(id, owner string) *convo.Meta {
	return &convo.Meta{Owner: owner, Conversation: protocol.Conversation{ID: id, Model: "m", System: "be brief"}}
}

// create makes conversation id owned by owner, with no events.
func (h *harness) create(t *testing.T, id, owner string) {
	t.Helper()
	if _, err := h.log.Append(ctx, &convo.Append{Conversation: id, New: newMeta(id, owner), Build: none}); err != nil {
		t.Fatalf("create %s: %v", id, err)
	}
}

func none(*convo.Meta) ([]convo.Draft, error) { return nil, nil }

// events returns a Build that appends evs whatever the metadata.
func events(evs ...*protocol.Event) func(*convo.Meta) ([]convo.Draft, error) {
	return func(*convo.Meta) ([]convo.Draft, error) {
		out := make([]convo.Draft, len(evs))
		for i, ev := range evs {
			c := *ev
			if ev.Message != nil {
				m := *ev.Message
				c.Message = &m
			}
			out[i] = convo.Draft{Event: &c}
		}
		return out, nil
	}
}

func delta(turn, text string) *protocol.Event {
	return &protocol.Event{Type: protocol.EventDelta, Turn: turn, Text: text}
}

func userMessage(turn, text string) *protocol.Event {
	return &protocol.Event{Type: protocol.EventMessage, Message: &protocol.Message{ID: "m_" + turn, Role: protocol.RoleUser, Text: text, Turn: turn}}
}

func turnEnd(turn, text string) *protocol.Event {
	return &protocol.Event{Type: protocol.EventTurnEnd, Turn: turn, StopReason: protocol.StopEndTurn, Usage: &protocol.Usage{},
		Message: &protocol.Message{ID: "m_r" + turn, Role: protocol.RoleAssistant, Text: text, Turn: turn}}
}

// appendOK appends evs to conversation id and returns the result.
func (h *harness) appendOK(t *testing.T, id string, evs ...*protocol.Event) *convo.Appended {
	t.Helper()
	res, err := h.log.Append(ctx, &convo.Append{Conversation: id, Build: events(evs...)})
	if err != nil {
		t.Fatalf("append to %s: %v", id, err)
	}
	return res
}

// readAll returns every event of conversation id, decoded.
func readAll(t *testing.T, l convo.Log, id string) []*protocol.Event {
	t.Helper()
	frames, err := l.Events(ctx, id, 0, 0, 1<<20)
	if err != nil {
		t.Fatalf("events of %s: %v", id, err)
	}
	out := make([]*protocol.Event, len(frames))
	for i, f := range frames {
		var ev protocol.Event
		if err := json.Unmarshal(f, &ev); err != nil {
			t.Fatalf("event %d of %s: %v: %s", i, id, err, f)
		}
		out[i] = &ev
	}
	return out
}

// checkGapless fails unless evs have seqs 1…n.
func checkGapless(t *testing.T, evs []*protocol.Event) {
	t.Helper()
	for i, ev := range evs {
		if ev.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d", i, ev.Seq)
		}
	}
}

func testCreateAndMeta(t *testing.T, storage Storage) {
	h, _ := start(t, storage)
	if _, err := h.log.Meta(ctx, "c1"); !errors.Is(err, convo.ErrNotFound) {
		t.Fatalf("meta of a missing conversation: %v, want ErrNotFound", err)
	}
	h.create(t, "c1", "alice")
	m, err := h.log.Meta(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if m.ID != "c1" || m.Owner != "alice" || m.Model != "m" || m.System != "be brief" || m.LastSeq != 0 || m.CreatedAt.IsZero() || m.UpdatedAt.IsZero() {
		t.Fatalf("meta %+v", m)
	}
	_, err = h.log.Append(ctx, &convo.Append{Conversation: "c1", New: newMeta("c1", "bob"), Build: none})
	if !errors.Is(err, convo.ErrExists) {
		t.Fatalf("creating c1 again: %v, want ErrExists", err)
	}
	if _, err := h.log.Append(ctx, &convo.Append{Conversation: "c2", Build: events(delta("t", "x"))}); !errors.Is(err, convo.ErrNotFound) {
		t.Fatalf("append to a missing conversation: %v, want ErrNotFound", err)
	}
	// Meta hands out copies.
	m.Pending = append(m.Pending, convo.PendingTurn{Turn: "x"})
	m.Title = "changed"
	if m2, _ := h.log.Meta(ctx, "c1"); len(m2.Pending) != 0 || m2.Title != "" {
		t.Fatalf("changing a copy changed the log's metadata: %+v", m2)
	}
}

func testGaplessSeqs(t *testing.T, storage Storage) {
	h, _ := start(t, storage)
	h.create(t, "c1", "alice")
	res := h.appendOK(t, "c1", userMessage("t1", "hello\nworld"))
	if len(res.Events) != 1 || res.Events[0].Seq != 1 || res.Events[0].Conversation != "c1" || res.Events[0].TS.IsZero() {
		t.Fatalf("first append stored %+v", res.Events)
	}
	if msg := res.Events[0].Message; msg.Seq != 1 || msg.CreatedAt.IsZero() {
		t.Fatalf("message not stamped: %+v", msg)
	}
	res = h.appendOK(t, "c1", &protocol.Event{Type: protocol.EventTurnStart, Turn: "t1", Model: "m"}, delta("t1", "a"), delta("t1", "b"))
	if len(res.Events) != 3 || res.Events[0].Seq != 2 || res.Events[2].Seq != 4 {
		t.Fatalf("second append stored %+v", res.Events)
	}
	if res.Meta == nil || res.Meta.LastSeq != 4 || res.Meta.OpenTurn == nil || res.Meta.OpenTurn.Turn != "t1" || res.Meta.Title != "hello" {
		t.Fatalf("meta after append: %+v", res.Meta)
	}
	h.appendOK(t, "c1", turnEnd("t1", "ab"))
	evs := readAll(t, h.log, "c1")
	checkGapless(t, evs)
	if len(evs) != 5 || evs[4].Type != protocol.EventTurnEnd || evs[4].Message.Text != "ab" {
		t.Fatalf("stored %d events, last %+v", len(evs), evs[len(evs)-1])
	}
	m, _ := h.log.Meta(ctx, "c1")
	if m.LastSeq != 5 || m.OpenTurn != nil || len(m.Pending) != 0 || !m.UpdatedAt.Equal(evs[4].TS) {
		t.Fatalf("meta %+v", m)
	}
	// The frames reported as committed are the frames stored.
	rep := h.reported("c1")
	frames, _ := h.log.Events(ctx, "c1", 0, 0, 100)
	if len(rep) != len(frames) {
		t.Fatalf("%d events reported, %d stored", len(rep), len(frames))
	}
	for i := range rep {
		if string(rep[i].Frame) != string(frames[i]) || rep[i].Seq != uint64(i+1) || rep[i].Type != evs[i].Type || rep[i].Durable.IsZero() {
			t.Fatalf("reported %+v, stored %s", rep[i], frames[i])
		}
	}
}

var errRefused = protocol.Errorf(protocol.CodeBusy, "refused by the test")

func testBuildRefuses(t *testing.T, storage Storage) {
	h, _ := start(t, storage)
	h.create(t, "c1", "alice")
	durable := false
	_, err := h.log.Append(ctx, &convo.Append{Conversation: "c1",
		Build:   func(*convo.Meta) ([]convo.Draft, error) { return nil, errRefused },
		Durable: func(*convo.Appended) { durable = true }})
	// As is: a refusal wrapped as ErrUnavailable would be retried by the
	// Service, which retries storage failures, for ever.
	if err != errRefused {
		t.Fatalf("refused append: %v, want the Build's error as is", err)
	}
	if durable {
		t.Fatal("Durable was called for a refused append")
	}
	// A refused append next to accepted ones refuses only itself.
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			build := events(delta("t", "x"))
			if i%2 == 1 {
				build = func(*convo.Meta) ([]convo.Draft, error) { return nil, errRefused }
			}
			_, err := h.log.Append(ctx, &convo.Append{Conversation: "c1", Build: build})
			if i%2 == 1 && err != errRefused || i%2 == 0 && err != nil {
				t.Errorf("append %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	evs := readAll(t, h.log, "c1")
	checkGapless(t, evs)
	if len(evs) != 10 {
		t.Fatalf("%d events stored, want 10", len(evs))
	}
}

// testBuildSeesEnd checks the compare-and-set: Build sees the metadata as
// of the log's end, including appends that raced with it.
func testBuildSeesEnd(t *testing.T, storage Storage) {
	h, _ := start(t, storage)
	h.create(t, "c1", "alice")
	const writers = 20
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each writer appends only while no turn is open: exactly one
			// of them may open it.
			_, err := h.log.Append(ctx, &convo.Append{Conversation: "c1", Build: func(m *convo.Meta) ([]convo.Draft, error) {
				if m.OpenTurn != nil {
					return nil, errRefused
				}
				return []convo.Draft{{Event: &protocol.Event{Type: protocol.EventTurnStart, Turn: fmt.Sprint("t", m.LastSeq)}}}, nil
			}})
			if err != nil && !errors.Is(err, errRefused) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if evs := readAll(t, h.log, "c1"); len(evs) != 1 {
		t.Fatalf("%d turns opened, want 1", len(evs))
	}
}

func testConcurrentWriters(t *testing.T, storage Storage) {
	h, _ := start(t, storage)
	const convs, writers, each = 3, 8, 10
	for c := range convs {
		h.create(t, fmt.Sprint("c", c), "alice")
	}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				id := fmt.Sprint("c", (w+i)%convs)
				text := fmt.Sprint(w, "/", i)
				res, err := h.log.Append(ctx, &convo.Append{Conversation: id, Build: events(delta("t", text+"a"), delta("t", text+"b"))})
				if err != nil {
					t.Error(err)
					return
				}
				if res.Events[1].Seq != res.Events[0].Seq+1 {
					t.Errorf("one append got seqs %d and %d", res.Events[0].Seq, res.Events[1].Seq)
				}
			}
		}()
	}
	wg.Wait()
	total := 0
	for c := range convs {
		id := fmt.Sprint("c", c)
		evs := readAll(t, h.log, id)
		checkGapless(t, evs)
		total += len(evs)
		rep := h.reported(id)
		if len(rep) != len(evs) {
			t.Fatalf("%s: %d events reported, %d stored", id, len(rep), len(evs))
		}
		for i, r := range rep {
			if r.Seq != uint64(i+1) {
				t.Fatalf("%s: reported seq %d at %d: out of order", id, r.Seq, i)
			}
		}
	}
	if total != writers*each*2 {
		t.Fatalf("%d events stored, want %d", total, writers*each*2)
	}
}

func testClientMsgID(t *testing.T, storage Storage) {
	h, _ := start(t, storage)
	h.create(t, "c1", "alice")
	first, err := h.log.Append(ctx, &convo.Append{Conversation: "c1", ClientMsgID: "k1",
		Build: events(userMessage("t1", "hi"), &protocol.Event{Type: protocol.EventTurnStart, Turn: "t1"})})
	if err != nil {
		t.Fatal(err)
	}
	var durable *convo.Appended
	again, err := h.log.Append(ctx, &convo.Append{Conversation: "c1", ClientMsgID: "k1",
		Build: func(*convo.Meta) ([]convo.Draft, error) {
			t.Error("Build called for a repeated client message id")
			return nil, nil
		},
		Durable: func(a *convo.Appended) { durable = a }})
	if err != nil {
		t.Fatal(err)
	}
	if again.Duplicate == nil || *again.Duplicate != *first.Events[0].Message || len(again.Events) != 0 {
		t.Fatalf("repeat returned %+v, want duplicate of %+v", again, first.Events[0].Message)
	}
	if durable != again {
		t.Fatal("Durable not called with the duplicate")
	}
	// The key is per conversation, and survives in other conversations.
	h.create(t, "c2", "alice")
	other, err := h.log.Append(ctx, &convo.Append{Conversation: "c2", ClientMsgID: "k1", Build: events(userMessage("t2", "hi"))})
	if err != nil || other.Duplicate != nil || len(other.Events) != 1 {
		t.Fatalf("same key in another conversation: %+v, %v", other, err)
	}
	// Concurrent repeats store once.
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := h.log.Append(ctx, &convo.Append{Conversation: "c1", ClientMsgID: "k2", Build: events(userMessage("t3", "once"))}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if evs := readAll(t, h.log, "c1"); len(evs) != 3 {
		t.Fatalf("%d events after concurrent repeats, want 3", len(evs))
	}
}

func testDurableBeforeCommitted(t *testing.T, storage Storage) {
	h, _ := start(t, storage)
	h.create(t, "c1", "alice")
	for i := range 20 {
		var seen int
		res, err := h.log.Append(ctx, &convo.Append{Conversation: "c1", Build: events(delta("t", "x")),
			Durable: func(a *convo.Appended) {
				seen = len(h.reported("c1"))
				if a.Events[0].Seq != uint64(i+1) {
					t.Errorf("Durable got seq %d, want %d", a.Events[0].Seq, i+1)
				}
			}})
		if err != nil {
			t.Fatal(err)
		}
		if seen != i {
			t.Fatalf("append %d: %d events were reported before its Durable call, want %d", i, seen, i)
		}
		if got := len(h.reported("c1")); got != i+1 {
			t.Fatalf("append %d returned with %d events reported: it must be reported before Append returns", res.Events[0].Seq, got)
		}
	}
}

// testPost posts appends, each from the done of the one before (as a
// reply's turn does): every done gets what Append would return, once its
// events are reported; refusals, unknown conversations, ended contexts
// and a closed Log come to done as errors.
func testPost(t *testing.T, storage Storage) {
	h, _ := start(t, storage)
	h.create(t, "c1", "alice")
	const n = 20
	type result struct {
		seq      uint64
		reported int
		err      error
	}
	results := make(chan result, n)
	var post func(i int)
	post = func(i int) {
		h.log.Post(ctx, &convo.Append{Conversation: "c1", Deferrable: true, Build: events(delta("t", fmt.Sprint(i)))}, func(a *convo.Appended, err error) {
			r := result{reported: len(h.reported("c1")), err: err}
			if err == nil {
				r.seq = a.Events[0].Seq
			}
			results <- r
			if i+1 < n {
				post(i + 1)
			}
		})
	}
	post(0)
	for i := range n {
		r := <-results
		if r.err != nil || r.seq != uint64(i+1) || r.reported < i+1 {
			t.Fatalf("post %d: seq %d, %d events reported, err %v; want seq %d, reported, no error", i, r.seq, r.reported, r.err, i+1)
		}
	}
	for i, ev := range readAll(t, h.log, "c1") {
		if ev.Text != fmt.Sprint(i) {
			t.Fatalf("event %d has text %q, want %q", i+1, ev.Text, fmt.Sprint(i))
		}
	}

	failed := func(a *convo.Append, actx context.Context) error {
		errs := make(chan error, 1)
		h.log.Post(actx, a, func(res *convo.Appended, err error) {
			if res != nil && err != nil {
				t.Errorf("done got a result with error %v", err)
			}
			errs <- err
		})
		return <-errs
	}
	if err := failed(&convo.Append{Conversation: "c1", Build: func(*convo.Meta) ([]convo.Draft, error) { return nil, errRefused }}, ctx); err != errRefused {
		t.Errorf("refused post: %v, want the Build's error as is", err)
	}
	if err := failed(&convo.Append{Conversation: "nope", Build: events(delta("t", "x"))}, ctx); !errors.Is(err, convo.ErrNotFound) {
		t.Errorf("post to a missing conversation: %v, want ErrNotFound", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := failed(&convo.Append{Conversation: "c1", Build: events(delta("t", "x"))}, cctx); !errors.Is(err, context.Canceled) {
		t.Errorf("post with a cancelled context: %v", err)
	}
	if evs := readAll(t, h.log, "c1"); len(evs) != n {
		t.Fatalf("%d events after the failed posts, want %d", len(evs), n)
	}
	if err := h.log.Close(); err != nil {
		t.Fatal(err)
	}
	if err := failed(&convo.Append{Conversation: "c1", Build: events(delta("t", "x"))}, ctx); !errors.Is(err, convo.ErrClosed) {
		t.Errorf("post after close: %v, want ErrClosed", err)
	}
}

func testEventsBounds(t *testing.T, storage Storage) {
	h, _ := start(t, storage)
	h.create(t, "c1", "alice")
	for range 10 {
		h.appendOK(t, "c1", delta("t", "x"))
	}
	for _, tc := range []struct {
		after, upTo uint64
		limit       int
		first, n    uint64
	}{
		{0, 0, 100, 1, 10},
		{3, 0, 100, 4, 7},
		{3, 5, 100, 4, 2},
		{3, 0, 4, 4, 4},
		{10, 0, 100, 0, 0},
		{0, 10, 1, 1, 1},
	} {
		frames, err := h.log.Events(ctx, "c1", tc.after, tc.upTo, tc.limit)
		if err != nil {
			t.Fatal(err)
		}
		if uint64(len(frames)) != tc.n {
			t.Fatalf("events after %d up to %d limit %d: %d, want %d", tc.after, tc.upTo, tc.limit, len(frames), tc.n)
		}
		for i, f := range frames {
			var ev protocol.Event
			if err := json.Unmarshal(f, &ev); err != nil || ev.Seq != tc.first+uint64(i) {
				t.Fatalf("event %d: seq %d, %v", i, ev.Seq, err)
			}
		}
	}
	if _, err := h.log.Events(ctx, "nope", 0, 0, 10); !errors.Is(err, convo.ErrNotFound) {
		t.Fatalf("events of a missing conversation: %v", err)
	}
}

func testMessages(t *testing.T, storage Storage) {
	h, _ := start(t, storage)
	h.create(t, "c1", "alice")
	h.appendOK(t, "c1", userMessage("t1", "q1"), &protocol.Event{Type: protocol.EventTurnStart, Turn: "t1"}, delta("t1", "a1"))
	h.appendOK(t, "c1", userMessage("t2", "q2"))
	h.appendOK(t, "c1", turnEnd("t1", "a1"))
	msgs, more, err := h.log.Messages(ctx, "c1", 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 3 || more || msgs[0].Text != "q1" || msgs[1].Text != "q2" || msgs[2].Text != "a1" || msgs[2].Seq != 5 || msgs[2].Role != protocol.RoleAssistant {
		t.Fatalf("messages %+v more %v", msgs, more)
	}
	msgs, more, _ = h.log.Messages(ctx, "c1", 0, 2, 0)
	if len(msgs) != 2 || !more || msgs[0].Text != "q2" {
		t.Fatalf("newest 2: %+v more %v", msgs, more)
	}
	msgs, more, _ = h.log.Messages(ctx, "c1", 4, 10, 0)
	if len(msgs) != 1 || more || msgs[0].Text != "q1" {
		t.Fatalf("before 4: %+v more %v", msgs, more)
	}
}

func testListByOwner(t *testing.T, storage Storage) {
	h, _ := start(t, storage)
	h.create(t, "a1", "alice")
	h.create(t, "b1", "bob")
	h.create(t, "a2", "alice")
	time.Sleep(2 * time.Millisecond) // UpdatedAt has to differ: a1's append must be the newest.
	h.appendOK(t, "a1", userMessage("t", "newest"))
	list := h.list(t, "alice")
	if len(list) != 2 || list[0].ID != "a1" || list[1].ID != "a2" || list[0].Title != "newest" || list[0].LastSeq != 1 {
		t.Fatalf("alice's list: %+v", list)
	}
	if list := h.list(t, "carol"); len(list) != 0 {
		t.Fatalf("carol's list: %+v", list)
	}
}

// list returns the first page of 100 of owner's conversations, which
// must be all of them.
func (h *harness) list(t *testing.T, owner string) []protocol.Conversation {
	t.Helper()
	list, more, err := h.log.List(ctx, owner, convo.ListCursor{}, 100, 0)
	if err != nil || more {
		t.Fatalf("list of %s: %+v, more %v, %v", owner, list, more, err)
	}
	return list
}

// testListPages pages through a list with every limit from 1 to past its
// end: each conversation comes once, in the list order, and a
// conversation updated or deleted between two pages does not disturb the
// next ones.
func testListPages(t *testing.T, storage Storage) {
	h, _ := start(t, storage)
	const n = 7
	for i := range n {
		h.create(t, fmt.Sprintf("a%d", i), "alice")
		h.create(t, fmt.Sprintf("b%d", i), "bob")
	}
	// Updates reorder some of them.
	for _, id := range []string{"a2", "a5", "a0"} {
		h.appendOK(t, id, userMessage("t", id))
	}
	want := h.list(t, "alice")
	ids := func(list []protocol.Conversation) []string {
		var out []string
		for _, c := range list {
			out = append(out, c.ID)
		}
		return out
	}
	if len(want) != n {
		t.Fatalf("alice's list: %v", ids(want))
	}
	for i := 1; i < n; i++ {
		a, b := want[i-1], want[i]
		if a.UpdatedAt.Before(b.UpdatedAt) || a.UpdatedAt.Equal(b.UpdatedAt) && a.ID > b.ID {
			t.Fatalf("alice's list is not most recently updated first, then by id: %+v", want)
		}
	}
	if want[0].ID != "a0" || want[1].ID != "a5" || want[2].ID != "a2" {
		t.Fatalf("alice's list does not start with the updated ones: %v", ids(want))
	}
	for limit := 1; limit <= n+1; limit++ {
		var got []protocol.Conversation
		var after convo.ListCursor
		for pages := 0; ; pages++ {
			page, more, err := h.log.List(ctx, "alice", after, limit, 0)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > limit || more && len(page) == 0 || pages > n {
				t.Fatalf("limit %d: page %d is %v, more %v", limit, pages, ids(page), more)
			}
			got = append(got, page...)
			if !more {
				break
			}
			last := page[len(page)-1]
			after = convo.ListCursor{UpdatedAt: last.UpdatedAt, ID: last.ID}
		}
		if fmt.Sprint(ids(got)) != fmt.Sprint(ids(want)) {
			t.Errorf("limit %d: pages %v, want %v", limit, ids(got), ids(want))
		}
	}

	// After the first page of 3, the last conversation is updated (it
	// moves to the first page) and the fifth deleted: the next pages hold
	// the others.
	page, more, err := h.log.List(ctx, "alice", convo.ListCursor{}, 3, 0)
	if err != nil || !more || fmt.Sprint(ids(page)) != fmt.Sprint(ids(want[:3])) {
		t.Fatalf("first page: %v, more %v, %v", ids(page), more, err)
	}
	h.appendOK(t, want[n-1].ID, userMessage("t", "moved"))
	if _, err := h.log.Delete(ctx, want[4].ID, "alice"); err != nil {
		t.Fatal(err)
	}
	after := convo.ListCursor{UpdatedAt: page[2].UpdatedAt, ID: page[2].ID}
	rest, more, err := h.log.List(ctx, "alice", after, 10, 0)
	if err != nil || more || fmt.Sprint(ids(rest)) != fmt.Sprint([]string{want[3].ID, want[5].ID}) {
		t.Fatalf("after an update and a delete: %v, more %v, %v; want %s and %s", ids(rest), more, err, want[3].ID, want[5].ID)
	}
}

// testPageBytes bounds history and list pages in bytes: a page stops
// before the message or conversation that would take it past maxBytes,
// but always holds one.
func testPageBytes(t *testing.T, storage Storage) {
	h, _ := start(t, storage)
	h.create(t, "c1", "alice")
	for i, n := range []int{3000, 1000, 2000} {
		h.appendOK(t, "c1", userMessage(fmt.Sprint("t", i), strings.Repeat("x", n)))
	}
	all, _, err := h.log.Messages(ctx, "c1", 0, 0, 0)
	if err != nil || len(all) != 3 {
		t.Fatalf("messages %d, %v", len(all), err)
	}
	size := func(ms ...protocol.Message) int {
		n := 0
		for _, m := range ms {
			n += convo.MessageBytes(&m)
		}
		return n
	}
	for _, tc := range []struct {
		maxBytes, want int
		more           bool
	}{
		{size(all...), 3, false},
		{size(all...) - 1, 2, true},
		{size(all[1:]...), 2, true},
		{size(all[2]), 1, true},
		{1, 1, true},
	} {
		msgs, more, err := h.log.Messages(ctx, "c1", 0, 0, tc.maxBytes)
		if err != nil || len(msgs) != tc.want || more != tc.more || msgs[len(msgs)-1].Seq != all[2].Seq {
			t.Errorf("maxBytes %d: %d messages, more %v, %v; want the newest %d, more %v", tc.maxBytes, len(msgs), more, err, tc.want, tc.more)
		}
	}
	if msgs, more, _ := h.log.Messages(ctx, "c1", all[2].Seq, 0, size(all[1])); len(msgs) != 1 || !more || msgs[0].Seq != all[1].Seq {
		t.Errorf("before the newest, one message's worth: %+v, more %v", msgs, more)
	}

	for i, n := range []int{500, 3000, 1000, 2000, 100} {
		id := fmt.Sprint("l", i)
		m := newMeta(id, "bob")
		m.Title = strings.Repeat("t", n)
		if _, err := h.log.Append(ctx, &convo.Append{Conversation: id, New: m, Build: none}); err != nil {
			t.Fatal(err)
		}
	}
	list := h.list(t, "bob")
	var ids []string
	for _, c := range list {
		ids = append(ids, c.ID)
	}
	for _, maxBytes := range []int{1, 3500, 4000, 1 << 20} {
		var got []string
		var after convo.ListCursor
		for pages := 0; ; pages++ {
			page, more, err := h.log.List(ctx, "bob", after, 10, maxBytes)
			if err != nil || len(page) == 0 || pages > len(list) {
				t.Fatalf("maxBytes %d: page %d is %d conversations, %v", maxBytes, pages, len(page), err)
			}
			n := 0
			for _, c := range page {
				got = append(got, c.ID)
				n += convo.ConversationBytes(&c)
			}
			if len(page) > 1 && n > maxBytes {
				t.Errorf("maxBytes %d: a page of %d bytes", maxBytes, n)
			}
			if !more {
				break
			}
			last := page[len(page)-1]
			after = convo.ListCursor{UpdatedAt: last.UpdatedAt, ID: last.ID}
		}
		if fmt.Sprint(got) != fmt.Sprint(ids) {
			t.Errorf("maxBytes %d: pages %v, want %v", maxBytes, got, ids)
		}
	}
}

func testDelete(t *testing.T, storage Storage) {
	h, _ := start(t, storage)
	h.create(t, "c1", "alice")
	h.appendOK(t, "c1", userMessage("t1", "q"), &protocol.Event{Type: protocol.EventTurnStart, Turn: "t1"}, delta("t1", "streaming"))
	m, err := h.log.Meta(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.log.Delete(ctx, "c1", "bob"); !errors.Is(err, convo.ErrNotFound) {
		t.Fatalf("delete by another owner: %v", err)
	}
	// Delete names the conversation it removed by its creation time.
	if created, err := h.log.Delete(ctx, "c1", "alice"); err != nil || !created.Equal(m.CreatedAt) {
		t.Fatalf("delete: created %v, %v; want %v", created, err, m.CreatedAt)
	}
	if _, err := h.log.Meta(ctx, "c1"); !errors.Is(err, convo.ErrNotFound) {
		t.Fatalf("meta after delete: %v", err)
	}
	// From the start, and from the middle, where a reader that pages
	// through the log is when the delete lands (GET …/events ends its
	// answer there on ErrNotFound only).
	for _, after := range []uint64{0, 2} {
		if _, err := h.log.Events(ctx, "c1", after, 0, 10); !errors.Is(err, convo.ErrNotFound) {
			t.Fatalf("events after %d, after delete: %v", after, err)
		}
	}
	if _, err := h.log.Append(ctx, &convo.Append{Conversation: "c1", Build: events(delta("t1", "more"))}); !errors.Is(err, convo.ErrNotFound) {
		t.Fatalf("append after delete: %v", err)
	}
	if list := h.list(t, "alice"); len(list) != 0 {
		t.Fatalf("list after delete: %+v", list)
	}
	if _, err := h.log.Delete(ctx, "c1", "alice"); !errors.Is(err, convo.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	// The id can be used again, starting from seq 1 with nothing of the old log.
	h.create(t, "c1", "bob")
	res := h.appendOK(t, "c1", delta("t9", "new"))
	if res.Events[0].Seq != 1 {
		t.Fatalf("recreated conversation starts at seq %d", res.Events[0].Seq)
	}
	if msgs, _, _ := h.log.Messages(ctx, "c1", 0, 0, 0); len(msgs) != 0 {
		t.Fatalf("recreated conversation has old messages %+v", msgs)
	}
}

func testUnfinished(t *testing.T, storage Storage) {
	h, _ := start(t, storage)
	for _, id := range []string{"idle", "open", "queued", "done"} {
		h.create(t, id, "alice")
	}
	h.appendOK(t, "open", userMessage("t1", "q"), &protocol.Event{Type: protocol.EventTurnStart, Turn: "t1"})
	h.appendOK(t, "queued", userMessage("t1", "q"))
	h.appendOK(t, "done", userMessage("t1", "q"), &protocol.Event{Type: protocol.EventTurnStart, Turn: "t1"}, turnEnd("t1", "a"))
	un, err := h.log.Unfinished(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]*convo.Meta{}
	for _, m := range un {
		got[m.ID] = m
	}
	if len(got) != 2 || got["open"] == nil || got["open"].OpenTurn.Turn != "t1" || got["queued"] == nil || len(got["queued"].Pending) != 1 {
		t.Fatalf("unfinished: %+v", un)
	}
}

func testReopen(t *testing.T, storage Storage) {
	h, open := start(t, storage)
	h.create(t, "c1", "alice")
	h.appendOK(t, "c1", userMessage("t1", "q"), &protocol.Event{Type: protocol.EventTurnStart, Turn: "t1"}, delta("t1", "a"))
	if _, err := h.log.Append(ctx, &convo.Append{Conversation: "c1", ClientMsgID: "k", Build: events(userMessage("t2", "q2"))}); err != nil {
		t.Fatal(err)
	}
	before := readAll(t, h.log, "c1")
	metaBefore, _ := h.log.Meta(ctx, "c1")
	if err := h.log.Close(); err != nil {
		t.Fatal(err)
	}
	h2 := startOn(t, open)
	after := readAll(t, h2.log, "c1")
	if len(after) != len(before) {
		t.Fatalf("%d events after reopening, %d before", len(after), len(before))
	}
	m, err := h2.log.Meta(ctx, "c1")
	if err != nil {
		t.Fatal(err)
	}
	if m.LastSeq != metaBefore.LastSeq || m.OpenTurn == nil || len(m.Pending) != 1 || m.Owner != "alice" || !m.UpdatedAt.Equal(metaBefore.UpdatedAt) {
		t.Fatalf("meta after reopening %+v, before %+v", m, metaBefore)
	}
	res, err := h2.log.Append(ctx, &convo.Append{Conversation: "c1", ClientMsgID: "k", Build: events(userMessage("t3", "again"))})
	if err != nil || res.Duplicate == nil || res.Duplicate.Text != "q2" {
		t.Fatalf("client message id after reopening: %+v, %v", res, err)
	}
	res = h2.appendOK(t, "c1", delta("t1", "b"))
	if res.Events[0].Seq != uint64(len(before)+1) {
		t.Fatalf("append after reopening got seq %d, want %d", res.Events[0].Seq, len(before)+1)
	}
}

func testCanceledContext(t *testing.T, storage Storage) {
	h, _ := start(t, storage)
	h.create(t, "c1", "alice")
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err := h.log.Append(cctx, &convo.Append{Conversation: "c1", Build: events(delta("t", "x"))})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("append with a cancelled context: %v", err)
	}
	if evs := readAll(t, h.log, "c1"); len(evs) != 0 {
		t.Fatalf("an append whose context ended stored %d events", len(evs))
	}
}

func testClosed(t *testing.T, storage Storage) {
	h, _ := start(t, storage)
	h.create(t, "c1", "alice")
	if err := h.log.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := h.log.Append(ctx, &convo.Append{Conversation: "c1", Build: events(delta("t", "x"))}); !errors.Is(err, convo.ErrClosed) {
		t.Fatalf("append after close: %v", err)
	}
}

// Hook is a function that runs once: a test's wrapper of a Log runs it
// at a chosen point of a call (after a read, after an append of some
// event), to land a concurrent call exactly there.
type Hook struct {
	mu sync.Mutex
	f  func()
}

// Set makes f the function that the next Take returns.
func (h *Hook) Set(f func()) {
	h.mu.Lock()
	h.f = f
	h.mu.Unlock()
}

// Take returns the function set, if any (else nil), and forgets it.
func (h *Hook) Take() func() {
	h.mu.Lock()
	defer h.mu.Unlock()
	f := h.f
	h.f = nil
	return f
}

// Run runs the function set, if any, and forgets it.
func (h *Hook) Run() {
	if f := h.Take(); f != nil {
		f()
	}
}
