package jetlog_test

import (
	"strings"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/chatgateway/gateway/internal/jetlog"
)

// TestFollowStartAsksNoStreamInfo follows conversations with no events
// yet on gateway b while gateway a runs their turns: b's clients see
// every event, and b's follows asked the stream's leader for no stream
// info (one request each, before: the stream's end, to start from). The
// server hands the test a copy of each JetStream API request; a message
// b sends after its follows comes after their requests.
func TestFollowStartAsksNoStreamInfo(t *testing.T) {
	a, b, srv := startPair(t)
	done := nats.NewInbox()
	seen := watch(t, srv, "$JS.API.STREAM.INFO."+jetlog.DefaultStream, done)
	const convs = 3
	for range convs {
		id := create(t, a)
		onB := subscribe(t, b, id, 0)
		send(t, a, id, "hello", nil)
		checkLog(t, onB.waitFor(t, "the turn on b", turnEnds(1)))
	}
	if err := b.store.Conn().Publish(done, nil); err != nil {
		t.Fatal(err)
	}
	infos := 0
	for msg := range seen {
		if msg.Subject == done {
			break
		}
		if !strings.HasPrefix(msg.Subject, "$JS.API.STREAM.INFO.") {
			t.Fatalf("unexpected message on %s", msg.Subject)
		}
		infos++
	}
	if infos > 0 {
		t.Fatalf("%d follows asked for the stream's info %d times", convs, infos)
	}
}
