package loadtest

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/chatgateway/gateway/protocol"
)

// dialParallel bounds the dials in flight, so that the listener's accept
// backlog does not overflow.
const dialParallel = 64

// client is one load-generating WebSocket connection. It lives until its
// dial context ends (or closeAll): that context bounds every read and
// write, without the cost of a context per call.
type client struct {
	ws *websocket.Conn
	// ctx is the dial context: once it is done, reads and writes fail
	// (see failed).
	ctx context.Context
	// buf holds the message being read; it is reused for every message,
	// so a client allocates nothing per message once it has grown.
	buf bytes.Buffer
}

func dial(ctx context.Context, url string) (*client, error) {
	ws, _, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		return nil, fmt.Errorf("loadtest: dial %s: %w", url, err)
	}
	ws.SetReadLimit(1 << 20)
	// Reads and writes take a context that is never done (coder/websocket
	// then arms no timer per call); this one close ends them instead.
	context.AfterFunc(ctx, func() { _ = ws.CloseNow() })
	return &client{ws: ws, ctx: ctx}, nil
}

// failed returns err, or the dial context's error once it is done: the
// step's time cap closed the connection.
func (c *client) failed(err error) error {
	if c.ctx.Err() != nil {
		return fmt.Errorf("loadtest: %w", c.ctx.Err())
	}
	return err
}

// dialAll opens n connections to url, dialParallel at a time, and closes
// them all if one fails.
func dialAll(ctx context.Context, url string, n int) ([]*client, error) {
	clients := make([]*client, n)
	errs := make([]error, n)
	sem := make(chan struct{}, dialParallel)
	var wg sync.WaitGroup
	for i := range clients {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			clients[i], errs[i] = dial(ctx, url)
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			closeAll(clients)
			return nil, err
		}
	}
	return clients, nil
}

func closeAll(clients []*client) {
	for _, c := range clients {
		if c != nil {
			_ = c.ws.Close(websocket.StatusNormalClosure, "")
		}
	}
}

func (c *client) request(req protocol.Request) error {
	b, err := protocol.EncodeRequest(req)
	if err != nil {
		return fmt.Errorf("loadtest: encode %s: %w", req.Type(), err)
	}
	if err := c.ws.Write(context.Background(), websocket.MessageText, b); err != nil {
		return c.failed(fmt.Errorf("loadtest: write %s: %w", req.Type(), err))
	}
	return nil
}

// read returns the next frame and the time it was read off the socket. An
// error frame is returned as an error.
func (c *client) read() (frame, time.Time, error) {
	var f frame
	_, r, err := c.ws.Reader(context.Background())
	if err == nil {
		c.buf.Reset()
		_, err = c.buf.ReadFrom(r)
	}
	at := time.Now()
	if err != nil {
		return f, at, c.failed(fmt.Errorf("loadtest: read: %w", err))
	}
	if err := decodeFrame(c.buf.Bytes(), &f); err != nil {
		return f, at, fmt.Errorf("loadtest: decode %.200s: %w", c.buf.Bytes(), err)
	}
	if f.typ == protocol.ReplyError {
		return f, at, fmt.Errorf("loadtest: the gateway answered %s: %s", f.code, f.message)
	}
	return f, at, nil
}

// readUntil reads frames until one of type typ and returns it, handing
// each frame read before it to each (when not nil).
func (c *client) readUntil(typ string, each func(*frame, time.Time)) (frame, error) {
	for {
		f, at, err := c.read()
		if err != nil {
			return f, err
		}
		if f.typ == typ {
			return f, nil
		}
		if each != nil {
			each(&f, at)
		}
	}
}
