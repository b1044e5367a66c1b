package httpapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/chatgateway/gateway/internal/conn"
	"github.com/chatgateway/gateway/internal/conn/conntest"
	"github.com/chatgateway/gateway/internal/httpapi"
	"github.com/chatgateway/gateway/internal/limits"
	"github.com/chatgateway/gateway/internal/metrics"
	"github.com/chatgateway/gateway/internal/spec"
	"github.com/chatgateway/gateway/protocol"
)

// answer is one HTTP answer: status, headers and the decoded error body,
// if any.
type answer struct {
	status int
	header http.Header
	body   []byte
	err    *protocol.Error
}

// do makes a request with the token of user (none when ""), or with the
// raw Authorization header auth when it is set.
func do(t *testing.T, method, url, body, user, auth string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if method != http.MethodGet && method != http.MethodHead {
		req.Header.Set("Content-Type", "application/json")
	}
	if user != "" {
		auth = "Bearer " + conntest.Token(t, user)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode, header: resp.Header}
	if a.body, err = io.ReadAll(resp.Body); err != nil {
		t.Fatal(err)
	}
	conntest.CheckHTTP(t, spec.Exchange{Method: method, URL: url, RequestBody: []byte(body), Status: a.status,
		ContentType: resp.Header.Get("Content-Type"), ResponseBody: a.body})
	var e struct{ Error *protocol.Error }
	if json.Unmarshal(a.body, &e) == nil {
		a.err = e.Error
	}
	return a
}

// startJWT starts a gateway whose HTTP API and WebSocket both require the
// tokens conntest.Token makes.
func startJWT(t *testing.T, opts httpapi.Options) *conntest.Server {
	user := conntest.JWTUser(t)
	opts.User = user
	return conntest.Start(t, conntest.Config{API: opts, Conn: conn.Options{User: user}})
}

func TestAuthRequired(t *testing.T) {
	t.Parallel()
	page := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "page") })
	s := startJWT(t, httpapi.Options{Page: page, Metrics: metrics.New(), Info: httpapi.Info{Auth: "jwt"}})
	base := s.URL + "/v1/conversations"
	if a := do(t, "POST", base, `{"conversation":"a1"}`, "alice", ""); a.status != 201 {
		t.Fatalf("create: %d %s", a.status, a.body)
	}
	tests := []struct {
		name, method, path, auth string
		reason                   string
	}{
		{"list without a token", "GET", "/v1/conversations", "", "missing bearer token"},
		{"create with a malformed token", "POST", "/v1/conversations", "Bearer x.y.z", "malformed"},
		{"get with another scheme", "GET", "/v1/conversations/a1", "Basic YTpi", "Bearer"},
		{"history without a token", "GET", "/v1/conversations/a1/messages", "", "missing"},
		{"send without a token", "POST", "/v1/conversations/a1/messages", "", "missing"},
		{"events without a token", "GET", "/v1/conversations/a1/events", "", "missing"},
		{"delete without a token", "DELETE", "/v1/conversations/a1", "", "missing"},
		{"upgrade without a token", "GET", "/v1/ws", "", "missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			a := do(t, tt.method, s.URL+tt.path, "", "", tt.auth)
			if a.status != 401 || a.err == nil || a.err.Code != protocol.CodeUnauthorized || !strings.Contains(a.err.Message, tt.reason) {
				t.Errorf("answered %d %s, want 401 unauthorized mentioning %q", a.status, a.body, tt.reason)
			}
			if got := a.header.Get("WWW-Authenticate"); got != "Bearer" {
				t.Errorf("WWW-Authenticate %q, want Bearer", got)
			}
		})
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/", "/v1/info"} {
		t.Run("open "+path, func(t *testing.T) {
			t.Parallel()
			if a := do(t, "GET", s.URL+path, "", "", ""); a.status != 200 {
				t.Errorf("GET %s without a token answered %d", path, a.status)
			}
		})
	}
	t.Run("info names the mode", func(t *testing.T) {
		t.Parallel()
		var info httpapi.Info
		if a := do(t, "GET", s.URL+"/v1/info", "", "", ""); json.Unmarshal(a.body, &info) != nil || info.Auth != "jwt" {
			t.Errorf("info %s, want auth jwt", a.body)
		}
	})
}

// TestOwnershipOverHTTP checks that bob gets not_found for every route on
// alice's conversation, and that each one lists only their own.
func TestOwnershipOverHTTP(t *testing.T) {
	t.Parallel()
	s := startJWT(t, httpapi.Options{})
	base := s.URL + "/v1/conversations"
	for _, c := range []struct{ user, id string }{{"alice", "a1"}, {"bob", "b1"}} {
		if a := do(t, "POST", base, `{"conversation":"`+c.id+`"}`, c.user, ""); a.status != 201 {
			t.Fatalf("create %s: %d %s", c.id, a.status, a.body)
		}
	}
	if a := do(t, "POST", base+"/a1/messages", `{"text":"secret"}`, "alice", ""); a.status != 202 {
		t.Fatalf("alice's send: %d %s", a.status, a.body)
	}
	tests := []struct{ name, method, path, body string }{
		{"get", "GET", "/a1", ""},
		{"history", "GET", "/a1/messages", ""},
		{"events", "GET", "/a1/events", ""},
		{"send", "POST", "/a1/messages", `{"text":"let me in"}`},
		{"action", "POST", "/a1/actions", `{"name":"x"}`},
		{"cancel", "POST", "/a1/cancel", ""},
		{"delete", "DELETE", "/a1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := do(t, tt.method, base+tt.path, tt.body, "bob", "")
			if a.status != 404 || a.err == nil || a.err.Code != protocol.CodeNotFound {
				t.Errorf("bob's %s answered %d %s, want 404 not_found", tt.name, a.status, a.body)
			}
		})
	}
	for user, want := range map[string]string{"alice": "a1", "bob": "b1"} {
		var list protocol.ConversationsReply
		a := do(t, "GET", base, "", user, "")
		if err := json.Unmarshal(a.body, &list); err != nil || len(list.Conversations) != 1 || list.Conversations[0].ID != want {
			t.Errorf("%s lists %s, want only %s", user, a.body, want)
		}
	}
	var evs []protocol.Event
	if a := do(t, "GET", base+"/a1/events", "", "alice", ""); json.Unmarshal(a.body, &evs) != nil || len(evs) < 2 {
		t.Errorf("alice's events after bob's attempts: %s", a.body)
	}
}

func TestSendRateLimitOverHTTP(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	// A burst of 2: the create takes one, the first send the other.
	limiter := limits.NewLimiter(limits.Rate{PerSecond: 1e-3, Burst: 2},
		limits.LimiterOptions{Message: "too many messages, slow down", Refused: m.RateLimited.WithLabelValues("send")})
	s := startJWT(t, httpapi.Options{SendLimiter: limiter, Metrics: m})
	base := s.URL + "/v1/conversations"
	for _, user := range []string{"alice", "bob"} {
		if a := do(t, "POST", base, `{"conversation":"`+user+`"}`, user, ""); a.status != 201 {
			t.Fatalf("create: %d %s", a.status, a.body)
		}
	}
	if a := do(t, "POST", base+"/alice/messages", `{"text":"one"}`, "alice", ""); a.status != 202 {
		t.Fatalf("first send: %d %s", a.status, a.body)
	}
	a := do(t, "POST", base+"/alice/messages", `{"text":"two"}`, "alice", "")
	if a.status != 429 || a.err == nil || a.err.Code != protocol.CodeRateLimited || a.err.RetryAfterMS <= 0 {
		t.Errorf("second send answered %d %s, want 429 rate_limited with retry_after_ms", a.status, a.body)
	}
	if a.header.Get("Retry-After") == "" {
		t.Error("no Retry-After header")
	}
	if a := do(t, "POST", base+"/bob/messages", `{"text":"one"}`, "bob", ""); a.status != 202 {
		t.Errorf("another user's send: %d %s", a.status, a.body)
	}
	if got, _ := m.Gather(); got["gateway_rate_limited_total"] != 1 {
		t.Errorf("rate limited %v, want 1", got["gateway_rate_limited_total"])
	}
}

// TestWriteBudget checks that creates and actions, over either transport,
// take from the same per-user budget as sends, and that titles, system
// prompts and actions are bounded in size.
func TestWriteBudget(t *testing.T) {
	t.Parallel()
	m := metrics.New()
	limiter := limits.NewLimiter(limits.Rate{PerSecond: 1e-3, Burst: 3}, limits.LimiterOptions{Refused: m.RateLimited.WithLabelValues("send")})
	sizes := limits.Sizes{Title: 8, System: 16, Action: 64}
	user := conntest.JWTUser(t)
	s := conntest.Start(t, conntest.Config{
		API:  httpapi.Options{User: user, SendLimiter: limiter, Sizes: sizes, Metrics: m},
		Conn: conn.Options{User: user, SendLimiter: limiter, Sizes: sizes},
	})
	base := s.URL + "/v1/conversations"
	ws := s.Dial(t, "token="+conntest.Token(t, "alice"))

	// Refused for size: no token is taken.
	if a := do(t, "POST", base, `{"title":"123456789"}`, "alice", ""); a.status != 413 || a.err.Code != protocol.CodeTooLarge {
		t.Errorf("a long title over HTTP: %d %s, want 413 too_large", a.status, a.body)
	}
	if f := ws.Call(&protocol.Create{ID: "k", System: strings.Repeat("s", 17)}); f.Code != protocol.CodeTooLarge {
		t.Errorf("a long system prompt over the WebSocket: %+v, want too_large", f)
	}
	// Three writes take the burst...
	if a := do(t, "POST", base, `{"conversation":"a1","title":"12345678"}`, "alice", ""); a.status != 201 {
		t.Fatalf("create: %d %s", a.status, a.body)
	}
	if f := ws.Call(&protocol.Create{ID: "k", Conversation: "a2"}); f.Type != protocol.ReplyCreated {
		t.Fatalf("create over the WebSocket: %+v", f)
	}
	if a := do(t, "POST", base+"/a1/actions", `{"name":"big","input":"`+strings.Repeat("x", 64)+`"}`, "alice", ""); a.status != 413 {
		t.Errorf("a large action: %d %s, want 413", a.status, a.body)
	}
	if a := do(t, "POST", base+"/a1/actions", `{"name":"n","input":{"k":1}}`, "alice", ""); a.status != 201 {
		t.Fatalf("action: %d %s", a.status, a.body)
	}
	// ...and every kind of write is refused after it.
	for name, a := range map[string]answer{
		"create": do(t, "POST", base, `{}`, "alice", ""),
		"action": do(t, "POST", base+"/a1/actions", `{"name":"n"}`, "alice", ""),
		"send":   do(t, "POST", base+"/a1/messages", `{"text":"hi"}`, "alice", ""),
	} {
		if a.status != 429 || a.err.Code != protocol.CodeRateLimited {
			t.Errorf("%s after the burst: %d %s, want 429", name, a.status, a.body)
		}
	}
	if f := ws.Call(&protocol.Create{ID: "k"}); f.Code != protocol.CodeRateLimited {
		t.Errorf("create over the WebSocket after the burst: %+v, want rate_limited", f)
	}
	if a := do(t, "POST", base, `{}`, "bob", ""); a.status != 201 {
		t.Errorf("another user's create: %d %s", a.status, a.body)
	}
}
