package conntest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/coder/websocket"
)

// errorsOf is a testing.TB that keeps the errors reported to it.
type errorsOf struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

func (e *errorsOf) Error(args ...any) { e.add(fmt.Sprint(args...)) }

func (e *errorsOf) Errorf(format string, args ...any) { e.add(fmt.Sprintf(format, args...)) }

func (e *errorsOf) add(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.errs = append(e.errs, s)
}

// has reports whether an error mentions every one of words.
func (e *errorsOf) has(words ...string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, err := range e.errs {
		if containsAll(err, words) {
			return true
		}
	}
	return false
}

func containsAll(s string, words []string) bool {
	for _, w := range words {
		if !strings.Contains(s, w) {
			return false
		}
	}
	return true
}

// rawDial connects a WebSocket client that is not a Client (nothing of
// it checks frames) to url.
func rawDial(t *testing.T, url string) *websocket.Conn {
	t.Helper()
	ws, _, err := websocket.Dial(Deadline(t), strings.Replace(url, "http", "ws", 1)+"/v1/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ws.CloseNow() })
	return ws
}

// TestGatewayTapChecksEveryFrame serves a WebSocket that answers a
// request with a frame that has a field protocol/asyncapi.yaml lacks,
// behind the tap of Start, on a connection that only a plain WebSocket
// client (no Client, nothing checking) reads: the check fails, on both
// the gateway's frame and the client's off-spec request (an id that is
// not a string; an unknown field would be within the spec, which says
// the gateway ignores it).
func TestGatewayTapChecksEveryFrame(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		ctx := r.Context()
		for {
			if _, _, err := ws.Read(ctx); err != nil {
				return
			}
			// Long enough to need a 16-bit length.
			reply := `{"type":"pong","id":"r1","unknown_field":"` + strings.Repeat("x", 200) + `"}`
			if ws.Write(ctx, websocket.MessageText, []byte(reply)) != nil {
				return
			}
		}
	}))
	rec, _ := record(srv)
	srv.Start()
	defer srv.Close()

	// An HTTP request on a connection first: the tap skips it.
	resp, err := http.Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	ws := rawDial(t, srv.URL)
	ctx := Deadline(t)
	if err := ws.Write(ctx, websocket.MessageText, []byte(`{"type":"ping","id":{"off_spec":1}}`)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ws.Read(ctx); err != nil {
		t.Fatal(err)
	}
	// A Client checks its own requests: the tap leaves them alone.
	c := Dial(t, srv.URL, "/v1/ws")
	c.Write(websocket.MessageText, []byte(`{"type":"ping","id":{"client_bad_on_purpose":1}}`))
	if _, _, err := c.WS.Read(ctx); err != nil {
		t.Fatal(err)
	}
	_ = ws.Close(websocket.StatusNormalClosure, "")
	_ = c.WS.Close(websocket.StatusNormalClosure, "")

	got := &errorsOf{TB: t}
	rec.check(got)
	if !got.has("gateway", "pong", "unknown_field") {
		t.Errorf("the gateway's frame with a field the spec lacks passed the check; errors: %q", got.errs)
	}
	if !got.has("client", "ping", "off_spec") {
		t.Errorf("a plain client's off-spec request passed the check; errors: %q", got.errs)
	}
	if got.has("client_bad_on_purpose") {
		t.Errorf("a Client's own request was checked by the tap too: %q", got.errs)
	}
}

// TestStartTapsItsConnections sends an off-spec request to a test
// gateway from a plain WebSocket client: Close reports it.
func TestStartTapsItsConnections(t *testing.T) {
	t.Parallel()
	s := Start(t, Config{})
	ws := rawDial(t, s.URL)
	ctx := Deadline(t)
	if err := ws.Write(ctx, websocket.MessageText, []byte(`{"type":"ping","id":{"off_spec":1}}`)); err != nil {
		t.Fatal(err)
	}
	// The gateway answers the ping (an error: its id is not a string),
	// and its answer passes.
	if _, _, err := ws.Read(ctx); err != nil {
		t.Fatal(err)
	}
	_ = ws.Close(websocket.StatusNormalClosure, "")
	got := &errorsOf{TB: t}
	s.Close(got)
	if !got.has("client", "ping", "off_spec") || len(got.errs) != 1 {
		t.Errorf("Close reported %q, want one error about the off-spec ping", got.errs)
	}
}

// TestClientTapReadsGoClientFrames checks the client side's tap
// (RecordedClient) on the same off-spec exchange.
func TestClientTapReadsGoClientFrames(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer ws.CloseNow()
		if _, _, err := ws.Read(r.Context()); err == nil {
			_ = ws.Write(r.Context(), websocket.MessageText, []byte(`{"type":"pong","id":"r1","unknown_field":1}`))
		}
		_, _, _ = ws.Read(r.Context())
	}))
	defer srv.Close()
	got := &errorsOf{TB: t}
	t.Cleanup(func() {
		// After RecordedClient's check: cleanups run last first.
		if !got.has("gateway", "pong", "unknown_field") || !got.has("client", "ping", "off_spec") {
			t.Errorf("the client's tap let off-spec frames pass; errors: %q", got.errs)
		}
	})
	hc := RecordedClient(got, nil)
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, strings.Replace(srv.URL, "http", "ws", 1), &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	if err := ws.Write(ctx, websocket.MessageText, []byte(`{"type":"ping","id":{"off_spec":1}}`)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := ws.Read(ctx); err != nil {
		t.Fatal(err)
	}
	_ = ws.Close(websocket.StatusNormalClosure, "")
}

// TestGatewayChecksHTTP serves, behind the HTTP check of Start, an
// answer with a field protocol/openapi.yaml lacks, to a plain request
// (not Do): the check fails, and names it.
func TestGatewayChecksHTTP(t *testing.T) {
	t.Parallel()
	rec := &recording{}
	srv := httptest.NewServer(checkedHandler{rec: rec, h: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"provider":"demo","default_model":"m","version":"dev","auth":"none","unknown_field":1}`)
	})})
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v1/info")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	got := &errorsOf{TB: t}
	rec.check(got)
	if !got.has("/v1/info", "unknown_field") {
		t.Errorf("an answer with a field the spec lacks passed the check; errors: %q", got.errs)
	}
}
