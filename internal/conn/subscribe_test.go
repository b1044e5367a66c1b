package conn_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatgateway/gateway/internal/auth"
	"github.com/chatgateway/gateway/internal/conn"
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

// TestDeleteDuringReplay deletes a conversation while a subscribe to it
// replays its log to a client that has stopped reading: once the client
// reads again, the replay ends and the connection is told the
// conversation is gone, as every follower of a deleted conversation is,
// and the subscribe gets no error after its subscribed reply. The delete
// comes while the replay holds the log's one page, or the first of two.
func TestDeleteDuringReplay(t *testing.T) {
	t.Parallel()
	// The replay's frames are so large that a few fill the queue (a
	// replay fills half of it) and the socket buffers: the replay waits
	// for the client after them, with a page of 16 read from the log.
	const size = 128 << 10
	s := conntest.Start(t, conntest.Config{SendBuffer: 64 << 10, Conn: conn.Options{SendQueueBytes: 512 << 10}})
	big := []byte(`"` + strings.Repeat("x", size) + `"`)
	for _, events := range []int{12, 20} {
		t.Run(fmt.Sprintf("%d events", events), func(t *testing.T) {
			t.Parallel()
			id := fmt.Sprintf("doomed-%d", events)
			c := conntest.DialWith(t, s.URL, conntest.WSPath(""), 64<<10)
			createConversation(t, c, id)
			ctx := conntest.Deadline(t)
			for range events {
				if _, err := s.Svc.PublishAction(ctx, auth.LocalUser, id, convo.Action{Name: "big", Output: big}); err != nil {
					t.Fatal(err)
				}
			}
			c.Request(&protocol.Subscribe{ID: "sub", Conversation: id})
			c.ReadUntil(conntest.IsType(protocol.EventAction))
			if err := s.Svc.Delete(ctx, auth.LocalUser, id); err != nil {
				t.Fatal(err)
			}
			// The ping is served once the subscribe is over.
			c.Request(&protocol.Ping{ID: "p"})
			told := false
			for _, f := range c.ReadUntil(conntest.IsType(protocol.ReplyPong)) {
				told = told || f.Type == protocol.ReplyDeleted && f.Conversation == id && f.ID == ""
				if f.Type == protocol.ReplyError {
					t.Errorf("the subscribe got error %s %q after its subscribed reply", f.Code, f.ErrorMessage())
				}
			}
			if !told {
				t.Error("after the replay the connection got no deleted frame")
			}
		})
	}
}

// TestKeepaliveDuringASlowReplay replays a long log to a client that reads
// an event every 25 ms, over many ping intervals and longer than the
// write timeout: while the connection's reader serves the subscribe it
// reads no pong, but the client answers every ping and takes each frame
// well within the write timeout (80 times its pause), so it stays
// connected to the end.
func TestKeepaliveDuringASlowReplay(t *testing.T) {
	t.Parallel()
	// Events far larger than the socket buffers and half the queue, so
	// that the replay waits for the client after the first few.
	const events, size, pause = 120, 64 << 10, 25 * time.Millisecond
	s := conntest.Start(t, conntest.Config{SendBuffer: 64 << 10,
		Conn: conn.Options{SendQueueBytes: 256 << 10, PingInterval: pause, WriteTimeout: 80 * pause}})
	ctx := conntest.Deadline(t)
	if _, err := s.Svc.Create(ctx, auth.LocalUser, &protocol.Create{Conversation: "long"}); err != nil {
		t.Fatal(err)
	}
	big := []byte(`"` + strings.Repeat("x", size) + `"`)
	// Stored at once, so that they share a few commits: one commit each
	// took most of the step's deadline on a busy machine.
	var stored sync.WaitGroup
	for range events {
		stored.Go(func() {
			if _, err := s.Svc.PublishAction(ctx, auth.LocalUser, "long", convo.Action{Name: "big", Output: big}); err != nil {
				t.Error(err)
			}
		})
	}
	stored.Wait()
	if t.Failed() {
		return
	}
	// The client answers pings only while it reads: it connects now.
	c := conntest.DialWith(t, s.URL, conntest.WSPath(""), 64<<10)
	c.Request(&protocol.Subscribe{ID: "sub", Conversation: "long"})
	for i := range events + 1 { // subscribed, then the events
		time.Sleep(pause) // a slow client, not a synchronisation
		if _, _, err := c.WS.Read(ctx); err != nil {
			t.Fatalf("frame %d of the replay: %v", i, err)
		}
	}
}

// TestSubscribeCreatedAt checks created_at over a real WebSocket: the
// subscribed reply carries the conversation's created_at, written exactly
// as the conversation object has it, and a subscribe (a frame, or the
// upgrade's query) that names the created_at of a conversation deleted
// since is refused with not_found, also when another conversation has its
// id now and more events than the client saw.
func TestSubscribeCreatedAt(t *testing.T) {
	t.Parallel()
	s := conntest.Start(t, conntest.Config{})
	ctx := conntest.Deadline(t)
	const id = "epoch"
	c := s.Dial(t, "")
	createConversation(t, c, id)
	if _, err := s.Svc.PublishAction(ctx, auth.LocalUser, id, convo.Action{Name: "note"}); err != nil {
		t.Fatal(err)
	}
	c.Request(&protocol.Subscribe{ID: "raw", Conversation: id})
	_, data, err := c.WS.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var reply struct {
		Type      string `json:"type"`
		CreatedAt string `json:"created_at"`
	}
	if err := json.Unmarshal(data, &reply); err != nil || reply.Type != protocol.ReplySubscribed {
		t.Fatalf("subscribe got %s (%v)", data, err)
	}
	if listed := createdAt(t, s, id); reply.CreatedAt == "" || reply.CreatedAt != listed {
		t.Fatalf("subscribed created_at %q, the conversation object's %q", reply.CreatedAt, listed)
	}
	old := reply.CreatedAt
	c.ReadUntil(conntest.IsType(protocol.EventAction))

	if err := s.Svc.Delete(ctx, auth.LocalUser, id); err != nil {
		t.Fatal(err)
	}
	createConversation(t, c, id)
	for range 3 {
		if _, err := s.Svc.PublishAction(ctx, auth.LocalUser, id, convo.Action{Name: "note"}); err != nil {
			t.Fatal(err)
		}
	}
	oldAt, err := protocol.ParseTimestamp(old)
	if err != nil {
		t.Fatal(err)
	}
	f := c.Call(&protocol.Subscribe{ID: "stale", Conversation: id, After: 1, CreatedAt: oldAt})
	if f.Type != protocol.ReplyError || f.Code != protocol.CodeNotFound || f.Conversation != id {
		t.Fatalf("subscribe with the old created_at: %s %q of %q, want error not_found", f.Type, f.Code, f.Conversation)
	}

	tests := []struct {
		name, createdAt string
		code            string // "": subscribed
	}{
		{"old created_at", old, protocol.CodeNotFound},
		{"not a time", "yesterday", protocol.CodeBadRequest},
		{"new created_at", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := url.Values{"conversation": {id}, "after": {"1"}, "created_at": {tt.createdAt}}
			if tt.createdAt == "" {
				q.Set("created_at", createdAt(t, s, id))
			}
			f := s.Dial(t, q.Encode()).Read()
			switch {
			case tt.code == "" && (f.Type != protocol.ReplySubscribed || f.Seq != 3):
				t.Fatalf("got %s %q (seq %d), want subscribed at seq 3", f.Type, f.Code, f.Seq)
			case tt.code != "" && (f.Type != protocol.ReplyError || f.Code != tt.code):
				t.Fatalf("got %s %q, want error %s", f.Type, f.Code, tt.code)
			}
		})
	}
}

// createdAt returns conversation id's created_at as its object over HTTP
// has it.
func createdAt(t *testing.T, s *conntest.Server, id string) string {
	t.Helper()
	var info struct {
		CreatedAt string `json:"created_at"`
	}
	status, body := conntest.Do(t, http.MethodGet, s.URL+"/v1/conversations/"+id, "")
	if err := json.Unmarshal(body, &info); err != nil || status != http.StatusOK {
		t.Fatalf("GET the conversation: %d %s", status, body)
	}
	return info.CreatedAt
}
