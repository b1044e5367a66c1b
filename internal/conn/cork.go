package conn

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"sync"
)

// corkConn is the socket under a WebSocket. While corked it keeps what
// the websocket library writes (which flushes every message) in memory,
// and uncork writes it all with one system call: the writer sends the
// frames that queued up meanwhile in one go, which saves a system call
// and a wakeup of the client per frame when a connection falls behind.
type corkConn struct {
	net.Conn
	// mu orders the library's writes (data from the writer goroutine,
	// pongs from the reader, pings from keepalive) with uncork's.
	mu     sync.Mutex
	corked bool
	buf    []byte
}

// Write implements net.Conn.
func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.corked {
		c.buf = append(c.buf, p...)
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// cork keeps the writes from now on until uncork, in a buffer made for
// size bytes.
func (c *corkConn) cork(size int) {
	c.mu.Lock()
	c.corked = true
	c.buf = make([]byte, 0, size)
	c.mu.Unlock()
}

// uncork writes what was kept since cork, then lets writes through. The
// buffer is dropped, so that a connection that once fell behind does not
// keep it.
func (c *corkConn) uncork() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	buf := c.buf
	c.buf = nil
	if len(buf) == 0 {
		return nil
	}
	if _, err := c.Conn.Write(buf); err != nil {
		return fmt.Errorf("conn: write %d corked bytes: %w", len(buf), err)
	}
	return nil
}

// corkResponse is the ResponseWriter handed to websocket.Accept: the
// socket it hijacks is a corkConn.
type corkResponse struct {
	http.ResponseWriter
	// sock is set by Hijack.
	sock *corkConn
}

// Hijack implements http.Hijacker. The buffered writer net/http returns,
// empty after the 101 response, now writes to the corkConn.
func (w *corkResponse) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	nc, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, fmt.Errorf("conn: hijack: %w", err)
	}
	if err := brw.Writer.Flush(); err != nil {
		_ = nc.Close()
		return nil, nil, fmt.Errorf("conn: flush before hijack: %w", err)
	}
	w.sock = &corkConn{Conn: nc}
	brw.Writer.Reset(w.sock)
	return w.sock, brw, nil
}
