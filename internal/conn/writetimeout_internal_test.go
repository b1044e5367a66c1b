package conn

import (
	"bytes"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/pipenet"
)

// TestWriteTimeout runs in a synctest bubble over an in-memory socket,
// whose writes wait until the client reads: a client that reads gets
// every frame over many armed and stopped write timers and stays
// connected however long it idles after, and one that does not read is
// disconnected exactly WriteTimeout after the write began. The bubble's
// clock moves only while every goroutine waits, so a loaded machine
// cannot make a reading client look stalled.
func TestWriteTimeout(t *testing.T) {
	t.Parallel()
	const frames = 64
	opts := Options{WriteTimeout: time.Second, PingInterval: time.Hour, SendQueueBytes: 128 << 20}
	for _, tc := range []struct {
		name  string
		size  int // 16 KiB frames go in batches of four
		reads bool
	}{
		{"reading client gets every frame", 16 << 10, true},
		{"stalled client is disconnected", 16 << 10, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				ws, c := servePipe(t, opts, nil)
				ws.SetReadLimit(int64(tc.size))
				frame := bytes.Repeat([]byte("x"), tc.size)
				start := time.Now()
				for range frames {
					if !c.Send(convo.Frame{Data: frame}) {
						t.Fatal("Send refused a frame")
					}
				}
				if !tc.reads {
					// The timer closes the socket, so reading ends.
					<-c.ctx.Done()
					if waited := time.Since(start); waited != opts.WriteTimeout {
						t.Errorf("disconnected after %v, want %v", waited, opts.WriteTimeout)
					}
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
				// A timer left armed by the last write would fire now.
				time.Sleep(10 * opts.WriteTimeout)
				ping(t, ws)
				c.mu.Lock()
				defer c.mu.Unlock()
				if c.ended != "" {
					t.Errorf("a reading client's connection ended as %q", c.ended)
				}
			})
		})
	}
}

// servePipe is serveOneDial over net.Pipe instead of TCP (see pipenet),
// for a synctest bubble, whose clock moves on while the client does not
// read.
func servePipe(t *testing.T, opts Options, dopts *websocket.DialOptions) (*websocket.Conn, *conn) {
	t.Helper()
	h := newTestHandler(t, opts)
	ln := pipenet.Listen()
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	tr := &http.Transport{DialContext: ln.Dial}
	t.Cleanup(tr.CloseIdleConnections)
	if dopts == nil {
		dopts = &websocket.DialOptions{}
	}
	dopts.HTTPClient = &http.Client{Transport: tr}
	ws, _, err := websocket.Dial(t.Context(), "ws://pipe/", dopts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ws.CloseNow() })
	return ws, registered(t, h, ws)
}
