// Package cork lets a WebSocket server write several messages to a
// client with one system call. The websocket library flushes every
// message to its socket; a Conn under it keeps those writes in memory
// while corked and writes them all when uncorked, which saves a system
// call and a wakeup of the client per message when several are due at
// once.
package cork

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"

	"github.com/coder/websocket"
)

// Conn is the socket under a WebSocket. Its zero value is not usable: a
// Response makes one when the library hijacks the connection.
type Conn struct {
	net.Conn
	// mu orders the library's writes (data from the writer goroutine,
	// pongs from the reader, pings from keepalive) with Uncork's.
	mu     sync.Mutex
	corked bool
	// buf holds the writes kept since Cork, in a buffer from bufferPool;
	// it is nil while uncorked.
	buf *[]byte
}

// maxPooledBuffer bounds the buffers that go back to bufferPool: one
// grown past it for a large batch (a replay's) is dropped after its
// write, as every buffer once was.
const maxPooledBuffer = 16 << 10

// bufferPool lends buffers to Conns from Cork to Uncork only, so that a
// corked write allocates none and a Conn that once fell behind keeps
// none. It holds pointers, which it stores without allocating.
var bufferPool = sync.Pool{New: func() any { return new([]byte) }}

// Write implements net.Conn.
func (c *Conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.corked {
		*c.buf = append(*c.buf, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// Cork keeps the writes from now on until Uncork, in a buffer with room
// for size bytes.
func (c *Conn) Cork(size int) {
	c.mu.Lock()
	c.corked = true
	c.buf = bufferPool.Get().(*[]byte)
	if cap(*c.buf) < size {
		*c.buf = make([]byte, 0, size)
	}
	c.mu.Unlock()
}

// Uncork writes what was kept since Cork, then lets writes through. The
// buffer goes back to the pool unless it grew past maxPooledBuffer.
func (c *Conn) Uncork() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	if c.buf == nil {
		return nil
	}
	buf := *c.buf
	var err error
	if len(buf) > 0 {
		_, err = c.Conn.Write(buf)
	}
	// Nothing else holds the buffer now: the socket keeps none of what it
	// was given once Write returns (io.Writer's contract), and only Write
	// and Uncork, under c.mu, use c.buf.
	if cap(buf) <= maxPooledBuffer {
		*c.buf = buf[:0]
		bufferPool.Put(c.buf)
	}
	c.buf = nil
	if err != nil {
		return fmt.Errorf("cork: write %d corked bytes: %w", len(buf), err)
	}
	return nil
}

// Wrap puts f of the socket under c in its place, between two writes
// (a test counts the writes that reach the socket with it).
func (c *Conn) Wrap(f func(net.Conn) net.Conn) {
	c.mu.Lock()
	c.Conn = f(c.Conn)
	c.mu.Unlock()
}

// maxFrameHeader is the longest header of a frame a server writes.
const maxFrameHeader = 10

// Write writes msgs in order as text messages on ws, whose socket is
// sock: a lone message straight through, several corked into one system
// call. data is a message's bytes. The messages are written with a
// context that is never done, so that the websocket library arms nothing
// per message: a caller that bounds the write closes ws when it takes too
// long, which makes it fail.
func Write[M any](ws *websocket.Conn, sock *Conn, msgs []M, data func(M) []byte) error {
	if len(msgs) == 1 {
		return ws.Write(context.Background(), websocket.MessageText, data(msgs[0]))
	}
	size := 0
	for _, m := range msgs {
		size += len(data(m)) + maxFrameHeader
	}
	sock.Cork(size)
	for _, m := range msgs {
		if err := ws.Write(context.Background(), websocket.MessageText, data(m)); err != nil {
			_ = sock.Uncork()
			return err
		}
	}
	return sock.Uncork()
}

// Response is the ResponseWriter to hand to websocket.Accept: the socket
// it hijacks is a Conn, Sock once Accept has returned.
type Response struct {
	http.ResponseWriter
	// Sock is set by Hijack.
	Sock *Conn
}

// Hijack implements http.Hijacker. The buffered writer net/http returns,
// empty after the 101 response, now writes to the Conn.
func (w *Response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, fmt.Errorf("cork: hijack: %w", err)
	}
	if err := brw.Writer.Flush(); err != nil {
		_ = nc.Close()
		return nil, nil, fmt.Errorf("cork: flush before hijack: %w", err)
	}
	w.Sock = &Conn{Conn: nc}
	brw.Writer.Reset(w.Sock)
	return w.Sock, brw, nil
}
