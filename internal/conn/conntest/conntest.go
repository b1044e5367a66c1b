// Package conntest is a WebSocket test client for the gateway: dial, send
// requests, and read server frames with a timeout. Tests of every package
// that serves /v1/ws use it.
package conntest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/chatgateway/gateway/internal/spec"
	"github.com/chatgateway/gateway/protocol"
)

// Timeout bounds each read and write of a Client; a test that hits it
// has hung, it does not measure speed.
const Timeout = 20 * time.Second

// Client is one test WebSocket connection. Its methods that take no
// error fail the test from the test's goroutine.
type Client struct {
	t  testing.TB
	WS *websocket.Conn
	// unchecked turns off the spec check of what it reads.
	unchecked bool
}

// Unchecked stops checking the frames c reads against
// protocol/asyncapi.yaml as it reads them (a test gateway of Start still
// checks them when it closes). Only tests whose many readers must keep up
// with a fast stream use it: a check costs tens of microseconds a frame
// under the race detector.
func (c *Client) Unchecked() { c.unchecked = true }

// Dial connects to the gateway at base (http://host or ws://host) with
// path and query, e.g. "/v1/ws?conversation=c&after=3", and closes the
// connection when the test ends.
func Dial(t testing.TB, base, pathAndQuery string) *Client {
	t.Helper()
	return DialWith(t, base, pathAndQuery, 0)
}

// DialWith is Dial with the kernel receive buffer of the connection set to
// readBuffer bytes when it is > 0, so that a client that stops reading
// stalls the server quickly.
func DialWith(t testing.TB, base, pathAndQuery string, readBuffer int) *Client {
	t.Helper()
	c, err := DialErr(base, pathAndQuery, readBuffer)
	if err != nil {
		t.Fatalf("dial %s%s: %v", base, pathAndQuery, err)
	}
	c.t = t
	t.Cleanup(func() { _ = c.WS.CloseNow() })
	return c
}

// DialErr is DialWith for use off the test goroutine; the caller closes
// the connection.
func DialErr(base, pathAndQuery string, readBuffer int) (*Client, error) {
	c, _, err := dial(base, pathAndQuery, readBuffer, nil)
	return c, err
}

// DialHeader dials like Dial with header on the upgrade request (e.g.
// Authorization or Origin), and returns the server's answer to the
// upgrade too: for a refused upgrade, the error, and the response with its
// status, headers and (the first KiB of) its body. A connection is closed
// when the test ends.
func DialHeader(t testing.TB, base, pathAndQuery string, header http.Header) (*Client, *http.Response, error) {
	c, resp, err := dial(base, pathAndQuery, 0, header)
	if err != nil {
		return nil, resp, err
	}
	c.t = t
	t.Cleanup(func() { _ = c.WS.CloseNow() })
	return c, resp, nil
}

func dial(base, pathAndQuery string, readBuffer int, header http.Header) (*Client, *http.Response, error) {
	url := strings.Replace(base, "http", "ws", 1) + pathAndQuery
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	// The gateway's tap leaves the requests of a Client to the Client.
	header = header.Clone()
	if header == nil {
		header = http.Header{}
	}
	header.Set(selfChecked, "1")
	opts := websocket.DialOptions{HTTPHeader: header}
	if readBuffer > 0 {
		opts.HTTPClient = &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
				if tc, ok := c.(*net.TCPConn); ok {
					_ = tc.SetReadBuffer(readBuffer)
				}
				return c, err
			},
		}}
	}
	ws, resp, err := websocket.Dial(ctx, url, &opts)
	if err != nil {
		return nil, resp, err
	}
	ws.SetReadLimit(64 << 20)
	return &Client{WS: ws}, resp, nil
}

// Request sends req as a text frame.
func (c *Client) Request(req protocol.Request) {
	c.t.Helper()
	if err := c.RequestErr(req); err != nil {
		c.t.Fatalf("send %s: %v", req.Type(), err)
	}
}

// RequestErr sends req as a text frame.
func (c *Client) RequestErr(req protocol.Request) error {
	b, err := protocol.EncodeRequest(req)
	if err != nil {
		return err
	}
	if err := checkFrame(true, b); err != nil {
		return err
	}
	return c.WriteErr(websocket.MessageText, b)
}

// Write sends one raw frame of type typ.
func (c *Client) Write(typ websocket.MessageType, data []byte) {
	c.t.Helper()
	if err := c.WriteErr(typ, data); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// WriteErr sends one raw frame of type typ.
func (c *Client) WriteErr(typ websocket.MessageType, data []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	return c.WS.Write(ctx, typ, data)
}

// Read returns the next frame from the server.
func (c *Client) Read() protocol.ServerFrame {
	c.t.Helper()
	f, err := c.ReadErr()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return f
}

// ReadErr returns the next frame from the server, or the error that ended
// the connection (see websocket.CloseStatus).
func (c *Client) ReadErr() (protocol.ServerFrame, error) {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	var f protocol.ServerFrame
	typ, data, err := c.WS.Read(ctx)
	if err != nil {
		return f, err
	}
	if typ != websocket.MessageText {
		return f, fmt.Errorf("conntest: got a %v frame, want text", typ)
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return f, fmt.Errorf("conntest: decoding %s: %w", data, err)
	}
	if c.unchecked {
		return f, nil
	}
	return f, checkFrame(false, data)
}

// ReadUntil reads frames until one satisfies stop and returns them all,
// the last one included.
func (c *Client) ReadUntil(stop func(*protocol.ServerFrame) bool) []protocol.ServerFrame {
	c.t.Helper()
	frames, err := c.ReadUntilErr(stop)
	if err != nil {
		c.t.Fatalf("read after %d frames: %v", len(frames), err)
	}
	return frames
}

// ReadUntilErr is ReadUntil for use off the test goroutine.
func (c *Client) ReadUntilErr(stop func(*protocol.ServerFrame) bool) ([]protocol.ServerFrame, error) {
	var frames []protocol.ServerFrame
	for {
		f, err := c.ReadErr()
		if err != nil {
			return frames, err
		}
		frames = append(frames, f)
		if stop(&f) {
			return frames, nil
		}
	}
}

// Call sends req and reads until its reply (the frame with req's id),
// which it returns; it fails the test if req has no id.
func (c *Client) Call(req protocol.Request) protocol.ServerFrame {
	c.t.Helper()
	if req.RequestID() == "" {
		c.t.Fatalf("Call needs a request with an id")
	}
	c.Request(req)
	frames := c.ReadUntil(func(f *protocol.ServerFrame) bool { return f.ID == req.RequestID() })
	return frames[len(frames)-1]
}

// IsType returns a ReadUntil condition: a frame of type typ.
func IsType(typ string) func(*protocol.ServerFrame) bool {
	return func(f *protocol.ServerFrame) bool { return f.Type == typ }
}

// Answer is the server's answer to an upgrade request.
type Answer struct {
	// Status is 101 when the upgrade succeeded.
	Status int
	// Client is the connection after a successful upgrade.
	Client *Client
	// Error is the refusal's JSON error body; nil when the upgrade
	// succeeded.
	Error *protocol.Error
	// Header is the header of the server's answer.
	Header http.Header
}

// Upgrade requests /v1/ws?query with header and returns the answer,
// failing t only when no HTTP answer came at all.
func Upgrade(t testing.TB, base, query string, header http.Header) Answer {
	t.Helper()
	c, resp, err := DialHeader(t, base, WSPath(query), header)
	if err == nil {
		return Answer{Status: http.StatusSwitchingProtocols, Client: c, Header: resp.Header}
	}
	if resp == nil {
		t.Fatalf("dial: %v", err)
	}
	defer resp.Body.Close()
	a := Answer{Status: resp.StatusCode, Header: resp.Header}
	b, _ := io.ReadAll(resp.Body)
	CheckHTTP(t, spec.Exchange{Method: http.MethodGet, URL: base + WSPath(query), Status: resp.StatusCode,
		ContentType: resp.Header.Get("Content-Type"), ResponseBody: b})
	var body struct{ Error *protocol.Error }
	if json.Unmarshal(b, &body) == nil {
		a.Error = body.Error
	}
	return a
}
