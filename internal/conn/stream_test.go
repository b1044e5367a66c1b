package conn_test

import (
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/chatgateway/gateway/internal/conn"
	"github.com/chatgateway/gateway/internal/conn/conntest"
	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/metrics"
	"github.com/chatgateway/gateway/protocol"
)

func TestFanOut(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	s := conntest.Start(t, conntest.Config{Model: scripted(words(40), time.Millisecond),
		Convo: convo.Config{Metrics: m}, Conn: conn.Options{Metrics: m}})
	clients := []*conntest.Client{s.Dial(t, ""), s.Dial(t, ""), s.Dial(t, "")}
	createConversation(t, clients[0], "fan")
	for _, c := range clients[1:] {
		subscribe(t, c, "fan", 0)
	}
	clients[0].Request(&protocol.Send{ID: "s", Conversation: "fan", Text: "hello"})

	var got [][]event
	for i, c := range clients {
		frames := c.ReadUntil(untilTurnEnd)
		if text := checkTurnText(t, frames); text != words(40) {
			t.Errorf("client %d: reply %q, want %q", i, text, words(40))
		}
		evs := events(frames)
		checkGapless(t, evs, 0)
		got = append(got, evs)
	}
	for i := 1; i < len(got); i++ {
		if !reflect.DeepEqual(got[i], got[0]) {
			t.Errorf("client %d saw\n%v\nclient 0 saw\n%v", i, got[i], got[0])
		}
	}
	// Every delta written to a socket is timed from its model chunk.
	deltas := 0
	for _, ev := range got[0] {
		if ev.Type == protocol.EventDelta {
			deltas++
		}
	}
	// Every event (all were live) is timed from its commit, for each
	// client.
	g, _ := m.Gather()
	if g["gateway_relay_seconds_count"] < float64(deltas) {
		t.Errorf("relay latency observed %v times, want at least %d (deltas) ", g["gateway_relay_seconds_count"], deltas)
	}
	if want := float64(len(clients) * len(got[0])); g["gateway_delivery_seconds_count"] != want {
		t.Errorf("delivery latency observed %v times, want %v (events × clients)", g["gateway_delivery_seconds_count"], want)
	}
}

// TestResume disconnects clients after many different seqs k of one long
// stream, from its first event to after its end, and reconnects them with
// after=k: each must get every later event exactly once, in order, whether
// from the log or live.
func TestResume(t *testing.T) {
	t.Parallel()
	s := conntest.Start(t, conntest.Config{Model: scripted(words(150), 4*time.Millisecond)})
	ref := s.Dial(t, "")
	createConversation(t, ref, "res")

	type result struct {
		k      uint64 // the seq the client had seen when it disconnected
		frames []protocol.ServerFrame
		err    error
	}
	// A long stream, but its deltas coalesce, so it may end before the
	// larger targets: those clients see the turn_end first.
	var targets []uint64
	for k := uint64(1); k <= 60; k += 3 {
		targets = append(targets, k)
	}
	targets = append(targets, 1000)
	results := make(chan result, len(targets))
	var wg sync.WaitGroup
	for i, target := range targets {
		// Half resume with the query, half with a subscribe frame.
		byQuery := i%2 == 0
		first, err := conntest.DialErr(s.URL, conntest.WSPath("conversation=res"), 0)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			k, frames, err := resume(s.URL, first, target, byQuery)
			results <- result{k, frames, err}
		})
	}
	ref.Request(&protocol.Send{ID: "s", Conversation: "res", Text: "go"})
	want := events(ref.ReadUntil(untilTurnEnd))
	checkGapless(t, want, 0)
	wg.Wait()
	close(results)
	for r := range results {
		t.Run(fmt.Sprintf("k=%d", r.k), func(t *testing.T) {
			if r.err != nil {
				t.Fatal(r.err)
			}
			if r.frames[0].Type != protocol.ReplySubscribed || r.frames[0].Seq < r.k {
				t.Fatalf("first frame %+v, want subscribed with seq ≥ %d", r.frames[0], r.k)
			}
			if got := events(r.frames); !slices.Equal(got, want[r.k:]) {
				t.Errorf("after reconnecting got\n%v\nwant\n%v", got, want[r.k:])
			}
		})
	}
}

// resume reads first until it has seen seq target or the turn_end, closes
// it, reconnects after the last seq k it saw and reads to the turn_end
// (or, when it had seen that, to the pong of a ping).
func resume(base string, first *conntest.Client, target uint64, byQuery bool) (k uint64, _ []protocol.ServerFrame, _ error) {
	seen, err := first.ReadUntilErr(func(f *protocol.ServerFrame) bool {
		return eventTypes[f.Type] && (f.Seq >= target || f.Type == protocol.EventTurnEnd)
	})
	_ = first.WS.CloseNow()
	if err != nil {
		return 0, nil, fmt.Errorf("before disconnecting: %w", err)
	}
	last := seen[len(seen)-1]
	k = last.Seq
	query := ""
	if byQuery {
		query = fmt.Sprintf("conversation=res&after=%d", k)
	}
	c, err := conntest.DialErr(base, conntest.WSPath(query), 0)
	if err != nil {
		return k, nil, err
	}
	defer c.WS.CloseNow()
	if !byQuery {
		if err := c.RequestErr(&protocol.Subscribe{Conversation: "res", After: k}); err != nil {
			return k, nil, err
		}
	}
	stop := untilTurnEnd
	if last.Type == protocol.EventTurnEnd {
		if err := c.RequestErr(&protocol.Ping{ID: "p"}); err != nil {
			return k, nil, err
		}
		stop = conntest.IsType(protocol.ReplyPong)
	}
	frames, err := c.ReadUntilErr(stop)
	return k, frames, err
}

// TestAckBeforeModel holds the model back until the client has its ack,
// the message event and turn_start: none of them waits for the model, and
// the ack comes first.
func TestAckBeforeModel(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	s := conntest.Start(t, conntest.Config{Model: gatedModel{gate}})
	c := s.Dial(t, "")
	c.Request(&protocol.Send{ID: "s1", Text: "hello"})
	frames := c.ReadUntil(func(f *protocol.ServerFrame) bool { return f.Type == protocol.EventTurnStart })
	close(gate)
	var types []string
	for _, f := range frames {
		types = append(types, f.Type)
	}
	want := []string{protocol.ReplyAck, protocol.EventMessage, protocol.EventTurnStart}
	if !reflect.DeepEqual(types, want) {
		t.Fatalf("frames before the model answered: %v, want %v", types, want)
	}
	ack, msg := frames[0], frames[1]
	if ack.ID != "s1" || ack.Conversation == "" || ack.StoredMessage().Seq != 1 || !reflect.DeepEqual(ack.StoredMessage(), msg.StoredMessage()) {
		t.Errorf("ack %+v does not match the message event %+v", ack, msg)
	}
	if rest := c.ReadUntil(untilTurnEnd); rest[0].Type != protocol.EventDelta || rest[0].Text != gatedReply {
		t.Errorf("after the gate: %+v, want the delta %q", rest[0], gatedReply)
	}
}

func TestIdempotentSend(t *testing.T) {
	t.Parallel()
	s := conntest.Start(t, conntest.Config{})
	c := s.Dial(t, "")
	createConversation(t, c, "idem")
	send := &protocol.Send{ID: "a", Conversation: "idem", Text: "once", ClientMsgID: "k1"}
	first := c.Call(send)
	c.ReadUntil(untilTurnEnd)
	send.ID = "b"
	second := c.Call(send)
	if first.Type != protocol.ReplyAck || second.Type != protocol.ReplyAck {
		t.Fatalf("replies %s, %s, want two acks", first.Type, second.Type)
	}
	if !reflect.DeepEqual(first.StoredMessage(), second.StoredMessage()) {
		t.Errorf("second ack %+v, first %+v", second.StoredMessage(), first.StoredMessage())
	}
	h := c.Call(&protocol.History{ID: "h", Conversation: "idem"})
	if len(h.Messages) != 2 || h.Messages[0].Text != "once" || h.Messages[1].Role != protocol.RoleAssistant {
		t.Errorf("history %+v, want the message once and one reply", h.Messages)
	}
}

func TestQueuedTurnsDoNotInterleave(t *testing.T) {
	t.Parallel()
	s := conntest.Start(t, conntest.Config{Model: scripted(words(15), time.Millisecond)})
	c := s.Dial(t, "")
	createConversation(t, c, "q")
	for i := range 3 {
		c.Request(&protocol.Send{Conversation: "q", Text: fmt.Sprintf("m%d", i)})
	}
	var frames []protocol.ServerFrame
	for range 3 {
		frames = append(frames, c.ReadUntil(untilTurnEnd)...)
	}
	checkTurnText(t, frames)
	var msgTurns, order []string
	running := ""
	for _, f := range frames {
		switch f.Type {
		case protocol.EventMessage:
			msgTurns = append(msgTurns, f.StoredMessage().Turn)
		case protocol.EventTurnStart:
			if running != "" {
				t.Fatalf("turn %s started while %s runs", f.Turn, running)
			}
			running = f.Turn
			order = append(order, f.Turn)
		case protocol.EventDelta, protocol.EventTurnEnd:
			if f.Turn != running {
				t.Fatalf("%s of turn %s while %s runs", f.Type, f.Turn, running)
			}
			if f.Type == protocol.EventTurnEnd {
				running = ""
			}
		}
	}
	if !reflect.DeepEqual(order, msgTurns) {
		t.Errorf("turns ran in order %v, messages were stored for %v", order, msgTurns)
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	s := conntest.Start(t, conntest.Config{Model: scripted(words(500), 5*time.Millisecond)})
	c := s.Dial(t, "")
	createConversation(t, c, "cx")
	c.Request(&protocol.Send{Conversation: "cx", Text: "talk"})
	frames := c.ReadUntil(func(f *protocol.ServerFrame) bool { return f.Type == protocol.EventDelta })
	c.Request(&protocol.Cancel{ID: "stop", Conversation: "cx"})
	frames = append(frames, c.ReadUntil(untilTurnEnd)...)
	end := frames[len(frames)-1]
	if end.StopReason != protocol.StopCancelled {
		t.Errorf("stop reason %q, want %q", end.StopReason, protocol.StopCancelled)
	}
	text := checkTurnText(t, frames)
	if text == "" || len(text) >= len(words(500)) {
		t.Errorf("cancelled turn kept %q, want a non-empty part of the reply", text)
	}
	var acked bool
	for _, f := range frames {
		acked = acked || f.Type == protocol.ReplyCancelled && f.ID == "stop" && f.Conversation == "cx"
	}
	if !acked {
		t.Error("no cancelled reply")
	}
}

// TestShutdown stops the gateway in the middle of a turn: the client sees
// the turn end "interrupted", then the close with 1001.
func TestShutdown(t *testing.T) {
	t.Parallel()
	s := conntest.Start(t, conntest.Config{Model: scripted(words(500), 5*time.Millisecond)})
	c := s.Dial(t, "")
	c.Request(&protocol.Send{Text: "talk"})
	frames := c.ReadUntil(conntest.IsType(protocol.EventDelta))
	// The client must keep reading while the server closes, to answer
	// the close handshake.
	closed := make(chan struct{})
	go func() {
		s.Close(t)
		close(closed)
	}()
	defer func() { <-closed }()
	for {
		f, err := c.ReadErr()
		if err != nil {
			if st := websocket.CloseStatus(err); st != websocket.StatusGoingAway {
				t.Fatalf("connection ended with %v, want close 1001", err)
			}
			break
		}
		frames = append(frames, f)
	}
	end := frames[len(frames)-1]
	if end.Type != protocol.EventTurnEnd || end.StopReason != protocol.StopInterrupted {
		t.Errorf("last frame %s %q, want turn_end interrupted", end.Type, end.StopReason)
	}
	checkTurnText(t, frames)
}
