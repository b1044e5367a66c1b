package jetlog_test

import (
	"context"
	"testing"

	"github.com/chatgateway/gateway/internal/jetlog/natstest"
	"github.com/chatgateway/gateway/protocol"
)

// TestClientMsgIDAfterDelete sends a message with a client_msg_id,
// deletes the conversation and creates it again under its id: a send with
// the same client_msg_id to the new conversation is a new message.
func TestClientMsgIDAfterDelete(t *testing.T) {
	ctx := context.Background()
	srv := natstest.Start(t)
	a := startNode(t, "a", srv.URL(), &words{n: 1}, 0)
	const id = "named"
	for round := range 2 {
		if _, err := a.svc.Create(ctx, user, &protocol.Create{Conversation: id}); err != nil {
			t.Fatal(err)
		}
		sub := newSubscriber()
		ack, err := a.svc.Send(ctx, user, &protocol.Send{Conversation: id, Text: "hello", ClientMsgID: "k1"}, sub)
		if err != nil {
			t.Fatalf("round %d: send: %v", round, err)
		}
		if ack.Message.Seq != 1 {
			t.Fatalf("round %d: acked seq %d, want a new message at 1", round, ack.Message.Seq)
		}
		sub.waitFor(t, "the turn", turnEnds(1))
		if err := a.svc.Delete(ctx, user, id); err != nil {
			t.Fatal(err)
		}
	}
}
