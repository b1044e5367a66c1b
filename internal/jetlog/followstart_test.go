package jetlog_test

import (
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/chatgateway/gateway/internal/jetlog"
	"github.com/chatgateway/gateway/internal/jetlog/natstest"
)

// TestFollowStartAsksNoStreamInfo follows conversations with no events
// yet on gateway b while gateway a runs their turns: b's clients see
// every event, and b's follows asked the stream's leader for no stream
// info (one request each, before: the stream's end, to start from). The
// server hands the test a copy of each JetStream API request; a message
// b sends after its follows comes after their requests.
func TestFollowStartAsksNoStreamInfo(t *testing.T) {
	a, b, srv := startPair(t)
	infos := watchStreamInfos(t, srv)
	const convs = 3
	for range convs {
		id := create(t, a)
		onB := subscribe(t, b, id, 0)
		send(t, a, id, "hello", nil)
		checkLog(t, onB.waitFor(t, "the turn on b", turnEnds(1)))
	}
	if n := infos.count(t, b.store); n > 0 {
		t.Fatalf("%d follows asked for the stream's info %d times", convs, n)
	}
}

// streamInfos watches the requests for the events stream's info.
type streamInfos struct {
	seen <-chan *nats.Msg
	done string
}

// watchStreamInfos starts watching the requests for the info of srv's
// events stream.
func watchStreamInfos(t *testing.T, srv *natstest.Server) *streamInfos {
	t.Helper()
	done := nats.NewInbox()
	return &streamInfos{seen: watch(t, srv, "$JS.API.STREAM.INFO."+jetlog.DefaultStream, done), done: done}
}

// count returns how many requests for the stream's info came before it
// was called, from s or any other: a message s sends comes after the
// requests it sent before.
func (w *streamInfos) count(t *testing.T, s *jetlog.Store) int {
	t.Helper()
	if err := s.Conn().Publish(w.done, nil); err != nil {
		t.Fatal(err)
	}
	infos := 0
	for msg := range w.seen {
		if msg.Subject == w.done {
			return infos
		}
		if !strings.HasPrefix(msg.Subject, "$JS.API.STREAM.INFO.") {
			t.Fatalf("unexpected message on %s", msg.Subject)
		}
		infos++
	}
	return infos
}
