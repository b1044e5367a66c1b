package jetlog_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/chatgateway/gateway/internal/auth"
	"github.com/chatgateway/gateway/internal/conn/conntest"
	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/jetlog"
	"github.com/chatgateway/gateway/internal/jetlog/natstest"
	"github.com/chatgateway/gateway/protocol"
)

// TestSendAfterRecreateElsewhere: a WebSocket client on gateway a follows
// a conversation that gateway b deletes and creates again under its id,
// and a misses the delete notice. Another client then sends to the id
// on a. The sender must get its message and the reply of the
// conversation it sent to (seqs 1…, gapless), not land on a's hub of the
// deleted conversation, whose last seq hides the new log's first events
// (and which a later subscribe drops, telling the sender it is gone),
// and get its ack first, though a's follower may read the send's record
// before the append is acknowledged; the old subscriber is told its
// conversation is gone.
func TestSendAfterRecreateElsewhere(t *testing.T) {
	srv := natstest.Start(t)
	a := serve(t, "a", srv.URL())
	b := startNode(t, "b", srv.URL(), &words{n: 1}, 0)
	ctx := context.Background()
	const id = "reused"
	createAs(t, b, auth.LocalUser, id, 3)
	old := conntest.Dial(t, a.URL, "/v1/ws")
	old.Call(&protocol.Subscribe{ID: "s", Conversation: id})
	old.ReadUntil(func(f *protocol.ServerFrame) bool { return f.Seq == 3 })

	// b's delete without its notice: a's hub still serves the old log.
	if _, err := b.store.Delete(ctx, id, auth.LocalUser); err != nil {
		t.Fatal(err)
	}
	createAs(t, b, auth.LocalUser, id, 0)

	sender := conntest.Dial(t, a.URL, "/v1/ws")
	sender.Request(&protocol.Send{ID: "m", Conversation: id, Text: "hello"})
	if acked := sender.ReadUntil(func(f *protocol.ServerFrame) bool { return f.ID == "m" }); len(acked) != 1 || acked[0].Type != protocol.ReplyAck {
		t.Fatalf("send on a: the sender got %s, want its ack first", frameList(acked))
	}
	// A subscribe on a drops a hub that serves the deleted conversation
	// (telling its subscribers), if the send left one.
	conntest.Dial(t, a.URL, "/v1/ws").Call(&protocol.Subscribe{ID: "s", Conversation: id})
	got := sender.ReadUntil(func(f *protocol.ServerFrame) bool {
		return f.Type == protocol.EventTurnEnd || f.Type == protocol.ReplyDeleted
	})
	for i, f := range got {
		if f.Type == protocol.ReplyDeleted || f.Seq != uint64(i+1) {
			t.Fatalf("the sender got %s, want the new log's events from seq 1", frameList(got))
		}
	}
	old.ReadUntil(conntest.IsType(protocol.ReplyDeleted))
}

// servedNode is a gateway of a test cluster that serves its HTTP API and
// WebSockets on loopback.
type servedNode struct {
	*node
	*conntest.Server
}

// serve runs a gateway named name on the NATS servers at urls, serving
// its HTTP API and WebSockets on loopback; its model answers with one
// word. natsOpts add to its NATS connection's options.
func serve(t *testing.T, name, urls string, natsOpts ...nats.Option) servedNode {
	t.Helper()
	st, err := jetlog.OpenStore(context.Background(), urls, jetlog.StoreOptions{Node: name, Logger: testLogger(t),
		Options: jetlog.Options{Timeout: time.Second}}, natsOpts...)
	if err != nil {
		t.Fatal(err)
	}
	s := conntest.Start(t, conntest.Config{Log: st, Model: &words{n: 1}, Convo: convo.Config{DefaultModel: "test"}})
	return servedNode{node: &node{name: name, store: st, svc: s.Svc}, Server: s}
}

// createAs creates conversation id on n as user, with n action events.
func createAs(t *testing.T, n *node, user, id string, actions int) {
	t.Helper()
	ctx := context.Background()
	if _, err := n.svc.Create(ctx, user, &protocol.Create{Conversation: id}); err != nil {
		t.Fatal(err)
	}
	for range actions {
		if _, err := n.svc.PublishAction(ctx, user, id, convo.Action{Name: "step"}); err != nil {
			t.Fatal(err)
		}
	}
}

// frameList describes frames by seq and type.
func frameList(frames []protocol.ServerFrame) string {
	var b strings.Builder
	for _, f := range frames {
		fmt.Fprintf(&b, "%d:%s ", f.Seq, f.Type)
	}
	return b.String()
}
