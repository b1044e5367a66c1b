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
	"github.com/chatgateway/gateway/internal/spec"
	"github.com/chatgateway/gateway/protocol"
)

// request is one raw request for the guard tests: the Host, Origin and
// Content-Type headers are set only when not empty; upgrade makes it a
// WebSocket handshake.
type request struct {
	method, path, host, origin, contentType, body string
	upgrade                                       bool
}

// send makes req against base and returns the status, the error code of
// the answer ("" when the body is not an error) and its headers. An error
// status without a JSON body fails t.
func send(t *testing.T, base string, req request) (int, string, http.Header) {
	t.Helper()
	r, err := http.NewRequest(req.method, base+req.path, strings.NewReader(req.body))
	if err != nil {
		t.Fatal(err)
	}
	if req.host != "" {
		r.Host = req.host
	}
	for k, v := range map[string]string{"Origin": req.origin, "Content-Type": req.contentType} {
		if v != "" {
			r.Header.Set(k, v)
		}
	}
	if req.upgrade {
		r.Header.Set("Connection", "Upgrade")
		r.Header.Set("Upgrade", "websocket")
		r.Header.Set("Sec-WebSocket-Version", "13")
		r.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	}
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return resp.StatusCode, "", resp.Header
	}
	b, _ := io.ReadAll(resp.Body)
	conntest.CheckHTTP(t, spec.Exchange{Method: req.method, URL: base + req.path, RequestBody: []byte(req.body),
		Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), ResponseBody: b})
	var e struct{ Error *protocol.Error }
	code := ""
	if json.Unmarshal(b, &e) == nil && e.Error != nil {
		code = e.Error.Code
	}
	if resp.StatusCode >= 400 && (code == "" || resp.Header.Get("Content-Type") != "application/json") {
		t.Errorf("%s %s answered %d with Content-Type %q: %q, want a JSON error", req.method, req.path, resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	return resp.StatusCode, code, resp.Header
}

// TestCrossSiteWrites checks, with Go requests, what a page of another
// site could send through a browser: a state-changing request needs a
// JSON Content-Type and, when it carries an Origin, the gateway's own or
// an allowed one; so does an upgrade. On loopback the Host must be a
// loopback name or an allowed origin's (DNS rebinding).
func TestCrossSiteWrites(t *testing.T) {
	t.Parallel()
	s := conntest.Start(t, conntest.Config{
		Conn: conn.Options{OriginPatterns: []string{"app.example.com", "http://localhost:5*"}},
		API:  httpapi.Options{Loopback: true},
	})
	self := strings.TrimPrefix(s.URL, "http://")
	port := self[strings.LastIndex(self, ":")+1:]
	const jsonType = "application/json"
	tests := []struct {
		name   string
		req    request
		status int
		code   string
	}{
		{"create with JSON", request{method: "POST", path: "/v1/conversations", contentType: jsonType}, 201, ""},
		{"create with JSON and a charset", request{method: "POST", path: "/v1/conversations", contentType: "application/json; charset=utf-8"}, 201, ""},
		{"create without Content-Type", request{method: "POST", path: "/v1/conversations", body: "{}"}, 415, protocol.CodeUnsupportedMediaType},
		{"create as text/plain", request{method: "POST", path: "/v1/conversations", contentType: "text/plain", body: "{}"}, 415, protocol.CodeUnsupportedMediaType},
		{"create as a form", request{method: "POST", path: "/v1/conversations", contentType: "application/x-www-form-urlencoded", body: "a=b"}, 415, protocol.CodeUnsupportedMediaType},
		{"delete without Content-Type", request{method: "DELETE", path: "/v1/conversations/x"}, 415, protocol.CodeUnsupportedMediaType},
		{"create from the gateway's own origin", request{method: "POST", path: "/v1/conversations", contentType: jsonType, origin: "http://" + self}, 201, ""},
		{"create from an allowed origin", request{method: "POST", path: "/v1/conversations", contentType: jsonType, origin: "https://app.example.com"}, 201, ""},
		{"create from an allowed scheme://host pattern", request{method: "POST", path: "/v1/conversations", contentType: jsonType, origin: "http://localhost:5173"}, 201, ""},
		{"create from another origin", request{method: "POST", path: "/v1/conversations", contentType: jsonType, origin: "http://localhost:1"}, 403, protocol.CodeForbidden},
		{"create from origin null", request{method: "POST", path: "/v1/conversations", contentType: jsonType, origin: "null"}, 403, protocol.CodeForbidden},
		{"create from another origin, no Content-Type", request{method: "POST", path: "/v1/conversations", origin: "http://evil.example"}, 403, protocol.CodeForbidden},
		{"read from another origin", request{method: "GET", path: "/v1/conversations", origin: "http://evil.example"}, 200, ""},
		{"read as localhost", request{method: "GET", path: "/v1/conversations", host: "localhost:" + port}, 200, ""},
		{"read as a .localhost name", request{method: "GET", path: "/v1/conversations", host: "app.localhost:" + port}, 200, ""},
		{"read as [::1]", request{method: "GET", path: "/v1/conversations", host: "[::1]:" + port}, 200, ""},
		{"read as an allowed origin's host", request{method: "GET", path: "/v1/conversations", host: "app.example.com"}, 200, ""},
		{"read as a rebound name", request{method: "GET", path: "/v1/conversations", host: "evil.example:" + port}, 403, protocol.CodeForbidden},
		{"page as a rebound name", request{method: "GET", path: "/healthz", host: "evil.example:" + port}, 403, protocol.CodeForbidden},
		{"write as a rebound name", request{method: "POST", path: "/v1/conversations", host: "evil.example:" + port, origin: "http://evil.example:" + port, contentType: jsonType}, 403, protocol.CodeForbidden},
		{"upgrade", request{method: "GET", path: "/v1/ws", upgrade: true}, 101, ""},
		{"upgrade from an allowed origin", request{method: "GET", path: "/v1/ws", upgrade: true, origin: "https://app.example.com"}, 101, ""},
		{"upgrade from another origin", request{method: "GET", path: "/v1/ws", upgrade: true, origin: "http://evil.example"}, 403, protocol.CodeForbidden},
		{"upgrade as a rebound name", request{method: "GET", path: "/v1/ws", upgrade: true, host: "evil.example:" + port, origin: "http://evil.example:" + port}, 403, protocol.CodeForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if status, code, _ := send(t, s.URL, tt.req); status != tt.status || code != tt.code {
				t.Errorf("answered %d %q, want %d %q", status, code, tt.status, tt.code)
			}
		})
	}
}

// TestHostNotCheckedOffLoopback checks that a gateway told it does not
// listen on loopback takes any Host: it cannot know its public names.
func TestHostNotCheckedOffLoopback(t *testing.T) {
	t.Parallel()
	s := conntest.Start(t, conntest.Config{})
	if status, code, _ := send(t, s.URL, request{method: "GET", path: "/v1/conversations", host: "gateway.example.com"}); status != 200 {
		t.Errorf("answered %d %q, want 200", status, code)
	}
}

// TestUniformErrors checks that every refusal, whichever layer makes it,
// is a JSON error body with the status of its code.
func TestUniformErrors(t *testing.T) {
	t.Parallel()
	page := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "page") })
	s := conntest.Start(t, conntest.Config{API: httpapi.Options{Page: page}})
	const jsonType = "application/json"
	tests := []struct {
		name   string
		req    request
		status int
		code   string
		allow  string
	}{
		{"HEAD /healthz", request{method: "HEAD", path: "/healthz"}, 200, "", ""},
		{"HEAD /readyz", request{method: "HEAD", path: "/readyz"}, 200, "", ""},
		{"HEAD the page", request{method: "HEAD", path: "/"}, 200, "", ""},
		{"POST /healthz", request{method: "POST", path: "/healthz", contentType: jsonType}, 405, protocol.CodeMethodNotAllowed, "GET, HEAD"},
		{"POST /healthz without Content-Type", request{method: "POST", path: "/healthz"}, 405, protocol.CodeMethodNotAllowed, "GET, HEAD"},
		{"POST /v1/ws", request{method: "POST", path: "/v1/ws", contentType: jsonType}, 405, protocol.CodeMethodNotAllowed, "GET, HEAD"},
		{"PUT on a conversation", request{method: "PUT", path: "/v1/conversations/x", contentType: jsonType}, 405, protocol.CodeMethodNotAllowed, "GET, HEAD, DELETE"},
		{"GET on cancel", request{method: "GET", path: "/v1/conversations/x/cancel"}, 405, protocol.CodeMethodNotAllowed, "POST"},
		{"PUT on a conversation without Content-Type", request{method: "PUT", path: "/v1/conversations/x"}, 405, protocol.CodeMethodNotAllowed, "GET, HEAD, DELETE"},
		{"POST on events without Content-Type", request{method: "POST", path: "/v1/conversations/x/events"}, 405, protocol.CodeMethodNotAllowed, "GET, HEAD"},
		{"POST to an unknown conversation path without Content-Type", request{method: "POST", path: "/v1/conversations/x/nothing"}, 404, protocol.CodeNotFound, ""},
		{"POST to the page", request{method: "POST", path: "/", contentType: jsonType}, 404, protocol.CodeNotFound, ""},
		{"POST to an unknown API path", request{method: "POST", path: "/v1/nothing", contentType: jsonType}, 404, protocol.CodeNotFound, ""},
		{"GET /v1/ws without upgrade headers", request{method: "GET", path: "/v1/ws"}, 400, protocol.CodeBadRequest, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			status, code, header := send(t, s.URL, tt.req)
			if status != tt.status || code != tt.code {
				t.Errorf("answered %d %q, want %d %q", status, code, tt.status, tt.code)
			}
			if got := header.Get("Allow"); got != tt.allow {
				t.Errorf("Allow %q, want %q", got, tt.allow)
			}
		})
	}
}
