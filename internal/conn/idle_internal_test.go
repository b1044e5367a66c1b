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
	"github.com/chatgateway/gateway/internal/demo"
)

// TestIdleConnectionHasNoWriter checks that a connection with nothing to
// send keeps no writer goroutine and no queue buffer.
func TestIdleConnectionHasNoWriter(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.DiscardHandler)
	svc, err := convo.Open(filepath.Join(t.TempDir(), "gateway.db"), demo.New(demo.Options{}), convo.Config{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	h := NewHandler(svc, Options{Logger: log})
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		_ = h.Shutdown(context.Background())
		_ = svc.Close(context.Background())
	})

	ctx := context.Background()
	ws, _, err := websocket.Dial(ctx, strings.Replace(srv.URL, "http", "ws", 1), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	for range 3 {
		if err := ws.Write(ctx, websocket.MessageText, []byte(`{"type":"ping"}`)); err != nil {
			t.Fatal(err)
		}
		if _, _, err := ws.Read(ctx); err != nil {
			t.Fatal(err)
		}
	}

	h.mu.Lock()
	var c *conn
	for c = range h.conns {
	}
	h.mu.Unlock()
	c.writer.Wait() // the writer of the last pong exits on its own
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.writing || c.queue != nil {
		t.Errorf("idle connection: writing=%v, queue=%v", c.writing, c.queue)
	}
}
