package client

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/coder/websocket"

	"github.com/chatgateway/gateway/protocol"
)

// Errors a Client returns.
var (
	// ErrClosed is returned by every method once Close was called, and
	// ends every subscription.
	ErrClosed = errors.New("client: closed")
	// ErrConnectionLost is returned by a request that cannot be retried
	// safely (Create, Delete, a Send that creates a conversation) when
	// the connection dropped before its reply: it may or may not have
	// taken effect.
	ErrConnectionLost = errors.New("client: connection lost before the reply")
	// ErrDeleted ends a subscription whose conversation was deleted,
	// also while the client was disconnected (the error then wraps the
	// gateway's not_found too, also when a conversation was created since
	// under the same id; from a gateway that does not check created_at,
	// its bad_request when that conversation ends before the last event
	// the subscription delivered). Subscribe with CreatedAt returns it,
	// wrapping not_found, when the conversation created then is gone.
	ErrDeleted = errors.New("client: conversation deleted")
)

// Options configures a Client. Zero values mean the documented defaults.
type Options struct {
	// Token is the bearer token sent with every connection (for a
	// gateway started with -auth jwt).
	Token string
	// TokenFunc, when set, is asked for the token before every connection
	// attempt, so that an expired token is replaced on reconnect. It wins
	// over Token.
	TokenFunc func(ctx context.Context) (string, error)
	// Header is added to every upgrade request.
	Header http.Header
	// HTTPClient makes the upgrade requests (default http.DefaultClient).
	HTTPClient *http.Client
	// MinBackoff and MaxBackoff bound the wait between reconnection
	// attempts: it doubles from MinBackoff (default 100ms) up to
	// MaxBackoff (default 10s) while attempts fail, and each wait is
	// jittered between half and all of that.
	MinBackoff, MaxBackoff time.Duration
	// Buffer is how many events each subscription holds for its reader
	// (default 256). The client never waits for a reader: while a
	// subscription's buffer is full, it drops the conversation's further
	// events, and once the reader has taken the buffered ones it
	// subscribes again after the last one delivered. So nothing is lost,
	// and other subscriptions and the replies to requests are not held
	// up. A reader that falls a whole buffer behind a long replay makes
	// the gateway replay the rest again: a larger Buffer avoids that.
	Buffer int
	// MaxFrameBytes bounds one frame from the gateway (default 64 MiB).
	MaxFrameBytes int64
	// PingInterval is how often the client pings the gateway (default
	// 30s); a ping not answered within the interval drops the connection,
	// so that a gateway that vanished without closing it is noticed.
	PingInterval time.Duration
	// OnConnect, when set, is called after every successful connection,
	// and OnDisconnect when one ends or an attempt fails, with the reason.
	// They run on the client's goroutine: they must not block.
	OnConnect    func()
	OnDisconnect func(err error)
	// Logger receives reconnections at debug level (default: discard).
	Logger *slog.Logger
}

// writeTimeout bounds one frame write; a write that takes longer drops the
// connection, and the client reconnects.
const writeTimeout = 10 * time.Second

func (o Options) withDefaults() Options {
	if o.HTTPClient == nil {
		o.HTTPClient = http.DefaultClient
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 100 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 10 * time.Second
	}
	o.MaxBackoff = max(o.MaxBackoff, o.MinBackoff)
	if o.PingInterval <= 0 {
		o.PingInterval = 30 * time.Second
	}
	if o.Buffer <= 0 {
		o.Buffer = 256
	}
	if o.MaxFrameBytes <= 0 {
		o.MaxFrameBytes = 64 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Client is a connection to a gateway that survives drops: it reconnects
// on its own and resumes every subscription where its reader left off.
// Its methods are safe for concurrent use.
type Client struct {
	url  string
	opts Options

	// ctx ends when Close is called; done is closed when the connection
	// loop has returned.
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu sync.Mutex
	// ws is the current connection, nil while reconnecting; up is closed
	// when the next one is made.
	ws      *websocket.Conn
	up      chan struct{}
	pending map[string]chan reply
	subs    map[string]*Subscription
	nextID  uint64
}

// reply is a frame that answers a request, or the reason none will come.
type reply struct {
	typ  string
	data []byte
	err  error
}

// errLost is what a pending request gets when its connection drops.
var errLost = errors.New("client: connection dropped")

// Dial connects to the gateway at url (ws://host:port or
// http://host:port, with or without the /v1/ws path) and returns a Client
// that keeps the connection up until Close. It fails only when the first
// connection fails; after that, drops are handled by reconnecting.
func Dial(ctx context.Context, url string, opts Options) (*Client, error) {
	u, err := wsURL(url)
	if err != nil {
		return nil, err
	}
	c := &Client{url: u, opts: opts.withDefaults(), done: make(chan struct{}), up: make(chan struct{}),
		pending: map[string]chan reply{}, subs: map[string]*Subscription{}}
	ws, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	go c.run(ws)
	return c, nil
}

// wsURL turns raw into the URL of the gateway's WebSocket endpoint.
func wsURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("client: gateway URL: %w", err)
	}
	switch u.Scheme {
	case "http", "ws":
		u.Scheme = "ws"
	case "https", "wss":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("client: gateway URL %q: want ws://, wss://, http:// or https://", raw)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/v1/ws"
	}
	return u.String(), nil
}

// dial makes one connection attempt.
func (c *Client) dial(ctx context.Context) (*websocket.Conn, error) {
	header := c.opts.Header.Clone()
	if header == nil {
		header = http.Header{}
	}
	token := c.opts.Token
	if c.opts.TokenFunc != nil {
		var err error
		if token, err = c.opts.TokenFunc(ctx); err != nil {
			return nil, fmt.Errorf("client: token: %w", err)
		}
	}
	if token != "" {
		header.Set("Authorization", "Bearer "+token)
	}
	ws, resp, err := websocket.Dial(ctx, c.url, &websocket.DialOptions{HTTPClient: c.opts.HTTPClient, HTTPHeader: header})
	if err != nil {
		return nil, fmt.Errorf("client: dial %s: %w", c.url, upgradeError(resp, err))
	}
	ws.SetReadLimit(c.opts.MaxFrameBytes)
	return ws, nil
}

// upgradeError returns the gateway's error from a refused upgrade's body
// (a *protocol.Error, e.g. unauthorized), else err.
func upgradeError(resp *http.Response, err error) error {
	if resp == nil || resp.Body == nil {
		return err
	}
	defer resp.Body.Close()
	var body struct{ Error *protocol.Error }
	if json.NewDecoder(resp.Body).Decode(&body) == nil && body.Error != nil {
		return body.Error
	}
	return err
}

// run serves connections until Close: each one until it drops, then
// reconnection attempts with backoff.
func (c *Client) run(ws *websocket.Conn) {
	defer close(c.done)
	attempt := 0
	for {
		if ws != nil {
			attempt = 0
			err := c.serve(ws)
			if c.ctx.Err() != nil {
				return
			}
			c.disconnected(err)
		}
		if !c.sleep(backoff(c.opts.MinBackoff, c.opts.MaxBackoff, attempt)) {
			return
		}
		attempt++
		var err error
		if ws, err = c.dial(c.ctx); err != nil {
			if c.ctx.Err() != nil {
				return
			}
			c.disconnected(err)
		}
	}
}

// sleep waits for d, and reports false if the client was closed first.
func (c *Client) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func (c *Client) disconnected(err error) {
	c.opts.Logger.Debug("gateway connection lost; reconnecting", "err", err)
	if c.opts.OnDisconnect != nil {
		c.opts.OnDisconnect(err)
	}
}

// backoff is the wait before reconnection attempt n (0 for the first): it
// doubles from lo up to hi, and a random part of up to half of it spreads
// the clients of a restarted gateway apart.
func backoff(lo, hi time.Duration, n int) time.Duration {
	d := hi
	// lo<<n only when it stays at most hi: a larger shift overflows, to
	// a negative wait that rand.N panics on.
	if n < 63 && lo <= hi>>n {
		d = lo << n
	}
	return d/2 + rand.N(d/2+1)
}

// serve makes ws the current connection, subscribes it again to every
// subscription from the last seq each delivered, and reads it until it
// drops. Then every request waiting on it learns that it was lost.
func (c *Client) serve(ws *websocket.Conn) error {
	c.mu.Lock()
	c.ws = ws
	close(c.up)
	subs := make([]*Subscription, 0, len(c.subs))
	for _, s := range c.subs {
		subs = append(subs, s)
	}
	c.mu.Unlock()
	if c.opts.OnConnect != nil {
		c.opts.OnConnect()
	}
	for _, s := range subs {
		go c.resubscribe(ws, s)
	}
	stop := make(chan struct{})
	go c.keepalive(ws, stop)
	err := c.read(ws)
	close(stop)
	_ = ws.CloseNow()
	c.mu.Lock()
	c.ws = nil
	c.up = make(chan struct{})
	for id, ch := range c.pending {
		ch <- reply{err: errLost}
		delete(c.pending, id)
	}
	c.mu.Unlock()
	return err
}

// keepalive pings ws every PingInterval until stop is closed, and drops
// it when a pong does not come within the interval.
func (c *Client) keepalive(ws *websocket.Conn, stop <-chan struct{}) {
	t := time.NewTicker(c.opts.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(c.ctx, c.opts.PingInterval)
		err := ws.Ping(ctx)
		cancel()
		if err != nil {
			c.opts.Logger.Debug("client: no pong from the gateway", "err", err)
			_ = ws.CloseNow()
			return
		}
	}
}

// read dispatches ws's frames until it fails: events to their
// subscription (in order, each once), replies to the request waiting for
// them.
func (c *Client) read(ws *websocket.Conn) error {
	for {
		typ, data, err := ws.Read(c.ctx)
		if err != nil {
			return err
		}
		if typ != websocket.MessageText {
			continue
		}
		var head struct {
			Type, ID, Conversation string
			TS                     *time.Time
		}
		if err := json.Unmarshal(data, &head); err != nil {
			c.opts.Logger.Warn("client: undecodable frame from the gateway", "err", err)
			continue
		}
		switch {
		case head.TS != nil: // only events carry a ts
			var ev protocol.Event
			if err := json.Unmarshal(data, &ev); err != nil {
				c.opts.Logger.Warn("client: undecodable event", "conversation", head.Conversation, "err", err)
				continue
			}
			if s := c.sub(head.Conversation); s != nil {
				s.deliver(ev)
			}
		case head.ID != "":
			c.mu.Lock()
			ch := c.pending[head.ID]
			delete(c.pending, head.ID)
			c.mu.Unlock()
			if ch != nil {
				ch <- reply{typ: head.Type, data: data}
			}
		case head.Type == protocol.ReplyDeleted:
			if s := c.sub(head.Conversation); s != nil {
				c.drop(s, ErrDeleted)
			}
		}
	}
}

func (c *Client) sub(conversation string) *Subscription {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.subs[conversation]
}

// requestID returns an id no other request of this client has.
func (c *Client) requestID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nextID++
	return fmt.Sprintf("r%d", c.nextID)
}

// newKey returns a random idempotency key for client_msg_id.
func newKey() string {
	var b [12]byte
	_, _ = crand.Read(b[:])
	return "k_" + hex.EncodeToString(b[:])
}

// connected returns the current connection, waiting for one while the
// client reconnects.
func (c *Client) connected(ctx context.Context) (*websocket.Conn, error) {
	for {
		c.mu.Lock()
		ws, up := c.ws, c.up
		c.mu.Unlock()
		if c.ctx.Err() != nil {
			return nil, ErrClosed
		}
		if ws != nil {
			return ws, nil
		}
		select {
		case <-up:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-c.ctx.Done():
			return nil, ErrClosed
		}
	}
}

// call sends req (whose id is id) and decodes its reply into out. When
// the connection drops first, it sends req again on the next one if
// retry is set (the request is idempotent), else returns
// ErrConnectionLost. An error reply is returned as a *protocol.Error.
// With ctx done it sends nothing (again) and returns ctx's error.
func (c *Client) call(ctx context.Context, id string, req protocol.Request, retry bool, out any) error {
	_, err := c.callOn(ctx, id, req, retry, out, nil)
	return err
}

// callOn is call, and returns the connection that carried the reply, or
// that req was written on when ctx ended (or the client was closed)
// before the reply. When ctx ends after the write, late (if not nil)
// gets the reply if it comes (see roundTrip).
func (c *Client) callOn(ctx context.Context, id string, req protocol.Request, retry bool, out any, late func(*websocket.Conn, reply)) (*websocket.Conn, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ws, err := c.connected(ctx)
		if err != nil {
			return nil, err
		}
		r := c.roundTrip(ctx, ws, id, req, late)
		switch {
		case errors.Is(r.err, errLost) && retry:
			continue
		case errors.Is(r.err, errLost):
			return nil, ErrConnectionLost
		case r.err != nil:
			return ws, r.err
		case r.typ == protocol.ReplyError:
			var e protocol.Error
			if err := json.Unmarshal(r.data, &e); err != nil {
				return nil, fmt.Errorf("client: decoding an error reply: %w", err)
			}
			return nil, &e
		}
		if out != nil {
			if err := json.Unmarshal(r.data, out); err != nil {
				return nil, fmt.Errorf("client: decoding the %s reply: %w", r.typ, err)
			}
		}
		return ws, nil
	}
}

// roundTrip writes req on ws and waits for the frame that carries id.
// When ctx ends after the write and late is not nil, a goroutine waits on
// for that frame and hands it to late, unless ws drops or the client is
// closed first.
func (c *Client) roundTrip(ctx context.Context, ws *websocket.Conn, id string, req protocol.Request, late func(*websocket.Conn, reply)) reply {
	b, err := protocol.EncodeRequest(req)
	if err != nil {
		return reply{err: err}
	}
	ch := make(chan reply, 1)
	c.mu.Lock()
	if c.ws != ws {
		c.mu.Unlock()
		return reply{err: errLost}
	}
	c.pending[id] = ch
	c.mu.Unlock()
	waiting := false
	defer func() {
		if waiting {
			return
		}
		c.mu.Lock()
		if c.pending[id] == ch {
			delete(c.pending, id)
		}
		c.mu.Unlock()
	}()
	if err := c.write(ws, b); err != nil {
		return reply{err: err}
	}
	select {
	case r := <-ch:
		return r
	case <-ctx.Done():
		if late != nil {
			// ch stays pending: read, or serve when ws drops, sends
			// it one reply.
			waiting = true
			go func() {
				if r := <-ch; r.err == nil {
					late(ws, r)
				}
			}()
		}
		return reply{err: ctx.Err()}
	case <-c.ctx.Done():
		return reply{err: ErrClosed}
	}
}

// write writes the frame b on ws. The write has its own deadline: a
// caller's cancelled context must not close the shared connection. A
// failed write closes ws and is errLost.
func (c *Client) write(ws *websocket.Conn, b []byte) error {
	wctx, cancel := context.WithTimeout(c.ctx, writeTimeout)
	defer cancel()
	if err := ws.Write(wctx, websocket.MessageText, b); err != nil {
		_ = ws.CloseNow()
		return errLost
	}
	return nil
}

// Close ends every subscription and closes the connection. Requests in
// flight return ErrClosed.
func (c *Client) Close() error {
	c.cancel()
	c.mu.Lock()
	ws := c.ws
	subs := c.subs
	c.subs = map[string]*Subscription{}
	c.mu.Unlock()
	if ws != nil {
		_ = ws.Close(websocket.StatusNormalClosure, "")
	}
	<-c.done
	for _, s := range subs {
		s.end(ErrClosed)
	}
	return nil
}
