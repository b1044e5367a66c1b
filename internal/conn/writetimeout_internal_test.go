package conn

import (
	"bytes"
	"testing"
	"time"

	"github.com/chatgateway/gateway/internal/convo"
)

// TestWriteTimeout queues more than the socket buffers hold: a client that
// reads gets every frame over many armed and stopped write timers and stays
// connected, and one that does not read is disconnected once a write
// outlasts WriteTimeout.
func TestWriteTimeout(t *testing.T) {
	t.Parallel()
	const frames = 64
	for _, tc := range []struct {
		name  string
		size  int // 64 frames of 1 MiB outgrow the loopback socket buffers
		reads bool
	}{
		{"reading client gets every frame", 256 << 10, true},
		{"stalled client is disconnected", 1 << 20, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ws, c := serveOne(t, Options{WriteTimeout: time.Second, SendQueueBytes: 128 << 20})
			ws.SetReadLimit(int64(tc.size))
			frame := bytes.Repeat([]byte("x"), tc.size)
			for range frames {
				if !c.Send(convo.Frame{Data: frame}) {
					t.Fatal("Send refused a frame")
				}
			}
			if !tc.reads {
				// The timer closes the socket, so reading ends; the test's
				// own timeout guards against a write that never ends.
				<-c.ctx.Done()
				c.mu.Lock()
				defer c.mu.Unlock()
				if c.ended != endWriteTimeout {
					t.Errorf("ended as %q, want %q", c.ended, endWriteTimeout)
				}
				return
			}
			for i := range frames {
				if _, b, err := ws.Read(t.Context()); err != nil || len(b) != tc.size {
					t.Fatalf("frame %d: %d bytes, %v", i, len(b), err)
				}
			}
			ping(t, ws)
		})
	}
}
