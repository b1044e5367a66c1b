package conn_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chatgateway/gateway/internal/auth"
	"github.com/chatgateway/gateway/internal/conn"
	"github.com/chatgateway/gateway/internal/conn/conntest"
	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/limits"
	"github.com/chatgateway/gateway/internal/metrics"
	"github.com/chatgateway/gateway/protocol"
)

// queryUser names the caller by the "user" query parameter.
func queryUser(r *http.Request) (auth.Caller, error) {
	if u := r.URL.Query().Get("user"); u != "" {
		return auth.Caller{User: u}, nil
	}
	return auth.Caller{}, protocol.Errorf(protocol.CodeUnauthorized, "no user")
}

func TestUpgradeAuthAndOrigin(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	s := conntest.Start(t, conntest.Config{Conn: conn.Options{
		User: conntest.JWTUser(t), OriginPatterns: []string{"app.example.com"}, Metrics: m}})
	host := strings.TrimPrefix(s.URL, "http://")
	good := conntest.Token(t, "alice")
	withOrigin := func(origin string) http.Header {
		h := conntest.Bearer(t, "alice")
		h.Set("Origin", origin)
		return h
	}
	tests := []struct {
		name   string
		query  string
		header http.Header
		status int
		reason string // a part of the error message, for 401
	}{
		{name: "no token", status: 401, reason: "missing bearer token"},
		{name: "malformed token", header: http.Header{"Authorization": {"Bearer nope"}}, status: 401, reason: "malformed"},
		{name: "not bearer", header: http.Header{"Authorization": {"Basic YTpi"}}, status: 401, reason: "Bearer"},
		{name: "bad token in query", query: "token=" + good[:len(good)-4] + "AAAA", status: 401, reason: "signature"},
		{name: "token in header", header: conntest.Bearer(t, "alice"), status: 101},
		{name: "token in query", query: "token=" + url.QueryEscape(good), status: 101},
		{name: "no origin", header: conntest.Bearer(t, "alice"), status: 101},
		{name: "same-host origin", header: withOrigin("http://" + host), status: 101},
		{name: "listed origin", header: withOrigin("https://app.example.com"), status: 101},
		{name: "foreign origin", header: withOrigin("https://evil.example.net"), status: 403},
		{name: "foreign origin on the same port", header: withOrigin("http://evil.example.net:" + host[strings.LastIndex(host, ":")+1:]), status: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := conntest.Upgrade(t, s.URL, tt.query, tt.header)
			if a.Status != tt.status {
				t.Fatalf("upgrade answered %d (%v), want %d", a.Status, a.Error, tt.status)
			}
			switch a.Status {
			case 101:
				if f := a.Client.Call(&protocol.Ping{ID: "p"}); f.Type != protocol.ReplyPong {
					t.Errorf("ping got %s", f.Type)
				}
			case 401:
				if a.Error == nil || a.Error.Code != protocol.CodeUnauthorized || !strings.Contains(a.Error.Message, tt.reason) {
					t.Errorf("body %+v, want unauthorized mentioning %q", a.Error, tt.reason)
				}
				if got := a.Header.Get("WWW-Authenticate"); got != "Bearer" {
					t.Errorf("WWW-Authenticate %q, want Bearer", got)
				}
			}
		})
	}
}

// TestOwnershipOverWebSocket checks that one user cannot reach another's
// conversation by any request, and cannot learn that it exists.
func TestOwnershipOverWebSocket(t *testing.T) {
	t.Parallel()
	s := conntest.Start(t, conntest.Config{Conn: conn.Options{User: conntest.JWTUser(t)}})
	bobToken := "token=" + conntest.Token(t, "bob")
	alice, bob := s.Dial(t, "token="+conntest.Token(t, "alice")), s.Dial(t, bobToken)
	createConversation(t, alice, "mine")
	alice.Request(&protocol.Send{Conversation: "mine", Text: "secret"})
	alice.ReadUntil(untilTurnEnd)

	tests := []struct {
		name string
		req  protocol.Request
	}{
		{"subscribe", &protocol.Subscribe{ID: "x", Conversation: "mine"}},
		{"history", &protocol.History{ID: "x", Conversation: "mine"}},
		{"send", &protocol.Send{ID: "x", Conversation: "mine", Text: "let me in"}},
		{"cancel", &protocol.Cancel{ID: "x", Conversation: "mine"}},
		{"delete", &protocol.Delete{ID: "x", Conversation: "mine"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := bob.Call(tt.req)
			if f.Type != protocol.ReplyError || f.Code != protocol.CodeNotFound || f.Conversation != "mine" {
				t.Errorf("bob's %s got %s %q, want not_found", tt.name, f.Type, f.Code)
			}
		})
	}
	t.Run("subscribe by query", func(t *testing.T) {
		c := s.Dial(t, bobToken+"&conversation=mine")
		if f := c.Read(); f.Code != protocol.CodeNotFound {
			t.Errorf("got %s %q, want not_found", f.Type, f.Code)
		}
	})
	t.Run("create with the same id", func(t *testing.T) {
		// The id is taken, but bob learns no more than that.
		if f := bob.Call(&protocol.Create{ID: "c", Conversation: "mine"}); f.Type != protocol.ReplyError {
			t.Errorf("bob created alice's conversation: %+v", f)
		}
	})
	if l := bob.Call(&protocol.List{ID: "l"}); len(l.Conversations) != 0 {
		t.Errorf("bob lists %+v, want nothing", l.Conversations)
	}
	if l := alice.Call(&protocol.List{ID: "l"}); len(l.Conversations) != 1 || l.Conversations[0].ID != "mine" {
		t.Errorf("alice lists %+v, want her conversation", l.Conversations)
	}
	if h := alice.Call(&protocol.History{ID: "h", Conversation: "mine"}); len(h.Messages) != 2 || h.Messages[0].Text != "secret" {
		t.Errorf("alice's history after bob's attempts: %+v", h.Messages)
	}
}

func TestMaxSubscriptions(t *testing.T) {
	t.Parallel()
	s := conntest.Start(t, conntest.Config{Conn: conn.Options{MaxSubscriptions: 2}})
	c := s.Dial(t, "")
	for _, id := range []string{"s1", "s2", "s3"} {
		createConversation(t, c, id)
	}
	subscribe(t, c, "s1", 0)
	subscribe(t, c, "s2", 0)
	busy := func(what string, f protocol.ServerFrame) {
		t.Helper()
		if f.Type != protocol.ReplyError || f.Code != protocol.CodeBusy || f.ErrorMessage() != "too many subscriptions on this connection" {
			t.Errorf("%s got %s %q %q, want busy", what, f.Type, f.Code, f.ErrorMessage())
		}
	}
	busy("a third subscribe", c.Call(&protocol.Subscribe{ID: "x", Conversation: "s3"}))
	busy("a send to a new conversation", c.Call(&protocol.Send{ID: "y", Text: "hi"}))
	busy("a send to a conversation not followed", c.Call(&protocol.Send{ID: "z", Conversation: "s3", Text: "hi"}))
	// What the connection already follows still works.
	subscribe(t, c, "s1", 0)
	if f := c.Call(&protocol.Send{ID: "s", Conversation: "s2", Text: "hi"}); f.Type != protocol.ReplyAck {
		t.Errorf("send to a followed conversation got %s %q", f.Type, f.Code)
	}
	c.ReadUntil(untilTurnEnd)
	if f := c.Call(&protocol.Unsubscribe{ID: "u", Conversation: "s1"}); f.Type != protocol.ReplyUnsubscribed {
		t.Fatalf("unsubscribe got %s", f.Type)
	}
	subscribe(t, c, "s3", 0)
}

func TestConnectionBounds(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	s := conntest.Start(t, conntest.Config{Conn: conn.Options{User: queryUser, MaxConns: 3, MaxConnsPerUser: 2, Metrics: m}})
	dial := func(user string, want int, reason string) *conntest.Client {
		t.Helper()
		a := conntest.Upgrade(t, s.URL, "user="+user, nil)
		if a.Status != want {
			t.Fatalf("%s: upgrade answered %d (%+v), want %d", user, a.Status, a.Error, want)
		}
		if want == 503 && (a.Error == nil || a.Error.Code != protocol.CodeBusy || !strings.Contains(a.Error.Message, reason)) {
			t.Errorf("%s: refused with %+v, want busy %q", user, a.Error, reason)
		}
		return a.Client
	}
	a1 := dial("a", 101, "")
	dial("a", 101, "")
	dial("a", 503, "for this user")
	dial("b", 101, "")
	dial("c", 503, "to the gateway")
	// A closed connection gives its slot back once the server has seen
	// the close.
	_ = a1.WS.CloseNow()
	deadline := time.Now().Add(conntest.Timeout)
	for {
		if conntest.Upgrade(t, s.URL, "user=a", nil).Status == 101 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the slot of a closed connection was not released")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got, _ := m.Gather(); got["gateway_errors_total"] < 2 {
		t.Errorf("refusals counted %v, want at least 2", got["gateway_errors_total"])
	}
}

func TestSendRateLimit(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	// A burst of 3: the create takes one, two sends the rest.
	limiter := limits.NewLimiter(limits.Rate{PerSecond: 1e-3, Burst: 3},
		limits.LimiterOptions{Message: "too many messages, slow down", Refused: m.RateLimited.WithLabelValues("send")})
	s := conntest.Start(t, conntest.Config{Conn: conn.Options{User: queryUser, SendLimiter: limiter, Metrics: m}})
	alice, bob := s.Dial(t, "user=alice"), s.Dial(t, "user=bob")
	createConversation(t, alice, "r")
	for i := range 2 {
		if f := alice.Call(&protocol.Send{ID: "ok", Conversation: "r", Text: "hi"}); f.Type != protocol.ReplyAck {
			t.Fatalf("send %d got %s %q", i, f.Type, f.Code)
		}
		alice.ReadUntil(untilTurnEnd)
	}
	f := alice.Call(&protocol.Send{ID: "over", Conversation: "r", Text: "hi"})
	if f.Type != protocol.ReplyError || f.Code != protocol.CodeRateLimited || f.RetryAfterMS <= 0 || f.Conversation != "r" {
		t.Errorf("third send got %+v, want rate_limited with retry_after_ms", f)
	}
	if p := alice.Call(&protocol.Ping{ID: "p"}); p.Type != protocol.ReplyPong {
		t.Errorf("ping after the refusal got %s", p.Type)
	}
	if f := bob.Call(&protocol.Send{ID: "b", Text: "hi"}); f.Type != protocol.ReplyAck {
		t.Errorf("another user's send got %s %q", f.Type, f.Code)
	}
	got, err := m.Gather()
	if err != nil || got["gateway_rate_limited_total"] != 1 || got["gateway_errors_total"] != 1 {
		t.Errorf("rate limited %v, errors %v (%v), want 1 and 1", got["gateway_rate_limited_total"], got["gateway_errors_total"], err)
	}
}

func TestUpgradeRateLimit(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	limiter := limits.NewLimiter(limits.Rate{PerSecond: 1e-3, Burst: 2}, limits.LimiterOptions{Refused: m.RateLimited.WithLabelValues("upgrade")})
	s := conntest.Start(t, conntest.Config{Conn: conn.Options{UpgradeLimiter: limiter, Metrics: m}})
	for range 2 {
		if a := conntest.Upgrade(t, s.URL, "", nil); a.Status != 101 {
			t.Fatalf("upgrade answered %d %+v", a.Status, a.Error)
		}
	}
	a := conntest.Upgrade(t, s.URL, "", nil)
	if a.Status != 429 || a.Error == nil || a.Error.Code != protocol.CodeRateLimited || a.Error.RetryAfterMS <= 0 {
		t.Errorf("third upgrade answered %d %+v, want 429 rate_limited", a.Status, a.Error)
	}
	if a.Header.Get("Retry-After") == "" {
		t.Error("no Retry-After header")
	}
	if got, _ := m.Gather(); got["gateway_rate_limited_total"] != 1 {
		t.Errorf("rate limited %v, want 1", got["gateway_rate_limited_total"])
	}
}

func TestStopAccepting(t *testing.T) {
	t.Parallel()
	s := conntest.Start(t, conntest.Config{})
	open := s.Dial(t, "")
	s.WS.StopAccepting()
	if a := conntest.Upgrade(t, s.URL, "", nil); a.Status != 503 || a.Error == nil || a.Error.Code != protocol.CodeUnavailable {
		t.Errorf("upgrade while not accepting answered %d %+v, want 503 unavailable", a.Status, a.Error)
	}
	if f := open.Call(&protocol.Send{ID: "s", Text: "still here"}); f.Type != protocol.ReplyAck {
		t.Errorf("an open connection's send got %s %q", f.Type, f.Code)
	}
}

// TestDeleteTellsSubscribers deletes a conversation another connection
// follows: that connection gets a "deleted" frame without an id, and the
// subscription no longer counts toward MaxSubscriptions.
func TestDeleteTellsSubscribers(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	s := conntest.Start(t, conntest.Config{Convo: convo.Config{Metrics: m}, Conn: conn.Options{MaxSubscriptions: 1, Metrics: m}})
	owner, other := s.Dial(t, ""), s.Dial(t, "")
	createConversation(t, owner, "doomed")
	createConversation(t, owner, "next")
	subscribe(t, other, "doomed", 0)
	if f := owner.Call(&protocol.Delete{ID: "d", Conversation: "doomed"}); f.Type != protocol.ReplyDeleted {
		t.Fatalf("delete got %s %q", f.Type, f.Code)
	}
	f := other.ReadUntil(conntest.IsType(protocol.ReplyDeleted))
	if got := f[len(f)-1]; got.Conversation != "doomed" || got.ID != "" {
		t.Errorf("the follower got %+v, want deleted for doomed without an id", got)
	}
	subscribe(t, other, "next", 0)
	if got, _ := m.Gather(); got["gateway_subscriptions"] != 1 {
		t.Errorf("gateway_subscriptions = %v, want 1", got["gateway_subscriptions"])
	}
}
