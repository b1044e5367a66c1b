package conn_test

import (
	"testing"

	"github.com/chatgateway/gateway/internal/auth"
	"github.com/chatgateway/gateway/internal/conn/conntest"
	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

// TestRefusedResubscribeKeepsTheSubscription subscribes again to a
// conversation the connection follows, with an after beyond its end: the
// request gets its bad_request, and the subscription it had stays, so the
// conversation's next event still arrives.
func TestRefusedResubscribeKeepsTheSubscription(t *testing.T) {
	t.Parallel()
	s := conntest.Start(t, conntest.Config{})
	c := s.Dial(t, "")
	createConversation(t, c, "kept")
	createConversation(t, c, "marker")
	subscribe(t, c, "kept", 0)
	subscribe(t, c, "marker", 0)
	if f := c.Call(&protocol.Subscribe{ID: "far", Conversation: "kept", After: 99}); f.Type != protocol.ReplyError || f.Code != protocol.CodeBadRequest {
		t.Fatalf("subscribe after 99 got %s %q, want error bad_request", f.Type, f.Code)
	}
	// Commits reach the hubs in commit order, so the connection gets
	// kept's action before marker's, if it still follows kept.
	ctx := conntest.Deadline(t)
	for _, id := range []string{"kept", "marker"} {
		if _, err := s.Svc.PublishAction(ctx, auth.LocalUser, id, convo.Action{Name: "note"}); err != nil {
			t.Fatal(err)
		}
	}
	frames := c.ReadUntil(func(f *protocol.ServerFrame) bool { return f.Conversation == "marker" })
	if first := frames[0]; first.Type != protocol.EventAction || first.Conversation != "kept" || first.Seq != 1 {
		t.Errorf("after the refused subscribe the connection got %s of %q (seq %d) first, want kept's action, seq 1", first.Type, first.Conversation, first.Seq)
	}
}
