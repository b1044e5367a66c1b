package conn

import (
	"bytes"
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/metrics"
)

// TestQueueBytes checks the byte bound of the outgoing queue: a live
// frame that would overflow it makes a slow consumer, and a replay's
// frame waits until it fits in half of it, unless the queue is empty.
func TestQueueBytes(t *testing.T) {
	t.Parallel()
	_, c := serveOne(t, Options{SendQueueBytes: 1000})
	hundred := bytes.Repeat([]byte("x"), 100)
	cancelled, cancel := context.WithCancel(t.Context())
	cancel()

	// With the writer stalled, queued frames stay queued.
	stallWriter(c)
	for i := range 5 {
		if !c.Send(convo.Frame{Data: hundred}) {
			t.Fatalf("frame %d refused", i)
		}
	}
	if err := c.pushWait(cancelled, convo.Frame{Data: hundred}); !errors.Is(err, context.Canceled) {
		t.Errorf("a replay frame beyond half the bytes: %v, want it to wait", err)
	}
	for i := range 5 {
		if !c.Send(convo.Frame{Data: hundred}) {
			t.Fatalf("frame %d of the second half refused", i)
		}
	}
	c.mu.Lock()
	queued := c.queued
	c.mu.Unlock()
	if queued != 1000 {
		t.Errorf("%d bytes queued, want 1000", queued)
	}
	if c.Send(convo.Frame{Data: []byte("x")}) {
		t.Fatal("a frame beyond the byte bound was queued")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeCode != websocket.StatusPolicyViolation || c.queued != 0 || c.ended != endSlowConsumer {
		t.Errorf("close code %v, %d bytes queued, ended %q; want 1008 slow consumer with the queue dropped", c.closeCode, c.queued, c.ended)
	}
}

// TestLargeFrameThroughAnEmptyQueue checks that a frame larger than the
// byte bound still reaches a client that reads, live or replayed.
func TestLargeFrameThroughAnEmptyQueue(t *testing.T) {
	t.Parallel()
	ws, c := serveOne(t, Options{SendQueueBytes: 1000})
	big := bytes.Repeat([]byte("y"), 5000)
	if !c.Send(convo.Frame{Data: big}) {
		t.Fatal("a large live frame was refused by an empty queue")
	}
	if _, b, err := ws.Read(t.Context()); err != nil || len(b) != len(big) {
		t.Fatalf("read %d bytes, %v", len(b), err)
	}
	if err := c.pushWait(t.Context(), convo.Frame{Data: big}); err != nil {
		t.Fatalf("a large replay frame: %v", err)
	}
	if _, b, err := ws.Read(t.Context()); err != nil || len(b) != len(big) {
		t.Fatalf("read %d bytes, %v", len(b), err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.queued != 0 {
		t.Errorf("%d bytes still counted after the queue drained", c.queued)
	}
}

// TestCloseReasons ends a connection in each way the gateway knows and
// checks that gateway_connection_closes_total counts it under its reason.
func TestCloseReasons(t *testing.T) {
	t.Parallel()
	// The ping timeout's client answers keepalive pings until its
	// connection is registered, then stops; a generous WriteTimeout keeps
	// a loaded machine's stall during registration from ending it early.
	var deaf atomic.Bool
	tests := []struct {
		name   string
		opts   Options
		dial   *websocket.DialOptions
		end    func(t *testing.T, ws *websocket.Conn, c *conn)
		reason string
	}{
		{"client close", Options{}, nil, func(t *testing.T, ws *websocket.Conn, _ *conn) {
			_ = ws.Close(websocket.StatusNormalClosure, "bye")
		}, endClientClose},
		{"client gone", Options{}, nil, func(t *testing.T, ws *websocket.Conn, _ *conn) {
			_ = ws.CloseNow()
		}, endClientGone},
		{"frame too big", Options{MaxFrameBytes: 100}, nil, func(t *testing.T, ws *websocket.Conn, _ *conn) {
			_ = ws.Write(t.Context(), websocket.MessageText, bytes.Repeat([]byte(" "), 200))
			readToEnd(ws)
		}, endTooBig},
		{"binary frame", Options{}, nil, func(t *testing.T, ws *websocket.Conn, _ *conn) {
			_ = ws.Write(t.Context(), websocket.MessageBinary, []byte("{}"))
			readToEnd(ws)
		}, endBinary},
		{"slow consumer", Options{SendQueue: 2}, nil, func(t *testing.T, ws *websocket.Conn, c *conn) {
			// Queued at once, before the writer can take any.
			c.mu.Lock()
			for range 3 {
				c.pushLocked(convo.Frame{Data: []byte("{}")})
			}
			c.mu.Unlock()
			readToEnd(ws)
		}, endSlowConsumer},
		{"write timeout", Options{WriteTimeout: 100 * time.Millisecond, SendQueueBytes: 128 << 20}, nil, func(t *testing.T, ws *websocket.Conn, c *conn) {
			// More than the socket buffers hold, to a client that does
			// not read.
			frame := bytes.Repeat([]byte("z"), 1<<20)
			for range 64 {
				c.Send(convo.Frame{Data: frame})
			}
		}, endWriteTimeout},
		{"ping timeout", Options{PingInterval: 10 * time.Millisecond, WriteTimeout: time.Second},
			&websocket.DialOptions{OnPingReceived: func(context.Context, []byte) bool { return !deaf.Load() }},
			func(t *testing.T, ws *websocket.Conn, _ *conn) {
				deaf.Store(true)
				readToEnd(ws)
			}, endPingTimeout},
		{"shutdown", Options{}, nil, func(t *testing.T, ws *websocket.Conn, c *conn) {
			go readToEnd(ws) // answers the close handshake
			if err := c.h.Shutdown(t.Context()); err != nil {
				t.Error(err)
			}
		}, endShutdown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := metrics.New()
			tt.opts.Metrics = m
			ws, c := serveOneDial(t, tt.opts, tt.dial)
			tt.end(t, ws, c)
			c.h.live.Wait()
			if got := testutil.CollectAndCount(m.ConnectionCloses); got != 1 {
				t.Errorf("%d reasons counted, want 1", got)
			}
			if got := testutil.ToFloat64(m.ConnectionCloses.WithLabelValues(tt.reason)); got != 1 {
				t.Errorf("closes with reason %q: %v, want 1 (the connection ended as %q)", tt.reason, got, c.ended)
			}
		})
	}
}

// readToEnd reads ws until the connection ends.
func readToEnd(ws *websocket.Conn) {
	for {
		if _, _, err := ws.Read(context.Background()); err != nil {
			return
		}
	}
}

// stallWriter keeps a writer from starting, as one blocked on a socket
// that does not drain would: queued frames stay queued.
func stallWriter(c *conn) {
	c.mu.Lock()
	c.writing = true
	c.mu.Unlock()
}
