package conn_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/chatgateway/gateway/internal/conn"
	"github.com/chatgateway/gateway/internal/conn/conntest"
	"github.com/chatgateway/gateway/protocol"
)

// TestKeepalive pings two clients: the one that answers stays connected,
// the one that does not is disconnected.
func TestKeepalive(t *testing.T) {
	t.Parallel()
	s := conntest.Start(t, conntest.Config{Conn: conn.Options{PingInterval: 20 * time.Millisecond, WriteTimeout: time.Second}})
	dial := func(pong bool, pings chan<- struct{}) *websocket.Conn {
		ctx := conntest.Deadline(t)
		ws, _, err := websocket.Dial(ctx, strings.Replace(s.URL, "http", "ws", 1)+"/v1/ws", &websocket.DialOptions{
			OnPingReceived: func(context.Context, []byte) bool {
				select {
				case pings <- struct{}{}:
				default:
				}
				return pong
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ws.CloseNow() })
		return ws
	}

	// The silent client reads (so it sees the pings) but never answers.
	silent := dial(false, make(chan struct{}, 1))
	if _, _, err := silent.Read(conntest.Deadline(t)); err == nil {
		t.Fatal("the silent client got a frame, want the connection dropped")
	}

	// The answering client sees several pings and still gets a pong.
	pings := make(chan struct{}, 1)
	alive := dial(true, pings)
	read := make(chan error, 1)
	go func() {
		_, b, err := alive.Read(conntest.Deadline(t))
		if err == nil && !strings.Contains(string(b), `"pong"`) {
			err = fmt.Errorf("got %s, want a pong", b)
		}
		read <- err
	}()
	for range 3 {
		<-pings
	}
	b, _ := protocol.EncodeRequest(&protocol.Ping{ID: "p"})
	if err := alive.Write(conntest.Deadline(t), websocket.MessageText, b); err != nil {
		t.Fatal(err)
	}
	if err := <-read; err != nil {
		t.Fatalf("the answering client was disconnected: %v", err)
	}
}
