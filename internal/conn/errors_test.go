package conn_test

import (
	"bytes"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/chatgateway/gateway/internal/conn"
	"github.com/chatgateway/gateway/internal/conn/conntest"
	"github.com/chatgateway/gateway/internal/metrics"
	"github.com/chatgateway/gateway/protocol"
)

func TestBadFrames(t *testing.T) {
	t.Parallel()
	s := conntest.Start(t, conntest.Config{})
	tests := []struct {
		name        string
		frame       string
		code        string
		id          string
		messageHas  string
		conversaton string
	}{
		{name: "invalid JSON", frame: `{"type":"ping",`, code: protocol.CodeBadRequest, messageHas: "invalid JSON"},
		{name: "not an object", frame: `[1,2]`, code: protocol.CodeBadRequest, messageHas: "JSON object"},
		{name: "unknown type", frame: `{"type":"dance","id":"u1"}`, code: protocol.CodeUnknownType, id: "u1", messageHas: "dance"},
		{name: "missing type", frame: `{"id":"u2"}`, code: protocol.CodeBadRequest, id: "u2", messageHas: "type"},
		{name: "missing text", frame: `{"type":"send","id":"m1"}`, code: protocol.CodeBadRequest, id: "m1", messageHas: "text"},
		{name: "wrong type of field", frame: `{"type":"subscribe","id":"w1","conversation":"x","after":"soon"}`, code: protocol.CodeBadRequest, id: "w1", messageHas: "after"},
		{name: "unknown conversation", frame: `{"type":"subscribe","id":"n1","conversation":"nope"}`, code: protocol.CodeNotFound, id: "n1", conversaton: "nope"},
		{name: "send to unknown conversation", frame: `{"type":"send","id":"n2","conversation":"nope","text":"hi"}`, code: protocol.CodeNotFound, id: "n2", conversaton: "nope"},
		{name: "history of unknown conversation", frame: `{"type":"history","id":"n3","conversation":"nope"}`, code: protocol.CodeNotFound, id: "n3", conversaton: "nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := s.Dial(t, "")
			c.Write(websocket.MessageText, []byte(tt.frame))
			f := c.Read()
			if f.Type != protocol.ReplyError || f.Code != tt.code || f.ID != tt.id || f.Conversation != tt.conversaton {
				t.Errorf("got %s code=%q id=%q conversation=%q, want error %q id=%q conversation=%q",
					f.Type, f.Code, f.ID, f.Conversation, tt.code, tt.id, tt.conversaton)
			}
			if !strings.Contains(f.ErrorMessage(), tt.messageHas) {
				t.Errorf("message %q does not mention %q", f.ErrorMessage(), tt.messageHas)
			}
			if p := c.Call(&protocol.Ping{ID: "p"}); p.Type != protocol.ReplyPong {
				t.Errorf("ping after the error got %s", p.Type)
			}
		})
	}
}

func TestBadQuerySubscribe(t *testing.T) {
	t.Parallel()
	s := conntest.Start(t, conntest.Config{})
	tests := []struct{ name, query, code string }{
		{"bad after", "conversation=x&after=-1", protocol.CodeBadRequest},
		{"bad id", "conversation=a%20b", protocol.CodeBadRequest},
		{"unknown conversation", "conversation=nope", protocol.CodeNotFound},
		{"after without conversation", "after=3", protocol.CodeBadRequest},
		{"created_at without conversation", "created_at=2026-11-26T09:30:00Z", protocol.CodeBadRequest},
		{"empty conversation", "conversation=&after=3", protocol.CodeBadRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := s.Dial(t, tt.query)
			// The query is answered before any frame: a pong first means
			// the query was ignored.
			c.Request(&protocol.Ping{ID: "p"})
			if f := c.Read(); f.Type != protocol.ReplyError || f.Code != tt.code {
				t.Fatalf("got %s %q, want error %q", f.Type, f.Code, tt.code)
			}
			if p := c.Read(); p.Type != protocol.ReplyPong {
				t.Errorf("ping after the error got %s", p.Type)
			}
		})
	}
}

// closeStatus reads c until the server closes it and returns the close
// error.
func closeStatus(t *testing.T, c *conntest.Client) websocket.CloseError {
	t.Helper()
	for {
		_, err := c.ReadErr()
		if err == nil {
			continue
		}
		var ce websocket.CloseError
		if !errors.As(err, &ce) {
			t.Fatalf("connection ended with %v, want a close frame", err)
		}
		return ce
	}
}

func TestProtocolViolationsClose(t *testing.T) {
	t.Parallel()
	s := conntest.Start(t, conntest.Config{Conn: conn.Options{MaxFrameBytes: 1024}})
	tests := []struct {
		name  string
		typ   websocket.MessageType
		frame []byte
		error string // the code of the error frame before the close, if any
		close websocket.StatusCode
	}{
		{"binary frame", websocket.MessageBinary, []byte(`{"type":"ping"}`), protocol.CodeBadRequest, websocket.StatusUnsupportedData},
		{"frame over the limit", websocket.MessageText, bytes.Repeat([]byte("x"), 1025), "", websocket.StatusMessageTooBig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := s.Dial(t, "")
			c.Write(tt.typ, tt.frame)
			if tt.error != "" {
				if f := c.Read(); f.Type != protocol.ReplyError || f.Code != tt.error {
					t.Errorf("got %s %q, want error %q", f.Type, f.Code, tt.error)
				}
			}
			if ce := closeStatus(t, c); ce.Code != tt.close {
				t.Errorf("closed with %v, want %v", ce, tt.close)
			}
		})
	}
}

// TestSlowConsumer streams a long reply to three clients, one of which
// does not read: it is closed with 1008 "slow consumer", the others get
// the whole stream, and it resumes by seq with nothing lost.
//
// It does not run in parallel with other tests, so that the fast clients
// keep up: the queue bound is for clients that stop reading, not for
// readers starved of CPU.
func TestSlowConsumer(t *testing.T) {
	const buf = 4 << 10
	// Long words: 100 KB, far more than the socket buffers and the
	// queue's 32 KiB hold, however the deltas coalesce. A word every 5 ms
	// lets a fast client fall 80 words (400 ms) behind before the bound
	// closes it; 2,500 words of 40 bytes, a pause each, spent 10 s of a
	// loaded machine in sleeps.
	reply := strings.Repeat(strings.Repeat("abcdefghij", 40)+" ", 250)
	m := metrics.New()
	s := conntest.Start(t, conntest.Config{
		Model:      scripted(reply, 5*time.Millisecond),
		Conn:       conn.Options{SendQueue: 128, SendQueueBytes: 32 << 10, WriteTimeout: time.Minute, Metrics: m},
		SendBuffer: buf,
	})
	fast := []*conntest.Client{s.Dial(t, ""), s.Dial(t, "")}
	createConversation(t, fast[0], "slow")
	subscribe(t, fast[1], "slow", 0)
	slow := conntest.DialWith(t, s.URL, conntest.WSPath("conversation=slow"), buf)
	if f := slow.Read(); f.Type != protocol.ReplySubscribed {
		t.Fatalf("got %s, want subscribed", f.Type)
	}

	fast[0].Request(&protocol.Send{Conversation: "slow", Text: "go"})
	// The fast clients read at once, each on its own goroutine.
	results := make([]chan []protocol.ServerFrame, len(fast))
	for i, c := range fast {
		results[i] = make(chan []protocol.ServerFrame, 1)
		go func() {
			frames, err := c.ReadUntilErr(untilTurnEnd)
			if err != nil {
				t.Errorf("fast client %d: %v", i, err)
			}
			results[i] <- frames
		}()
	}
	var want []event
	for i := range fast {
		frames := <-results[i]
		if text := checkTurnText(t, frames); text != reply {
			t.Errorf("client %d got a reply of %d bytes, want %d", i, len(text), len(reply))
		}
		want = events(frames)
		checkGapless(t, want, 0)
	}
	if t.Failed() {
		t.FailNow()
	}

	var got []protocol.ServerFrame
	for {
		f, err := slow.ReadErr()
		if err != nil {
			ce := websocket.CloseError{}
			if !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation || ce.Reason != "slow consumer" {
				t.Fatalf("slow client ended with %v, want close 1008 slow consumer", err)
			}
			break
		}
		got = append(got, f)
	}
	seen := events(got)
	checkGapless(t, seen, 0)
	if len(seen) >= len(want) {
		t.Fatalf("the slow client saw all %d events before it was closed", len(seen))
	}
	if got, err := m.Gather(); err != nil || got["gateway_slow_consumer_closes_total"] != 1 {
		t.Errorf("slow consumer closes counted: %v (%v), want 1", got["gateway_slow_consumer_closes_total"], err)
	}

	k := uint64(len(seen))
	t.Logf("the slow client saw %d of %d events", k, len(want))
	again := s.Dial(t, "conversation=slow&after="+strconv.FormatUint(k, 10))
	rest := events(again.ReadUntil(untilTurnEnd))
	if !slices.Equal(append(seen, rest...), want) {
		t.Errorf("after resuming at %d the slow client has %d events, want %d", k, len(seen)+len(rest), len(want))
	}
}
