package conn

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/chatgateway/gateway/internal/auth"
	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/convo/boltlog"
	"github.com/chatgateway/gateway/internal/convo/logtest"
	"github.com/chatgateway/gateway/internal/demo"
	"github.com/chatgateway/gateway/protocol"
)

// metaHookLog is a bbolt Log which runs hook once, right after the next
// Meta read made with a context that can end (a request's check of its
// conversation, not the Service's own reads).
type metaHookLog struct {
	convo.Log
	hook logtest.Hook
}

func (l *metaHookLog) Meta(ctx context.Context, id string) (*convo.Meta, error) {
	m, err := l.Log.Meta(ctx, id)
	if ctx.Done() != nil {
		l.hook.Run()
	}
	return m, err
}

// request writes req, whose id is id, on ws and returns its reply,
// skipping the frames before it.
func request(t *testing.T, ws *websocket.Conn, id, req string) string {
	t.Helper()
	if err := ws.Write(t.Context(), websocket.MessageText, []byte(req)); err != nil {
		t.Fatal(err)
	}
	for {
		_, b, err := ws.Read(t.Context())
		if err != nil {
			t.Fatalf("%s: %v", req, err)
		}
		if strings.Contains(string(b), `"id":"`+id+`"`) {
			return string(b)
		}
	}
}

// TestLateDeletedNotice lands the deleted notice of a conversation while
// the connection subscribes to the conversation made again under its id
// (convo's Delete tells the old conversation's subscribers after it let
// go of it, when a subscribe may already have found the new one): the
// connection must keep the new subscription, which counts toward
// MaxSubscriptions and which closing the connection ends.
func TestLateDeletedNotice(t *testing.T) {
	ctx := context.Background()
	l, err := boltlog.Open(filepath.Join(t.TempDir(), "gateway.db"), boltlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	hooked := &metaHookLog{Log: l}
	log := slog.New(slog.DiscardHandler)
	svc, err := convo.New(hooked, demo.New(demo.Options{WordDelay: -1}), convo.Config{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close(ctx)
	h := NewHandler(svc, Options{MaxSubscriptions: 1, Logger: log})
	srv := httptest.NewServer(h)
	defer srv.Close()
	ws, _, err := websocket.Dial(t.Context(), strings.Replace(srv.URL, "http", "ws", 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	c := registered(t, h, ws)

	const id = "again"
	for _, conv := range []string{id, "other"} {
		if _, err := svc.Create(ctx, auth.LocalUser, &protocol.Create{Conversation: conv}); err != nil {
			t.Fatal(err)
		}
	}
	request(t, ws, "s1", `{"type":"subscribe","id":"s1","conversation":"`+id+`"}`)
	if err := svc.Delete(ctx, auth.LocalUser, id); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Create(ctx, auth.LocalUser, &protocol.Create{Conversation: id}); err != nil {
		t.Fatal(err)
	}
	// The old conversation's notice, as convo's Delete gives it, comes
	// once the subscribe has found the new conversation's hub.
	hooked.hook.Set(func() { c.Gone(id) })
	if got := request(t, ws, "s2", `{"type":"subscribe","id":"s2","conversation":"`+id+`"}`); !strings.Contains(got, protocol.ReplySubscribed) {
		t.Fatalf("subscribe to the conversation made again: %s", got)
	}
	ping(t, ws)
	if !svc.Subscribed(id, c) {
		t.Fatal("the new subscription is gone from convo")
	}
	if got := request(t, ws, "s3", `{"type":"subscribe","id":"s3","conversation":"other"}`); !strings.Contains(got, protocol.CodeBusy) {
		t.Errorf("a second subscription beyond MaxSubscriptions 1: %s, want busy", got)
	}
	if err := ws.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	if err := h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if svc.Subscribed(id, c) {
		t.Error("the closed connection is still subscribed to the conversation")
	}
}
