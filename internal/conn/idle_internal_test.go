package conn

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coder/websocket"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/convo/boltlog"
	"github.com/chatgateway/gateway/internal/demo"
)

// serveOne starts a Handler with opts, dials it, and returns the client
// and the server side of that one connection.
func serveOne(t testing.TB, opts Options) (*websocket.Conn, *conn) {
	t.Helper()
	return serveOneDial(t, opts, nil)
}

// serveOneDial is serveOne with the client dialled with dopts.
func serveOneDial(t testing.TB, opts Options, dopts *websocket.DialOptions) (*websocket.Conn, *conn) {
	t.Helper()
	h := newTestHandler(t, opts)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	ws, _, err := websocket.Dial(t.Context(), strings.Replace(srv.URL, "http", "ws", 1), dopts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ws.CloseNow() })
	return ws, registered(t, h, ws)
}

// newTestHandler returns a Handler with opts on a fresh service, which
// the end of the test shuts down.
func newTestHandler(t testing.TB, opts Options) *Handler {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	svc, err := boltlog.OpenService(filepath.Join(t.TempDir(), "gateway.db"), boltlog.Options{}, demo.New(demo.Options{}), convo.Config{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	opts.Logger = log
	h := NewHandler(svc, opts)
	t.Cleanup(func() {
		_ = h.Shutdown(context.Background())
		_ = svc.Close(context.Background())
	})
	return h
}

// registered returns the server side of h's one connection, whose client
// is ws.
func registered(t testing.TB, h *Handler, ws *websocket.Conn) *conn {
	t.Helper()
	// The upgrade has answered, but the connection may not be registered
	// yet: a ping's pong proves it is.
	ping(t, ws)
	h.mu.Lock()
	defer h.mu.Unlock()
	for c := range h.conns {
		return c
	}
	t.Fatal("no connection registered")
	return nil
}

// ping sends a ping request on ws and reads its reply.
func ping(t testing.TB, ws *websocket.Conn) {
	t.Helper()
	if err := ws.Write(t.Context(), websocket.MessageText, []byte(`{"type":"ping"}`)); err != nil {
		t.Fatal(err)
	}
	if _, b, err := ws.Read(t.Context()); err != nil || !strings.Contains(string(b), `"pong"`) {
		t.Fatalf("ping: got %s, %v; want a pong", b, err)
	}
}

// TestIdleConnectionHasNoWriter checks that a connection with nothing to
// send keeps no writer goroutine and no queue buffer.
func TestIdleConnectionHasNoWriter(t *testing.T) {
	t.Parallel()
	ws, c := serveOne(t, Options{})
	for range 2 {
		ping(t, ws)
	}
	c.writer.Wait() // the writer of the last pong exits on its own
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.writing || c.queue != nil || c.queueArray != nil {
		t.Errorf("idle connection: writing=%v, queue=%v, queue array %p", c.writing, c.queue, c.queueArray)
	}
}
