package httpapi_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/chatgateway/gateway/internal/conn/conntest"
	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/demo"
	"github.com/chatgateway/gateway/internal/httpapi"
	"github.com/chatgateway/gateway/internal/metrics"
	"github.com/chatgateway/gateway/protocol"
)

// call makes one request and returns the status and body.
func call(t *testing.T, method, url, body string) (int, []byte) {
	t.Helper()
	return conntest.Do(t, method, url, body)
}

// callJSON makes a request, checks its status and decodes the body into v.
func callJSON(t *testing.T, method, url, body string, status int, v any) {
	t.Helper()
	got, b := call(t, method, url, body)
	if got != status {
		t.Fatalf("%s %s: status %d (%s), want %d", method, url, got, b, status)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s %s: decoding %s: %v", method, url, b, err)
	}
}

func start(t *testing.T, opts httpapi.Options) *conntest.Server {
	model := demo.New(demo.Options{WordDelay: -1, Reply: func(convo.ModelRequest) string { return "fine thanks" }})
	return conntest.Start(t, conntest.Config{Model: model, API: opts, Convo: convo.Config{DefaultModel: "demo"}})
}

func TestProbesAndInfo(t *testing.T) {
	t.Parallel()
	var ready atomic.Bool
	info := httpapi.Info{Provider: "demo", DefaultModel: "demo", Version: "test", Auth: "none"}
	page := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "page") })
	s := start(t, httpapi.Options{Info: info, Ready: ready.Load, Page: page, Metrics: metrics.New()})

	tests := []struct {
		name, path string
		ready      bool
		status     int
		body       string
	}{
		{"healthz", "/healthz", false, 200, "ok\n"},
		{"readyz when ready", "/readyz", true, 200, "ok\n"},
		{"readyz when not", "/readyz", false, 503, `{"error":{"code":"unavailable","message":"not ready"}}` + "\n"},
		{"info", "/v1/info", true, 200, `{"provider":"demo","default_model":"demo","version":"test","auth":"none"}` + "\n"},
		{"page", "/", true, 200, "page"},
		{"page file", "/app.js", true, 200, "page"},
		{"unknown API path", "/v1/nothing", true, 404, `{"error":{"code":"not_found","message":"no route for /v1/nothing"}}` + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ready.Store(tt.ready)
			status, body := call(t, "GET", s.URL+tt.path, "")
			if status != tt.status || string(body) != tt.body {
				t.Errorf("GET %s = %d %q, want %d %q", tt.path, status, body, tt.status, tt.body)
			}
		})
	}
	// The 503 above was counted.
	status, body := call(t, "GET", s.URL+"/metrics", "")
	if status != 200 || !strings.Contains(string(body), `gateway_errors_total{code="unavailable"} 1`) {
		t.Errorf("GET /metrics = %d, without the counted error:\n%s", status, body)
	}
}

func TestConversationLifecycle(t *testing.T) {
	t.Parallel()
	s := start(t, httpapi.Options{})
	base := s.URL + "/v1/conversations"

	var c protocol.Conversation
	callJSON(t, "POST", base, `{"conversation":"c1","title":"T","system":"S","model":"m","max_tokens":5,"temperature":0.5}`, 201, &c)
	if c.ID != "c1" || c.Title != "T" || c.System != "S" || c.Model != "m" || *c.MaxTokens != 5 || *c.Temperature != 0.5 {
		t.Errorf("created %+v", c)
	}
	var gen protocol.Conversation
	callJSON(t, "POST", base, "", 201, &gen)
	if gen.ID == "" || gen.Model != "demo" {
		t.Errorf("created with defaults %+v, want a generated id and the default model", gen)
	}

	var list protocol.ConversationsReply
	callJSON(t, "GET", base, "", 200, &list)
	if len(list.Conversations) != 2 || list.Type != protocol.ReplyConversations {
		t.Errorf("list %+v, want two conversations", list)
	}
	var got protocol.Conversation
	callJSON(t, "GET", base+"/c1", "", 200, &got)
	if got.ID != "c1" || got.Title != "T" {
		t.Errorf("get %+v", got)
	}

	// A subscriber sees what the HTTP API does to the conversation.
	ws := s.Dial(t, "conversation=c1")
	ws.Read() // subscribed
	var ack protocol.Ack
	callJSON(t, "POST", base+"/c1/messages", `{"text":"how are you","client_msg_id":"k1"}`, 202, &ack)
	if ack.Type != protocol.ReplyAck || ack.Conversation != "c1" || ack.Message.Seq != 1 || ack.Message.Text != "how are you" {
		t.Errorf("ack %+v", ack)
	}
	ws.ReadUntil(conntest.IsType(protocol.EventTurnEnd))
	var again protocol.Ack
	callJSON(t, "POST", base+"/c1/messages", `{"text":"how are you","client_msg_id":"k1"}`, 202, &again)
	if *again.Message != *ack.Message {
		t.Errorf("repeated send acked %+v, first %+v", again.Message, ack.Message)
	}

	var hist protocol.HistoryReply
	callJSON(t, "GET", base+"/c1/messages", "", 200, &hist)
	if len(hist.Messages) != 2 || hist.Messages[1].Text != "fine thanks" || hist.HasMore {
		t.Errorf("history %+v", hist)
	}
	callJSON(t, "GET", base+"/c1/messages?limit=1", "", 200, &hist)
	if len(hist.Messages) != 1 || hist.Messages[0].Role != protocol.RoleAssistant || !hist.HasMore {
		t.Errorf("history with limit 1: %+v", hist)
	}
	callJSON(t, "GET", base+"/c1/messages?before=2&limit=500", "", 200, &hist)
	if len(hist.Messages) != 1 || hist.Messages[0].Role != protocol.RoleUser {
		t.Errorf("history before 2: %+v", hist)
	}

	var action protocol.Event
	callJSON(t, "POST", base+"/c1/actions", `{"name":"deploy","input":{"env":"prod"},"output":{"ok":true},"turn":"t_x"}`, 201, &action)
	if action.Type != protocol.EventAction || action.Name != "deploy" || string(action.Input) != `{"env":"prod"}` || action.Turn != "t_x" || action.Seq == 0 {
		t.Errorf("action %+v", action)
	}
	if f := ws.Read(); f.Type != protocol.EventAction || f.Seq != action.Seq || string(f.Output) != `{"ok":true}` {
		t.Errorf("subscriber got %+v, want the action", f)
	}

	var evs []protocol.Event
	callJSON(t, "GET", base+"/c1/events", "", 200, &evs)
	for i, e := range evs {
		if e.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d", i, e.Seq)
		}
	}
	if last := evs[len(evs)-1]; last.Seq != action.Seq {
		t.Errorf("last event %+v, want the action", last)
	}
	callJSON(t, "GET", base+"/c1/events?after=1&limit=2", "", 200, &evs)
	if len(evs) != 2 || evs[0].Seq != 2 || evs[0].Type != protocol.EventTurnStart {
		t.Errorf("events after 1, limit 2: %+v", evs)
	}
	// A resume point beyond the log is an error, as over the WebSocket.
	var e struct{ Error protocol.Error }
	callJSON(t, "GET", base+"/c1/events?after=1000", "", 400, &e)
	if e.Error.Code != protocol.CodeBadRequest {
		t.Errorf("events after the end: %+v", e)
	}

	var done protocol.Done
	callJSON(t, "POST", base+"/c1/cancel", "", 200, &done)
	if done.Type != protocol.ReplyCancelled || done.Conversation != "c1" {
		t.Errorf("cancel answered %+v", done)
	}
	callJSON(t, "DELETE", base+"/c1", "", 200, &done)
	if done.Type != protocol.ReplyDeleted || done.Conversation != "c1" {
		t.Errorf("delete answered %+v", done)
	}
	if status, _ := call(t, "GET", base+"/c1", ""); status != 404 {
		t.Errorf("GET after delete: %d, want 404", status)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	s := start(t, httpapi.Options{MaxBodyBytes: 1 << 10})
	base := s.URL + "/v1/conversations"
	callJSON(t, "POST", base, `{"conversation":"e1"}`, 201, &protocol.Conversation{})

	tests := []struct {
		name, method, path, body string
		status                   int
		code, messageHas         string
	}{
		{"create invalid JSON", "POST", "", `{"title":`, 400, "bad_request", "JSON"},
		{"create not an object", "POST", "", `["x"]`, 400, "bad_request", "JSON object"},
		{"create wrong type", "POST", "", `{"title":5}`, 400, "bad_request", "title"},
		{"create bad max_tokens", "POST", "", `{"max_tokens":0}`, 400, "bad_request", "max_tokens"},
		{"create bad temperature", "POST", "", `{"temperature":"hot"}`, 400, "bad_request", "temperature"},
		{"create bad id", "POST", "", `{"conversation":"a b"}`, 400, "bad_request", "conversation"},
		{"create existing", "POST", "", `{"conversation":"e1"}`, 400, "bad_request", "exists"},
		{"create too large", "POST", "", `{"title":"` + strings.Repeat("x", 2000) + `"}`, 413, "too_large", "body"},
		{"get unknown", "GET", "/nope", "", 404, "not_found", ""},
		{"get bad id", "GET", "/a%20b", "", 400, "bad_request", "conversation"},
		{"delete unknown", "DELETE", "/nope", "", 404, "not_found", ""},
		{"send without text", "POST", "/e1/messages", `{}`, 400, "bad_request", "text"},
		{"send text of wrong type", "POST", "/e1/messages", `{"text":1}`, 400, "bad_request", "text"},
		{"send to unknown", "POST", "/nope/messages", `{"text":"hi"}`, 404, "not_found", ""},
		{"history bad before", "GET", "/e1/messages?before=x", "", 400, "bad_request", "before"},
		{"history bad limit", "GET", "/e1/messages?limit=-1", "", 400, "bad_request", "limit"},
		{"history of unknown", "GET", "/nope/messages", "", 404, "not_found", ""},
		{"events bad after", "GET", "/e1/events?after=1.5", "", 400, "bad_request", "after"},
		{"events bad limit", "GET", "/e1/events?limit=many", "", 400, "bad_request", "limit"},
		{"events of unknown", "GET", "/nope/events", "", 404, "not_found", ""},
		{"action without name", "POST", "/e1/actions", `{"input":{}}`, 400, "bad_request", "name"},
		{"action name of wrong type", "POST", "/e1/actions", `{"name":5}`, 400, "bad_request", "name"},
		{"action turn of wrong type", "POST", "/e1/actions", `{"name":"x","turn":[]}`, 400, "bad_request", "turn"},
		{"action on unknown", "POST", "/nope/actions", `{"name":"x"}`, 404, "not_found", ""},
		{"cancel unknown", "POST", "/nope/cancel", "", 404, "not_found", ""},
		{"unknown route", "GET", "/e1/nothing", "", 404, "not_found", "no route"},
		{"wrong method", "PUT", "/e1", "", 405, "method_not_allowed", "PUT"},
		{"invalid UTF-8 body", "POST", "/e1/messages", "{\"text\":\"caf\xe9\"}", 400, "bad_request", "body: invalid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var body struct{ Error protocol.Error }
			callJSON(t, tt.method, base+tt.path, tt.body, tt.status, &body)
			if body.Error.Code != tt.code || !strings.Contains(body.Error.Message, tt.messageHas) {
				t.Errorf("error %+v, want code %q and a message with %q", body.Error, tt.code, tt.messageHas)
			}
		})
	}
}

// TestSendAnswersBeforeTheModel checks that POST …/messages answers 202
// while the model has not produced anything yet.
func TestSendAnswersBeforeTheModel(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	model := demo.New(demo.Options{WordDelay: -1, Reply: func(convo.ModelRequest) string {
		<-release
		return "late"
	}})
	s := conntest.Start(t, conntest.Config{Model: model})
	defer close(release)
	base := s.URL + "/v1/conversations"
	callJSON(t, "POST", base, `{"conversation":"w"}`, 201, &protocol.Conversation{})
	var ack protocol.Ack
	callJSON(t, "POST", base+"/w/messages", `{"text":"hi"}`, 202, &ack)
	var evs []protocol.Event
	callJSON(t, "GET", base+"/w/events", "", 200, &evs)
	for _, e := range evs {
		if e.Type == protocol.EventDelta || e.Type == protocol.EventTurnEnd {
			t.Errorf("event %s stored before the model answered", e.Type)
		}
	}
}

// TestEventsInPages checks GET …/events across the pages it streams in:
// every event once, in order, up to the limit.
func TestEventsInPages(t *testing.T) {
	t.Parallel()
	s := start(t, httpapi.Options{})
	base := s.URL + "/v1/conversations"
	callJSON(t, "POST", base, `{"conversation":"p"}`, 201, &protocol.Conversation{})
	for i := range 25 {
		callJSON(t, "POST", base+"/p/actions", fmt.Sprintf(`{"name":"a%d"}`, i), 201, &protocol.Event{})
	}
	for _, tt := range []struct {
		query       string
		first, want int
	}{
		{"", 1, 25}, {"?limit=8", 1, 8}, {"?limit=16", 1, 16}, {"?limit=20", 1, 20},
		{"?after=20", 21, 5}, {"?after=3&limit=17", 4, 17}, {"?after=25", 0, 0},
	} {
		var evs []protocol.Event
		callJSON(t, "GET", base+"/p/events"+tt.query, "", 200, &evs)
		if len(evs) != tt.want || evs == nil {
			t.Errorf("events%s: %d events, want %d", tt.query, len(evs), tt.want)
			continue
		}
		for i, e := range evs {
			if e.Seq != uint64(tt.first+i) || e.Name != fmt.Sprintf("a%d", tt.first+i-1) {
				t.Errorf("events%s: event %d is seq %d %q", tt.query, i, e.Seq, e.Name)
			}
		}
	}
}

// TestListInPages pages through the list over HTTP and over the
// WebSocket: the same conversations, newest first, each once.
func TestListInPages(t *testing.T) {
	t.Parallel()
	s := start(t, httpapi.Options{})
	base := s.URL + "/v1/conversations"
	for i := range 5 {
		callJSON(t, "POST", base, fmt.Sprintf(`{"conversation":"l%d"}`, i), 201, &protocol.Conversation{})
	}
	want := "[l4 l3 l2 l1 l0]"
	var overHTTP []string
	for before := ""; ; {
		var page protocol.ConversationsReply
		callJSON(t, "GET", base+"?limit=2&before="+url.QueryEscape(before), "", 200, &page)
		for _, c := range page.Conversations {
			overHTTP = append(overHTTP, c.ID)
		}
		if before = page.Next; before == "" {
			break
		}
	}
	ws := s.Dial(t, "")
	var overWS []string
	for before := ""; ; {
		f := ws.Call(&protocol.List{ID: "l", Before: before, Limit: 2})
		if f.Type != protocol.ReplyConversations {
			t.Fatalf("list got %+v", f)
		}
		for _, c := range f.Conversations {
			overWS = append(overWS, c.ID)
		}
		if before = f.Next; before == "" {
			break
		}
	}
	if fmt.Sprint(overHTTP) != want || fmt.Sprint(overWS) != want {
		t.Errorf("pages over HTTP %v, over the WebSocket %v; want %s", overHTTP, overWS, want)
	}
	var e struct{ Error protocol.Error }
	callJSON(t, "GET", base+"?before=nonsense", "", 400, &e)
	if e.Error.Code != protocol.CodeBadRequest || !strings.Contains(e.Error.Message, "before") {
		t.Errorf("a bad cursor: %+v", e.Error)
	}
}

// TestNoSniff checks that every kind of answer, the API's JSON, its
// errors (before and after the route's checks) and the probes, tells
// browsers not to guess its type: a body holds model and user text.
func TestNoSniff(t *testing.T) {
	t.Parallel()
	s := start(t, httpapi.Options{})
	tests := []struct{ method, path, contentType string }{
		{"GET", "/healthz", ""},
		{"GET", "/v1/conversations", ""},
		{"GET", "/v1/conversations/missing", ""},
		{"GET", "/v1/nothing", ""},
		{"PUT", "/v1/conversations", ""},
		{"POST", "/v1/conversations", "text/html"},
	}
	for _, tt := range tests {
		req, err := http.NewRequest(tt.method, s.URL+tt.path, strings.NewReader("{}"))
		if err != nil {
			t.Fatal(err)
		}
		if tt.contentType != "" {
			req.Header.Set("Content-Type", tt.contentType)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("%s %s (%d): X-Content-Type-Options %q, want nosniff", tt.method, tt.path, resp.StatusCode, got)
		}
	}
}
