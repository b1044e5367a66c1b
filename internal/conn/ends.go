package conn

import (
	"errors"
	"io"
	"net"
	"syscall"

	"github.com/coder/websocket"
)

// Why a connection ended: the reason label of
// gateway_connection_closes_total. PROTOCOL.md's Closing section lists
// them; the first cause noted wins.
const (
	// endClientClose: the client closed the connection with a close frame.
	endClientClose = "client_close"
	// endClientGone: the socket ended without a close frame from the
	// client (it went away, or its network did).
	endClientGone = "client_gone"
	// endReadError: the client sent something that is not WebSocket; the
	// library closed the connection with 1002.
	endReadError = "read_error"
	// endTooBig: a frame over MaxFrameBytes; closed with 1009.
	endTooBig = "frame_too_big"
	// endBinary: a binary frame; closed with 1003 after an error frame.
	endBinary = "binary_frame"
	// endSlowConsumer: the outgoing queue overflowed; closed with 1008.
	endSlowConsumer = "slow_consumer"
	// endShutdown: the gateway is stopping; closed with 1001 (or dropped
	// when the shutdown ran out of time).
	endShutdown = "shutdown"
	// endWriteTimeout: a write outlasted WriteTimeout; dropped without a
	// close frame, which could not be written either.
	endWriteTimeout = "write_timeout"
	// endPingTimeout: a keepalive ping went unanswered for WriteTimeout;
	// dropped without a close frame.
	endPingTimeout = "ping_timeout"
	// endWriteError: a write failed; dropped without a close frame.
	endWriteError = "write_error"
)

// endForCode is the reason of a close the gateway starts with code.
func endForCode(code websocket.StatusCode) string {
	switch code {
	case websocket.StatusPolicyViolation:
		return endSlowConsumer
	case websocket.StatusUnsupportedData:
		return endBinary
	case websocket.StatusGoingAway:
		return endShutdown
	}
	return "close_" + code.String()
}

// endForRead is the reason of a connection whose reading ended with err
// before the gateway noted any cause of its own.
func endForRead(err error) string {
	switch {
	case errors.Is(err, websocket.ErrMessageTooBig):
		return endTooBig
	case websocket.CloseStatus(err) != -1:
		return endClientClose
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return endClientGone
	}
	return endReadError
}

// noteEnd records why the connection ends, unless a cause is already
// noted. Call with c.mu held.
func (c *conn) noteEndLocked(reason string) {
	if c.ended == "" {
		c.ended = reason
	}
}

// noteEnd is noteEndLocked for callers without c.mu.
func (c *conn) noteEnd(reason string) {
	c.mu.Lock()
	c.noteEndLocked(reason)
	c.mu.Unlock()
}
