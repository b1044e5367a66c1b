package conntest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"net"
	"net/http"
	"sync"
	"testing"

	"github.com/chatgateway/gateway/internal/spec"
)

// The wiretap reads the WebSocket frames that cross a connection, both
// ways, so that they can be checked against protocol/asyncapi.yaml
// whatever client sent or read them: every test gateway of Start taps the
// connections it accepts, and RecordedClient taps the ones it makes.

// selfChecked is a header of the upgrade requests of this package's
// Client: it checks the requests it sends itself (and sends bad ones on
// purpose through Write), so the gateway's side does not check them.
const selfChecked = "Conntest-Self-Checked"

// Dialer makes a network connection, as net.Dialer.DialContext does.
type Dialer func(ctx context.Context, network, addr string) (net.Conn, error)

// RecordedClient is an HTTP client for WebSocket clients that this
// package's Client is not, such as the Go client (its
// Options.HTTPClient), that dial a gateway Start did not start (a Server
// checks its own connections): it reads the WebSocket frames of every
// connection it makes, both ways, and when the test ends checks each
// against protocol/asyncapi.yaml, as Client checks what it reads and
// sends. dial makes the connections (nil: a net.Dialer).
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
			return &tappedConn{Conn: c, tap: &wiretap{rec: rec}}, nil
		},
	}}
}

// tapListener taps every connection it accepts, as the gateway's side,
// and keeps the open ones in open.
type tapListener struct {
	net.Listener
	rec  *recording
	open *openConns
}

func (l tapListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &tappedConn{Conn: c, tap: &wiretap{rec: l.rec}, server: true, open: l.open}
	l.open.add(tc)
	return tc, nil
}

// openConns is the set of a listener's connections not yet closed.
type openConns struct {
	mu    sync.Mutex
	conns map[*tappedConn]struct{}
}

func (o *openConns) add(c *tappedConn) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.conns == nil {
		o.conns = map[*tappedConn]struct{}{}
	}
	o.conns[c] = struct{}{}
}

func (o *openConns) remove(c *tappedConn) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.conns, c)
}

// closeAll closes every open connection at once.
func (o *openConns) closeAll() {
	o.mu.Lock()
	conns := o.conns
	o.conns = nil
	o.mu.Unlock()
	for c := range conns {
		_ = c.Conn.Close()
	}
}

// tappedConn shows what it reads and writes to its tap; server says
// which end of the connection it is. A gateway's side is in open until
// closed.
type tappedConn struct {
	net.Conn
	tap    *wiretap
	server bool
	open   *openConns
}

func (c *tappedConn) Close() error {
	if c.open != nil {
		c.open.remove(c)
	}
	return c.Conn.Close()
}

func (c *tappedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.tap.feed(c.server, p[:n])
	return n, err
}

// Write shows p to the tap before it leaves, so that the tap has seen the
// gateway's 101 answer before the client can answer it with a frame.
func (c *tappedConn) Write(p []byte) (int, error) {
	c.tap.feed(!c.server, p)
	return c.Conn.Write(p)
}

// recording holds the distinct text messages seen on tapped connections,
// and the HTTP exchanges a test gateway served.
type recording struct {
	mu        sync.Mutex
	messages  []message
	seen      map[frameKey]bool
	exchanges []spec.Exchange
	done      bool
}

type message struct {
	fromClient bool
	data       []byte
}

// frameKey names a frame by its direction and content, so that each
// distinct frame is checked once.
type frameKey struct {
	fromClient bool
	sum        [sha256.Size]byte
}

// checked holds the frames that passed a check in this test binary: a
// frame that many connections carry (fan-out), or that both a Client
// and a gateway's tap saw, is checked once.
var checked sync.Map // frameKey → struct{}

func keyOf(fromClient bool, data []byte) frameKey {
	return frameKey{fromClient, sha256.Sum256(data)}
}

func (r *recording) add(m message) {
	k := keyOf(m.fromClient, m.data)
	if _, ok := checked.Load(k); ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done || r.seen[k] {
		return
	}
	if r.seen == nil {
		r.seen = map[frameKey]bool{}
	}
	r.seen[k] = true
	r.messages = append(r.messages, m)
}

func (r *recording) addExchange(x spec.Exchange) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.done {
		r.exchanges = append(r.exchanges, x)
	}
}

// check validates every message and exchange recorded; it runs once the
// test's connections are closed, so that checking does not slow them
// down.
func (r *recording) check(t testing.TB) {
	t.Helper()
	r.mu.Lock()
	r.done = true
	msgs, exchanges := r.messages, r.exchanges
	r.mu.Unlock()
	s, err := spec.Load()
	if err != nil {
		t.Error(err)
		return
	}
	for _, x := range exchanges {
		if err := s.HTTP(x); err != nil {
			t.Error(err)
		}
	}
	for _, m := range msgs {
		if err := checkFrame(m.fromClient, m.data); err != nil {
			t.Error(err)
		}
	}
}

// wiretap follows one connection: HTTP until the gateway answers an
// upgrade with 101, WebSocket frames (RFC 6455, without extensions: the
// gateway negotiates none) from then on.
type wiretap struct {
	rec *recording

	// mu guards the rest: a connection is read and written on
	// different goroutines.
	mu       sync.Mutex
	upgraded bool
	// answer holds the gateway's bytes of a 101 answer not yet whole;
	// request the last client bytes before the upgrade, to read the
	// upgrade request's headers from.
	answer, request []byte
	// selfChecked: the client checks its own requests (Client).
	selfChecked        bool
	toClient, toServer frameReader
}

// maxRequest bounds what the tap keeps of the client's HTTP bytes.
const maxRequest = 8 << 10

// feed shows the tap p, sent by the client if fromClient, else by the
// gateway.
func (w *wiretap) feed(fromClient bool, p []byte) {
	if len(p) == 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.upgraded {
		if fromClient {
			// A client sends nothing after its upgrade request until
			// the 101 answer: that request ends what is kept here.
			w.request = append(w.request, p...)
			if n := len(w.request); n > maxRequest {
				w.request = w.request[n-maxRequest:]
			}
			return
		}
		p = w.upgrade(p)
		if !w.upgraded {
			return
		}
	}
	if fromClient {
		if !w.selfChecked {
			w.toServer.feed(p, w.rec, true)
		}
		return
	}
	w.toClient.feed(p, w.rec, false)
}

// status101 starts the gateway's answer that upgrades the connection.
var status101 = []byte("HTTP/1.1 101 ")

// upgrade follows the gateway's HTTP answers until a whole 101 answer,
// and returns what follows it. Other answers are skipped: each starts a
// new write of the gateway (and read of a Go client), so only one that
// starts a write is looked at.
func (w *wiretap) upgrade(p []byte) []byte {
	if len(w.answer) == 0 && !bytes.HasPrefix(p, status101) && !bytes.HasPrefix(status101, p) {
		return nil
	}
	w.answer = append(w.answer, p...)
	end := bytes.Index(w.answer, []byte("\r\n\r\n"))
	if end < 0 {
		return nil
	}
	rest := w.answer[end+4:]
	w.upgraded, w.answer = true, nil
	w.selfChecked = bytes.Contains(lastHead(w.request), []byte("\r\n"+selfChecked+":"))
	w.request = nil
	return rest
}

// lastHead is the last HTTP request head in b, which ends with one.
func lastHead(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\r\n\r\n"))
	if i := bytes.LastIndex(b, []byte("\r\n\r\n")); i >= 0 {
		return b[i+4:]
	}
	return b
}

// frameReader parses one direction's frames, joining the fragments of
// each text message.
type frameReader struct {
	buf    []byte
	text   []byte // the fragments of a text message so far
	inText bool
}

func (f *frameReader) feed(p []byte, rec *recording, fromClient bool) {
	f.buf = append(f.buf, p...)
	for {
		data, ok, err := f.frame()
		if err != nil {
			// Record what cannot be parsed, so that the check fails.
			rec.add(message{fromClient: fromClient, data: []byte(err.Error())})
			f.buf = nil
			return
		}
		if !ok {
			return
		}
		if data != nil {
			rec.add(message{fromClient: fromClient, data: data})
		}
	}
}

var errExtension = errors.New("conntest: a WebSocket frame with RSV bits set (an extension the tap cannot read)")

// frame takes one whole frame off buf, if there is one (ok), and returns
// the text message it ends, if any.
func (f *frameReader) frame() (data []byte, ok bool, err error) {
	b := f.buf
	if len(b) < 2 {
		return nil, false, nil
	}
	if b[0]&0x70 != 0 {
		return nil, false, errExtension
	}
	fin, opcode, masked := b[0]&0x80 != 0, b[0]&0x0f, b[1]&0x80 != 0
	size, head := uint64(b[1]&0x7f), 2
	switch size {
	case 126:
		if len(b) < 4 {
			return nil, false, nil
		}
		size, head = uint64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return nil, false, nil
		}
		size, head = binary.BigEndian.Uint64(b[2:]), 10
	}
	var mask []byte
	if masked {
		if len(b) < head+4 {
			return nil, false, nil
		}
		mask, head = b[head:head+4], head+4
	}
	if uint64(len(b)-head) < size {
		return nil, false, nil
	}
	payload := bytes.Clone(b[head : head+int(size)])
	if mask != nil {
		for i := range payload {
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
		return nil, true, nil
	}
	if !fin {
		return nil, true, nil
	}
	data, f.text, f.inText = f.text, nil, false
	return data, true, nil
}
