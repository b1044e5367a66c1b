package conntest

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"net/http"
	"sync"
	"testing"

	"github.com/chatgateway/gateway/internal/spec"
)

// Dialer makes a network connection, as net.Dialer.DialContext does.
type Dialer func(ctx context.Context, network, addr string) (net.Conn, error)

// RecordedClient is an HTTP client for WebSocket clients that this
// package's Client is not, such as the Go client (its
// Options.HTTPClient): it reads the WebSocket frames of every connection
// it makes, both ways, and when the test ends checks each against
// protocol/asyncapi.yaml, as Client checks what it reads and sends.
// dial makes the connections (nil: a net.Dialer).
func RecordedClient(t testing.TB, dial Dialer) *http.Client {
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	rec := &recording{}
	t.Cleanup(func() { rec.check(t) })
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &tappedConn{Conn: c, in: rec.tap(false), out: rec.tap(true)}, nil
		},
	}}
}

// recording holds the text messages seen on every tapped connection.
type recording struct {
	mu       sync.Mutex
	messages []message
	done     bool
}

type message struct {
	fromClient bool
	data       []byte
}

// tap returns the parser of one direction of one connection.
func (r *recording) tap(fromClient bool) *frameTap {
	return &frameTap{fromClient: fromClient, rec: r}
}

func (r *recording) add(m message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.done {
		r.messages = append(r.messages, m)
	}
}

// check validates every message recorded; it runs once the test's
// clients are closed, so that checking does not slow them down.
func (r *recording) check(t testing.TB) {
	r.mu.Lock()
	r.done = true
	msgs := r.messages
	r.mu.Unlock()
	s, err := spec.Load()
	if err != nil {
		t.Error(err)
		return
	}
	for _, m := range msgs {
		check := s.ServerFrame
		if m.fromClient {
			check = s.ClientFrame
		}
		if err := check(m.data); err != nil {
			t.Error(err)
		}
	}
}

// tappedConn shows what it reads and writes to its taps.
type tappedConn struct {
	net.Conn
	in, out *frameTap
}

func (c *tappedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.in.feed(p[:n])
	return n, err
}

func (c *tappedConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.out.feed(p[:n])
	return n, err
}

// frameTap parses one direction of a WebSocket connection (RFC 6455,
// without extensions: the gateway and the Go client negotiate none):
// the HTTP upgrade first, then frames, joining the fragments of each text
// message.
type frameTap struct {
	fromClient bool
	rec        *recording

	// mu guards the rest: the HTTP transport writes the upgrade request
	// on one goroutine, and the WebSocket its frames on others.
	mu       sync.Mutex
	buf      []byte
	upgraded bool   // the HTTP request or response is behind
	text     []byte // the fragments of a text message so far
	inText   bool
}

func (f *frameTap) feed(p []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.buf = append(f.buf, p...)
	if !f.upgraded {
		end := bytes.Index(f.buf, []byte("\r\n\r\n"))
		if end < 0 {
			return
		}
		f.buf, f.upgraded = f.buf[end+4:], true
	}
	for f.frame() {
	}
}

// frame takes one whole frame off buf, if there is one.
func (f *frameTap) frame() bool {
	b := f.buf
	if len(b) < 2 {
		return false
	}
	fin, opcode, masked := b[0]&0x80 != 0, b[0]&0x0f, b[1]&0x80 != 0
	size, head := uint64(b[1]&0x7f), 2
	switch size {
	case 126:
		if len(b) < 4 {
			return false
		}
		size, head = uint64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return false
		}
		size, head = binary.BigEndian.Uint64(b[2:]), 10
	}
	var mask []byte
	if masked {
		if len(b) < head+4 {
			return false
		}
		mask, head = b[head:head+4], head+4
	}
	if uint64(len(b)-head) < size {
		return false
	}
	payload := bytes.Clone(b[head : head+int(size)])
	for i := range payload {
		if mask != nil {
			payload[i] ^= mask[i%4]
		}
	}
	f.buf = b[head+int(size):]
	switch {
	case opcode == 1: // text
		f.text, f.inText = payload, true
	case opcode == 0 && f.inText: // continuation
		f.text = append(f.text, payload...)
	default: // binary, or control frames between fragments
		return true
	}
	if fin {
		f.rec.add(message{fromClient: f.fromClient, data: f.text})
		f.text, f.inText = nil, false
	}
	return true
}
