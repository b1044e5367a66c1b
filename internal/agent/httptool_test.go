package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatgateway/gateway/internal/metrics"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// httpAgent is a registry with one agent "a" whose only tool "t" POSTs to
// url with headers and timeout.
func httpAgent(t *testing.T, url string, headers map[string]string, timeout time.Duration, opts Options) *Agent {
	t.Helper()
	cfg := &Config{
		Tools:  []Tool{{Name: "t", HTTP: &HTTPTool{URL: url, Headers: headers}, Timeout: Duration(timeout)}},
		Agents: []AgentConfig{{Name: "a", Tools: []string{"t"}}},
	}
	r, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	a, ok := r.Agent("a")
	if !ok {
		t.Fatal("no agent a")
	}
	return a
}

var testCall = CallInfo{User: "u1", Conversation: "c1", Call: "tooluse_1"}

func TestHTTPToolRequest(t *testing.T) {
	t.Parallel()
	type seen struct {
		method string
		header http.Header
		body   string
	}
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.Header.Clone(), string(body)}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		io.WriteString(w, `{"order": {"id": "42", "state": "shipped"}}`)
	}))
	t.Cleanup(srv.Close)
	a := httpAgent(t, srv.URL, map[string]string{"Authorization": "Bearer tok"}, 0, Options{})
	res, err := a.Call(context.Background(), "t", testCall, json.RawMessage(`{"id": "42"}`), nil)
	if err != nil || res.Error != "" {
		t.Fatalf("Call = %+v, %v", res, err)
	}
	if string(res.Output) != `{"order": {"id": "42", "state": "shipped"}}` {
		t.Errorf("output %s", res.Output)
	}
	s := <-got
	if s.method != http.MethodPost || s.body != `{"id": "42"}` {
		t.Errorf("request %s with body %q", s.method, s.body)
	}
	for k, want := range map[string]string{"Content-Type": "application/json", "Authorization": "Bearer tok",
		"X-Gateway-User": "u1", "X-Gateway-Conversation": "c1", "X-Gateway-Call": "tooluse_1"} {
		if v := s.header.Get(k); v != want {
			t.Errorf("header %s = %q, want %q", k, v, want)
		}
	}
	// No input is an empty object.
	if _, err := a.Call(context.Background(), "t", testCall, nil, nil); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s.body != "{}" {
		t.Errorf("empty input sent as %q", s.body)
	}
}

func TestHTTPToolResults(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		status      int
		contentType string
		body        string
		output      string // want Output
		err         string // want Error
	}{
		{name: "json", status: 200, contentType: "application/json", body: `[1, 2]`, output: `[1, 2]`},
		{name: "json without a content type", status: 201, body: `{"a": 1}`, output: `{"a": 1}`},
		{name: "json sent as text", status: 200, contentType: "text/plain", body: `42`, output: `42`},
		{name: "text", status: 200, contentType: "text/plain", body: "hello\n", output: `{"text":"hello\n"}`},
		{name: "invalid json", status: 200, contentType: "application/json", body: `{"a":`, output: `{"text":"{\"a\":"}`},
		{name: "empty", status: 204, output: `{"text":""}`},
		{name: "server error", status: 503, body: "down for maintenance\n", err: "HTTP 503 Service Unavailable: down for maintenance"},
		{name: "not found without a body", status: 404, err: "HTTP 404 Not Found"},
		{name: "redirect is not followed", status: 302, err: "HTTP 302 Found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				// nil keeps the server from sniffing a content type.
				w.Header()["Content-Type"] = nil
				if tc.contentType != "" {
					w.Header().Set("Content-Type", tc.contentType)
				}
				if tc.status == 302 {
					w.Header().Set("Location", "/elsewhere")
				}
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			}))
			t.Cleanup(srv.Close)
			a := httpAgent(t, srv.URL, nil, 0, Options{})
			res, err := a.Call(context.Background(), "t", testCall, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if string(res.Output) != tc.output || res.Error != tc.err {
				t.Errorf("got output %s, error %q; want %s, %q", res.Output, res.Error, tc.output, tc.err)
			}
		})
	}
}

func TestHTTPToolConnectionError(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	a := httpAgent(t, url, nil, 0, Options{})
	res, err := a.Call(context.Background(), "t", testCall, nil, nil)
	if err != nil || !strings.HasPrefix(res.Error, "POST "+url+": ") || Status(res, err) != StatusError {
		t.Fatalf("Call = %+v, %v; want an error result naming the URL", res, err)
	}
}

// blockingServer is an HTTP tool that answers nothing until its request's
// context ends; started says a request arrived, ended that its context
// ended.
func blockingServer(t *testing.T) (url string, started, ended chan struct{}) {
	started, ended = make(chan struct{}, 1), make(chan struct{}, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The server notices a closed connection only once the body is read.
		io.ReadAll(r.Body)
		started <- struct{}{}
		<-r.Context().Done()
		ended <- struct{}{}
	}))
	t.Cleanup(srv.Close)
	return srv.URL, started, ended
}

func TestHTTPToolCancel(t *testing.T) {
	t.Parallel()
	url, started, ended := blockingServer(t)
	a := httpAgent(t, url, nil, 0, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-started
		cancel()
	}()
	res, err := a.Call(ctx, "t", testCall, nil, nil)
	if !errors.Is(err, context.Canceled) || Status(res, err) != StatusCancelled {
		t.Fatalf("Call = %+v, %v; want cancelled", res, err)
	}
	<-ended // the server saw its request's context end: the request was aborted
}

func TestHTTPToolTimeout(t *testing.T) {
	t.Parallel()
	url, started, ended := blockingServer(t)
	a := httpAgent(t, url, nil, 50*time.Millisecond, Options{})
	res, err := a.Call(context.Background(), "t", testCall, nil, nil)
	if !errors.Is(err, ErrTimeout) || Status(res, err) != StatusTimeout {
		t.Fatalf("Call = %+v, %v; want a timeout", res, err)
	}
	// On a busy machine the timeout can end the call before the server
	// saw it; if it did see it, it must see the request aborted.
	select {
	case <-started:
		<-ended
	default:
	}
}

func TestHTTPToolOutputCap(t *testing.T) {
	t.Parallel()
	const max = 2048
	for _, tc := range []struct {
		name, contentType, body string
	}{
		{"json", "application/json", `{"items": [` + strings.Repeat(`"item", `, 1000) + `"end"]}`},
		{"text", "text/plain", strings.Repeat("line\twith \"quotes\" and é\n", 500)},
		{"json just over", "application/json", `"` + strings.Repeat("x", max-1) + `"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", tc.contentType)
				io.WriteString(w, tc.body)
			}))
			t.Cleanup(srv.Close)
			a := httpAgent(t, srv.URL, nil, 0, Options{MaxOutputBytes: max})
			res, err := a.Call(context.Background(), "t", testCall, nil, nil)
			if err != nil || res.Error != "" {
				t.Fatalf("Call = %+v, %v", res, err)
			}
			var out struct {
				Truncated bool
				Note      string
				Text      string
			}
			if len(res.Output) > max || json.Unmarshal(res.Output, &out) != nil {
				t.Fatalf("output of %d bytes, over %d or not JSON: %.100s", len(res.Output), max, res.Output)
			}
			if !out.Truncated || !strings.Contains(out.Note, "cut") || !strings.HasPrefix(tc.body, out.Text) || len(out.Text) < max/2 {
				t.Errorf("output does not say it was cut or lost its start: %+v", out)
			}
		})
	}
}

func TestCallRefusals(t *testing.T) {
	t.Parallel()
	cfg := &Config{
		Tools:  []Tool{{Name: "c", Client: &ClientTool{}}, {Name: "h", HTTP: &HTTPTool{URL: "http://127.0.0.1:1/"}}},
		Agents: []AgentConfig{{Name: "a", Tools: []string{"c", "h"}}},
	}
	r, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := r.Agent("a")
	for _, tc := range []struct{ tool, input, want string }{
		{"nope", `{}`, `agent a has no tool "nope"`},
		{"c", `{}`, `tool "c" is answered by a client, not run by the gateway`},
		{"h", `[1]`, "the tool input is not a JSON object"},
		{"h", `{"a":`, "the tool input is not a JSON object"},
		{"h", `null`, "the tool input is not a JSON object"},
	} {
		res, err := a.Call(context.Background(), tc.tool, testCall, json.RawMessage(tc.input), nil)
		if err != nil || res.Error != tc.want || res.Output != nil {
			t.Errorf("Call(%s, %s) = %+v, %v; want error %q", tc.tool, tc.input, res, err, tc.want)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestCallMetricsAndLog(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Gateway-Call") == "bad" {
			w.WriteHeader(500)
		}
	}))
	t.Cleanup(srv.Close)
	m := metrics.New()
	var logs syncBuffer
	a := httpAgent(t, srv.URL, nil, 0, Options{Metrics: m, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	ctx := context.Background()
	secret := json.RawMessage(`{"password": "hunter2"}`)
	a.Call(ctx, "t", CallInfo{Call: "good"}, secret, nil)
	a.Call(ctx, "t", CallInfo{Call: "good"}, secret, nil)
	a.Call(ctx, "t", CallInfo{Call: "bad"}, secret, nil)
	a.Call(ctx, "made_up", CallInfo{Call: "x"}, secret, nil)
	for _, tc := range []struct {
		tool, status string
		want         float64
	}{{"t", "ok", 2}, {"t", "error", 1}, {"unknown", "error", 1}} {
		if got := testutil.ToFloat64(m.ToolCalls.WithLabelValues(tc.tool, tc.status)); got != tc.want {
			t.Errorf("tool calls {%s, %s} = %v, want %v", tc.tool, tc.status, got, tc.want)
		}
	}
	if n := testutil.CollectAndCount(m.ToolCallSeconds); n != 2 {
		t.Errorf("duration series %d, want 2 (t and unknown)", n)
	}
	text := logs.String()
	if lines := strings.Count(text, "msg=\"tool call\""); lines != 4 {
		t.Errorf("%d log lines for 4 calls:\n%s", lines, text)
	}
	if strings.Contains(text, "hunter2") {
		t.Errorf("the log holds a call's input:\n%s", text)
	}
	if !strings.Contains(text, "tool=t status=error") || !strings.Contains(text, "HTTP 500") {
		t.Errorf("the log does not show the failed call:\n%s", text)
	}
}
