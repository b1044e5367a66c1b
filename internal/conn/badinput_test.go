package conn_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/chatgateway/gateway/internal/auth"
	"github.com/chatgateway/gateway/internal/conn"
	"github.com/chatgateway/gateway/internal/conn/conntest"
	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/metrics"
	"github.com/chatgateway/gateway/protocol"
)

// badInputTextBytes is the text limit of the bad-input gateway.
const badInputTextBytes = 4 << 10

// startBadInput starts a gateway with a small text limit and an empty
// conversation "known".
func startBadInput(t *testing.T) *conntest.Server {
	t.Helper()
	s := conntest.Start(t, conntest.Config{Convo: convo.Config{MaxTextBytes: badInputTextBytes}})
	if _, err := s.Svc.Create(conntest.Deadline(t), auth.LocalUser, &protocol.Create{Conversation: "known"}); err != nil {
		t.Fatal(err)
	}
	return s
}

// nested is a frame of the given type whose ignored field "x" nests
// depth JSON arrays.
func nested(typ string, depth int) string {
	return `{"type":"` + typ + `","id":"deep","x":` + strings.Repeat("[", depth) + strings.Repeat("]", depth) + `}`
}

// TestBadInputWebSocket sends one bad frame per case on a fresh
// connection. Each gets its precise answer: an error frame with the code,
// the request id when one could be read and the conversation when known,
// or, where the input is odd but valid, its normal reply. The connection
// then still answers a ping, except where the contract closes it (binary
// and over-size frames). A panic would end the connection, fail the ping
// and show here.
func TestBadInputWebSocket(t *testing.T) {
	t.Parallel()
	s := startBadInput(t)
	long := strings.Repeat("x", badInputTextBytes+1)
	tests := []struct {
		name  string
		frame string
		// binary sends the frame as a binary frame.
		binary bool
		// code is the error code of the answer; "" means the frame is
		// served and answered with reply.
		code, reply      string
		id, conversation string
		// messageHas is part of the error message.
		messageHas string
		// closes is the close code that must follow the answer, if any.
		closes websocket.StatusCode
	}{
		{name: "invalid JSON", frame: `{"type":"ping",`, code: protocol.CodeBadRequest, messageHas: "invalid JSON"},
		{name: "not JSON at all", frame: `ping please`, code: protocol.CodeBadRequest},
		{name: "trailing garbage", frame: `{"type":"ping","id":"g"} x`, code: protocol.CodeBadRequest, messageHas: "invalid JSON"},
		{name: "raw control character in a string", frame: "{\"type\":\"ping\",\"id\":\"a\x01b\"}", code: protocol.CodeBadRequest, messageHas: "invalid JSON"},
		{name: "invalid UTF-8", frame: "{\"type\":\"send\",\"id\":\"u\",\"text\":\"caf\xe9\"}", code: protocol.CodeBadRequest, messageHas: "UTF-8"},
		{name: "empty frame", frame: ``, code: protocol.CodeBadRequest, messageHas: "JSON object"},
		{name: "whitespace-only frame", frame: " \t\r\n ", code: protocol.CodeBadRequest, messageHas: "JSON object"},
		{name: "JSON array", frame: `[{"type":"ping"}]`, code: protocol.CodeBadRequest, messageHas: "JSON object"},
		{name: "JSON string", frame: `"ping"`, code: protocol.CodeBadRequest, messageHas: "JSON object"},
		{name: "JSON number", frame: `42`, code: protocol.CodeBadRequest, messageHas: "JSON object"},
		{name: "JSON null", frame: `null`, code: protocol.CodeBadRequest, messageHas: "JSON object"},
		{name: "missing type", frame: `{"id":"m1"}`, code: protocol.CodeBadRequest, id: "m1", messageHas: "type"},
		{name: "null type", frame: `{"type":null,"id":"m2"}`, code: protocol.CodeBadRequest, id: "m2", messageHas: "type"},
		{name: "type in upper case", frame: `{"TYPE":"ping","id":"m3"}`, code: protocol.CodeBadRequest, id: "m3", messageHas: "type"},
		{name: "type is a number", frame: `{"type":5,"id":"m4"}`, code: protocol.CodeBadRequest, id: "m4", messageHas: "type"},
		{name: "unknown type", frame: `{"type":"dance","id":"m5"}`, code: protocol.CodeUnknownType, id: "m5", messageHas: "dance"},
		{name: "id is a number", frame: `{"type":"ping","id":7}`, code: protocol.CodeBadRequest, messageHas: "id"},
		{name: "id over 64 bytes", frame: `{"type":"ping","id":"` + strings.Repeat("i", 65) + `"}`, code: protocol.CodeBadRequest, messageHas: "id"},
		{name: "id of 64 bytes", frame: `{"type":"ping","id":"` + strings.Repeat("i", 64) + `"}`, reply: protocol.ReplyPong, id: strings.Repeat("i", 64)},
		{name: "id with control characters", frame: `{"type":"ping","id":"a\u0000\u001fb"}`, reply: protocol.ReplyPong, id: "a\x00\x1fb"},
		{name: "null id", frame: `{"type":"ping","id":null}`, reply: protocol.ReplyPong},
		{name: "text is a number", frame: `{"type":"send","id":"t1","conversation":"known","text":42}`, code: protocol.CodeBadRequest, id: "t1", messageHas: "text"},
		{name: "null text", frame: `{"type":"send","id":"t2","conversation":"known","text":null}`, code: protocol.CodeBadRequest, id: "t2", messageHas: "text"},
		{name: "empty text", frame: `{"type":"send","id":"t3","conversation":"known","text":""}`, code: protocol.CodeBadRequest, id: "t3", messageHas: "text"},
		{name: "text over the limit", frame: `{"type":"send","id":"t4","conversation":"known","text":"` + long + `"}`, code: protocol.CodeTooLarge, id: "t4", conversation: "known", messageHas: "text"},
		// A send that succeeds goes to a new conversation: "known" must
		// stay empty for "after beyond the end", which runs in parallel.
		{name: "text with control characters", frame: `{"type":"send","id":"t5","text":"bell\u0007 nul\u0000 esc\u001b[2J"}`, reply: protocol.ReplyAck, id: "t5"},
		{name: "client_msg_id over 64 bytes", frame: `{"type":"send","id":"t6","conversation":"known","text":"hi","client_msg_id":"` + strings.Repeat("c", 65) + `"}`, code: protocol.CodeBadRequest, id: "t6", messageHas: "client_msg_id"},
		{name: "conversation over 128 bytes", frame: `{"type":"subscribe","id":"c1","conversation":"` + strings.Repeat("c", 129) + `"}`, code: protocol.CodeBadRequest, id: "c1", messageHas: "conversation"},
		{name: "conversation with a control character", frame: `{"type":"history","id":"c2","conversation":"kno\u0001wn"}`, code: protocol.CodeBadRequest, id: "c2", messageHas: "conversation"},
		{name: "conversation with a slash", frame: `{"type":"cancel","id":"c3","conversation":"a/b"}`, code: protocol.CodeBadRequest, id: "c3", messageHas: "conversation"},
		{name: "conversation is dot-dot", frame: `{"type":"delete","id":"c4","conversation":".."}`, code: protocol.CodeBadRequest, id: "c4", messageHas: "conversation"},
		{name: "conversation missing", frame: `{"type":"subscribe","id":"c5"}`, code: protocol.CodeBadRequest, id: "c5", messageHas: "conversation"},
		{name: "conversation is an object", frame: `{"type":"subscribe","id":"c6","conversation":{"id":"known"}}`, code: protocol.CodeBadRequest, id: "c6", messageHas: "conversation"},
		{name: "negative after", frame: `{"type":"subscribe","id":"a1","conversation":"known","after":-1}`, code: protocol.CodeBadRequest, id: "a1", messageHas: "after"},
		{name: "fractional after", frame: `{"type":"subscribe","id":"a2","conversation":"known","after":1.5}`, code: protocol.CodeBadRequest, id: "a2", messageHas: "after"},
		{name: "after as a string", frame: `{"type":"subscribe","id":"a3","conversation":"known","after":"0"}`, code: protocol.CodeBadRequest, id: "a3", messageHas: "after"},
		{name: "after beyond uint64", frame: `{"type":"subscribe","id":"a4","conversation":"known","after":18446744073709551616}`, code: protocol.CodeBadRequest, id: "a4", messageHas: "after"},
		{name: "after beyond the end", frame: `{"type":"subscribe","id":"a5","conversation":"known","after":1}`, code: protocol.CodeBadRequest, id: "a5", conversation: "known", messageHas: "after"},
		{name: "negative history limit", frame: `{"type":"history","id":"h1","conversation":"known","limit":-1}`, code: protocol.CodeBadRequest, id: "h1", messageHas: "limit"},
		{name: "history limit beyond int64", frame: `{"type":"history","id":"h2","conversation":"known","limit":99999999999999999999}`, reply: protocol.ReplyHistory, id: "h2"},
		{name: "negative history before", frame: `{"type":"history","id":"h3","conversation":"known","before":-5}`, code: protocol.CodeBadRequest, id: "h3", messageHas: "before"},
		{name: "zero max_tokens", frame: `{"type":"create","id":"k1","max_tokens":0}`, code: protocol.CodeBadRequest, id: "k1", messageHas: "max_tokens"},
		{name: "temperature over 1", frame: `{"type":"create","id":"k2","temperature":1.5}`, code: protocol.CodeBadRequest, id: "k2", messageHas: "temperature"},
		{name: "create an existing conversation", frame: `{"type":"create","id":"k3","conversation":"known"}`, code: protocol.CodeBadRequest, id: "k3", conversation: "known", messageHas: "exists"},
		{name: "deeply nested JSON", frame: nested(protocol.TypePing, 20000), code: protocol.CodeBadRequest, messageHas: "invalid JSON"},
		{name: "nested JSON in an unknown field", frame: nested(protocol.TypePing, 500), reply: protocol.ReplyPong, id: "deep"},
		{name: "subscribe to an unknown conversation", frame: `{"type":"subscribe","id":"n1","conversation":"nope"}`, code: protocol.CodeNotFound, id: "n1", conversation: "nope"},
		{name: "send to an unknown conversation", frame: `{"type":"send","id":"n2","conversation":"nope","text":"hi"}`, code: protocol.CodeNotFound, id: "n2", conversation: "nope"},
		{name: "history of an unknown conversation", frame: `{"type":"history","id":"n3","conversation":"nope"}`, code: protocol.CodeNotFound, id: "n3", conversation: "nope"},
		{name: "cancel in an unknown conversation", frame: `{"type":"cancel","id":"n4","conversation":"nope"}`, code: protocol.CodeNotFound, id: "n4", conversation: "nope"},
		{name: "delete an unknown conversation", frame: `{"type":"delete","id":"n5","conversation":"nope"}`, code: protocol.CodeNotFound, id: "n5", conversation: "nope"},
		// Unsubscribing is idempotent: leaving what one does not follow
		// is not an error.
		{name: "unsubscribe from an unknown conversation", frame: `{"type":"unsubscribe","id":"n6","conversation":"nope"}`, reply: protocol.ReplyUnsubscribed, id: "n6", conversation: "nope"},
		{name: "binary frame", frame: `{"type":"ping","id":"b"}`, binary: true, code: protocol.CodeBadRequest, messageHas: "binary", closes: websocket.StatusUnsupportedData},
		{name: "frame over 1 MiB", frame: `{"type":"send","text":"` + strings.Repeat("x", conn.DefaultMaxFrameBytes) + `"}`, closes: websocket.StatusMessageTooBig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := s.Dial(t, "")
			typ := websocket.MessageText
			if tt.binary {
				typ = websocket.MessageBinary
			}
			c.Write(typ, []byte(tt.frame))
			if tt.code != "" || tt.reply != "" {
				checkAnswer(t, c.Read(), tt.code, tt.reply, tt.id, tt.conversation, tt.messageHas)
			}
			if tt.closes != 0 {
				if ce := closeStatus(t, c); ce.Code != tt.closes {
					t.Errorf("closed with %v, want %v", ce, tt.closes)
				}
				return
			}
			if p := c.Call(&protocol.Ping{ID: "still-there"}); p.Type != protocol.ReplyPong {
				t.Errorf("ping after the answer got %s %s", p.Type, p.Code)
			}
		})
	}
}

// checkAnswer checks that f is the error with code (when code is set) or
// the reply of type reply, with the id and conversation given.
func checkAnswer(t *testing.T, f protocol.ServerFrame, code, reply, id, conversation, messageHas string) {
	t.Helper()
	want := reply
	if code != "" {
		want = protocol.ReplyError
	}
	if f.Type != want || f.Code != code || f.ID != id || (code != "" || conversation != "") && f.Conversation != conversation {
		t.Errorf("got %s code=%q id=%q conversation=%q (%s), want %s code=%q id=%q conversation=%q",
			f.Type, f.Code, f.ID, f.Conversation, f.ErrorMessage(), want, code, id, conversation)
	}
	if code != "" && (f.ErrorMessage() == "" || !strings.Contains(f.ErrorMessage(), messageHas)) {
		t.Errorf("error message %q does not mention %q", f.ErrorMessage(), messageHas)
	}
}

// TestBadInputQuery opens connections whose upgrade query subscribes
// with bad values: each gets an error frame and stays usable.
func TestBadInputQuery(t *testing.T) {
	t.Parallel()
	s := startBadInput(t)
	tests := []struct{ name, query, code, conversation string }{
		{"negative after", "conversation=known&after=-1", protocol.CodeBadRequest, "known"},
		{"after is not a number", "conversation=known&after=soon", protocol.CodeBadRequest, "known"},
		{"after beyond the end", "conversation=known&after=7", protocol.CodeBadRequest, "known"},
		{"after beyond uint64", "conversation=known&after=18446744073709551616", protocol.CodeBadRequest, "known"},
		{"conversation over 128 bytes", "conversation=" + strings.Repeat("c", 129), protocol.CodeBadRequest, ""},
		{"conversation with a control character", "conversation=a%01b", protocol.CodeBadRequest, ""},
		{"empty conversation", "conversation=", protocol.CodeBadRequest, ""},
		{"unknown conversation", "conversation=nope", protocol.CodeNotFound, "nope"},
		// A query that does not parse is refused, not read in part: a
		// part dropped would subscribe from 0, or not at all.
		{"after with a bad escape", "conversation=known&after=1%zz", protocol.CodeBadRequest, ""},
		{"a semicolon separator", "conversation=known;after=1", protocol.CodeBadRequest, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := s.Dial(t, tt.query)
			checkAnswer(t, c.Read(), tt.code, "", "", tt.conversation, "")
			if p := c.Call(&protocol.Ping{ID: "still-there"}); p.Type != protocol.ReplyPong {
				t.Errorf("ping after the error got %s %s", p.Type, p.Code)
			}
		})
	}
}

// TestBadInputHTTP sends bad requests to the HTTP API: each gets its
// status and a JSON error body with the code (or, where the input is odd
// but valid, its normal answer), and the gateway keeps serving (a panic
// would drop the connection and fail the request).
func TestBadInputHTTP(t *testing.T) {
	t.Parallel()
	s := startBadInput(t)
	long := strings.Repeat("x", badInputTextBytes+1)
	huge := `{"text":"` + strings.Repeat("x", 1<<20) + `"}`
	const known = "/v1/conversations/known"
	tests := []struct {
		name, method, path, body string
		status                   int
		code                     string
	}{
		{"invalid JSON body", "POST", "/v1/conversations", `{"title":`, 400, protocol.CodeBadRequest},
		{"JSON array body", "POST", "/v1/conversations", `[{"title":"x"}]`, 400, protocol.CodeBadRequest},
		{"JSON string body", "POST", known + "/messages", `"hello"`, 400, protocol.CodeBadRequest},
		{"form body", "POST", known + "/messages", `text=hello`, 400, protocol.CodeBadRequest},
		{"invalid UTF-8 body", "POST", known + "/messages", "{\"text\":\"caf\xe9\"}", 400, protocol.CodeBadRequest},
		{"title is a number", "POST", "/v1/conversations", `{"title":5}`, 400, protocol.CodeBadRequest},
		{"conversation id over 128 bytes in the body", "POST", "/v1/conversations", `{"conversation":"` + strings.Repeat("c", 129) + `"}`, 400, protocol.CodeBadRequest},
		{"existing conversation", "POST", "/v1/conversations", `{"conversation":"known"}`, 400, protocol.CodeBadRequest},
		{"send without text", "POST", known + "/messages", `{}`, 400, protocol.CodeBadRequest},
		{"send with null text", "POST", known + "/messages", `{"text":null}`, 400, protocol.CodeBadRequest},
		{"text over the limit", "POST", known + "/messages", `{"text":"` + long + `"}`, 413, protocol.CodeTooLarge},
		{"body over 1 MiB", "POST", known + "/messages", huge, 413, protocol.CodeTooLarge},
		{"action without name", "POST", known + "/actions", `{"input":{}}`, 400, protocol.CodeBadRequest},
		{"action name is a number", "POST", known + "/actions", `{"name":1}`, 400, protocol.CodeBadRequest},
		{"negative after", "GET", known + "/events?after=-1", "", 400, protocol.CodeBadRequest},
		// As a subscribe with it does: a client that claims to have seen
		// events the log does not have would miss the ones written later
		// under those seqs.
		{"after beyond the end", "GET", known + "/events?after=1", "", 400, protocol.CodeBadRequest},
		{"after is not a number", "GET", known + "/events?after=ten", "", 400, protocol.CodeBadRequest},
		{"fractional limit", "GET", known + "/events?limit=1.5", "", 400, protocol.CodeBadRequest},
		{"negative limit", "GET", known + "/messages?limit=-1", "", 400, protocol.CodeBadRequest},
		{"before is not a number", "GET", known + "/messages?before=x", "", 400, protocol.CodeBadRequest},
		{"after with a bad escape", "GET", known + "/events?after=%zz", "", 400, protocol.CodeBadRequest},
		{"a semicolon in the query", "GET", known + "/messages?limit=1;before=x", "", 400, protocol.CodeBadRequest},
		{"list with a bad escape", "GET", "/v1/conversations?before=%g", "", 400, protocol.CodeBadRequest},
		// As over WebSocket, any limit above the maximum means the
		// maximum, however large.
		{"history limit beyond uint64", "GET", known + "/messages?limit=99999999999999999999", "", 200, ""},
		{"conversation id over 128 bytes in the path", "GET", "/v1/conversations/" + strings.Repeat("c", 129), "", 400, protocol.CodeBadRequest},
		{"conversation id with a control character", "GET", "/v1/conversations/a%01b", "", 400, protocol.CodeBadRequest},
		{"get an unknown conversation", "GET", "/v1/conversations/nope", "", 404, protocol.CodeNotFound},
		{"events of an unknown conversation", "GET", "/v1/conversations/nope/events", "", 404, protocol.CodeNotFound},
		{"history of an unknown conversation", "GET", "/v1/conversations/nope/messages", "", 404, protocol.CodeNotFound},
		{"send to an unknown conversation", "POST", "/v1/conversations/nope/messages", `{"text":"hi"}`, 404, protocol.CodeNotFound},
		{"action in an unknown conversation", "POST", "/v1/conversations/nope/actions", `{"name":"x"}`, 404, protocol.CodeNotFound},
		{"cancel in an unknown conversation", "POST", "/v1/conversations/nope/cancel", "", 404, protocol.CodeNotFound},
		{"delete an unknown conversation", "DELETE", "/v1/conversations/nope", "", 404, protocol.CodeNotFound},
		{"unknown API path", "GET", "/v1/nothing", "", 404, protocol.CodeNotFound},
		{"PUT a conversation", "PUT", known, `{}`, 405, protocol.CodeMethodNotAllowed},
		{"PATCH the list", "PATCH", "/v1/conversations", `{}`, 405, protocol.CodeMethodNotAllowed},
		{"GET the cancel action", "GET", known + "/cancel", "", 405, protocol.CodeMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			status, body := conntest.Do(t, tt.method, s.URL+tt.path, tt.body)
			var e struct{ Error *protocol.Error }
			err := json.Unmarshal(body, &e)
			bad := err != nil || status != tt.status
			if tt.code != "" {
				bad = bad || e.Error == nil || e.Error.Code != tt.code || e.Error.Message == ""
			}
			if bad {
				want := fmt.Sprint(tt.status)
				if tt.code != "" {
					want += fmt.Sprintf(" with error code %q", tt.code)
				}
				t.Errorf("%s %s: %d %s, want %s", tt.method, tt.path, status, bytes.TrimSpace(body), want)
			}
			if status, _ := conntest.Do(t, "GET", s.URL+"/healthz", ""); status != http.StatusOK {
				t.Errorf("healthz answers %d after the bad request", status)
			}
		})
	}
}

// TestTenThousandSubscribes sends 10,000 subscribes on one connection,
// cycling over more conversations than the per-connection limit: the
// first ones up to the limit are served, every subscribe to another
// conversation gets busy, the subscriptions held stay at the limit, and
// the connection stays usable.
func TestTenThousandSubscribes(t *testing.T) {
	t.Parallel()
	const (
		subscribes = 10000
		limit      = 100
		convs      = limit + 10
	)
	m := metrics.New()
	s := conntest.Start(t, conntest.Config{Convo: convo.Config{Metrics: m}, Conn: conn.Options{MaxSubscriptions: limit, Metrics: m}})
	ctx := conntest.Deadline(t)
	for i := range convs {
		if _, err := s.Svc.Create(ctx, auth.LocalUser, &protocol.Create{Conversation: fmt.Sprintf("c%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	c := s.Dial(t, "")
	// The subscribed and busy replies are checked against the spec by
	// other tests; checking its 10,000 replies cost a sixth of its time.
	c.Unchecked()
	sent := make(chan error, 1)
	go func() {
		for i := range subscribes {
			if err := c.RequestErr(&protocol.Subscribe{ID: fmt.Sprint(i), Conversation: fmt.Sprintf("c%d", i%convs)}); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	served, busy := 0, 0
	for i := range subscribes {
		f := c.Read()
		wantCode, wantType := "", protocol.ReplySubscribed
		if i%convs >= limit {
			wantCode, wantType = protocol.CodeBusy, protocol.ReplyError
		}
		if f.ID != fmt.Sprint(i) || f.Type != wantType || f.Code != wantCode {
			t.Fatalf("subscribe %d (to c%d) got %s %q id %q (%s), want %s %q", i, i%convs, f.Type, f.Code, f.ID, f.ErrorMessage(), wantType, wantCode)
		}
		if f.Type == protocol.ReplySubscribed {
			served++
		} else {
			busy++
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d subscribes served, %d busy", served, busy)
	if got := gauge(t, m, "gateway_subscriptions"); got != limit {
		t.Errorf("gateway_subscriptions = %v, want the limit %d", got, limit)
	}
	if p := c.Call(&protocol.Ping{ID: "still-there"}); p.Type != protocol.ReplyPong {
		t.Errorf("ping after the subscribes got %s %s", p.Type, p.Code)
	}
	// Leaving one conversation makes room for another.
	if f := c.Call(&protocol.Unsubscribe{ID: "u", Conversation: "c0"}); f.Type != protocol.ReplyUnsubscribed {
		t.Fatalf("unsubscribe got %s %s", f.Type, f.Code)
	}
	if f := c.Call(&protocol.Subscribe{ID: "room", Conversation: fmt.Sprintf("c%d", limit)}); f.Type != protocol.ReplySubscribed {
		t.Errorf("subscribe after an unsubscribe got %s %s (%s)", f.Type, f.Code, f.ErrorMessage())
	}
}
