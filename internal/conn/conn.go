package conn

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/chatgateway/gateway/internal/auth"
	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/cork"
	"github.com/chatgateway/gateway/protocol"
)

// errClosed is what SendWait returns once the connection is closing.
var errClosed = errors.New("conn: connection closed")

// conn is one WebSocket connection. Its reader goroutine, started by
// ServeHTTP once the socket is hijacked, reads and calls convo; a writer
// goroutine, started whenever frames are queued and gone when the queue is
// empty, owns every write to the socket.
type conn struct {
	h  *Handler
	ws *websocket.Conn
	// sock is ws's socket; the writer corks it to write several frames
	// at once.
	sock *cork.Conn
	user string
	log  *slog.Logger
	// ctx is done when reading has ended; it bounds the calls into convo,
	// and carries the caller (auth.CallerFrom).
	ctx    context.Context
	cancel context.CancelFunc
	ping   *time.Timer
	// stall closes the socket when a write outlasts WriteTimeout; made by
	// the first write, it runs only while a write is in progress. Only
	// the writer goroutine uses it.
	stall *time.Timer

	// requests counts the requests the reader began and ended serving,
	// so it is odd while the reader serves one: only a reading reader
	// takes in the pong that answers a keepalive ping.
	requests atomic.Uint64

	// subs holds the conversations this connection subscribed to, to
	// unsubscribe them at the end. Only the reader goroutine uses it.
	subs map[string]struct{}

	mu sync.Mutex
	// gone holds conversations deleted since the reader last looked (see
	// Gone); the reader drops them from subs.
	gone map[string]struct{}
	// queue holds the frames waiting for the writer, oldest first, in
	// queueArray while they fit there.
	queue []convo.Frame
	// queueArray is the array from framePool that queue starts in, from
	// the first frame queued to an idle connection until the queue is
	// empty again or dropped; nil meanwhile.
	queueArray *frameArray
	// writing is true while a writer goroutine runs.
	writing bool
	// room, when not nil, is closed once the queue is at most half full.
	room chan struct{}
	// closeCode, once set, refuses new frames; the writer closes the
	// socket with it after the queue.
	closeCode   websocket.StatusCode
	closeReason string
	// dead is set when reading has ended or a write failed: nothing more
	// is written.
	dead bool
	// ended is why the connection ends, once a cause is known (see
	// ends.go).
	ended string
	// queued is the size in bytes of the frames in queue.
	queued int
	writer sync.WaitGroup
	// runWriter is c.writeLoop, made once: a go statement on the method
	// would allocate a closure holding c at every start of a writer.
	runWriter func()
}

// Subscriber is what a conn is to convo.
var _ convo.Subscriber = (*conn)(nil)

// newConn returns the connection of caller on ws. client is the address
// the upgrade came from (see limits.TrustedProxies.Client), which every
// log line of the connection names.
func newConn(h *Handler, ws *websocket.Conn, sock *cork.Conn, caller auth.Caller, client string) *conn {
	ctx, cancel := context.WithCancel(auth.WithCaller(context.Background(), caller))
	c := &conn{h: h, ws: ws, sock: sock, user: caller.User, ctx: ctx, cancel: cancel, subs: make(map[string]struct{})}
	c.log = h.log.With("conn", h.ids.Add(1), "client", client)
	c.runWriter = c.writeLoop
	return c
}

// serve runs the reader loop until the connection ends, then cleans up.
// query is the upgrade's raw query.
func (c *conn) serve(query string) {
	c.log.Debug("connection open", "user", c.user)
	c.ping = time.AfterFunc(c.h.opts.PingInterval, c.keepalive)
	defer c.finish()
	q, err := url.ParseQuery(query)
	if err != nil || q.Has("conversation") || q.Has("after") || q.Has("created_at") {
		c.requests.Add(1)
		c.subscribeFromQuery(q, err)
		c.requests.Add(1)
	}
	for {
		typ, data, err := c.ws.Read(c.ctx)
		if err != nil {
			c.noteEnd(endForRead(err))
			c.logEnd(err)
			return
		}
		if c.closing() {
			continue
		}
		if typ == websocket.MessageBinary {
			const msg = "binary frames are not supported"
			c.replyError("", "", protocol.Errorf(protocol.CodeBadRequest, msg))
			c.closeAfterQueue(websocket.StatusUnsupportedData, msg)
			continue
		}
		c.requests.Add(1)
		c.handle(data)
		c.requests.Add(1)
	}
}

// subscribeFromQuery subscribes as the upgrade's query q asks; parseErr
// is why the query did not parse. A query that does not parse, or an
// after or created_at without a conversation, is refused, not ignored:
// the client expects events that would never come, or would come from
// seq 1.
func (c *conn) subscribeFromQuery(q url.Values, parseErr error) {
	if parseErr != nil {
		c.replyError("", "", protocol.Errorf(protocol.CodeBadRequest, "query: %v", parseErr))
		return
	}
	req := &protocol.Subscribe{Conversation: q.Get("conversation")}
	if !q.Has("conversation") {
		c.replyError("", "", protocol.Errorf(protocol.CodeBadRequest, "conversation: required (after and created_at need it)"))
		return
	}
	if !protocol.ValidConversationID(req.Conversation) {
		c.replyError("", "", protocol.Errorf(protocol.CodeBadRequest, "conversation: not a valid conversation id"))
		return
	}
	if s := q.Get("after"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			c.replyError("", req.Conversation, protocol.Errorf(protocol.CodeBadRequest, "after: must be a non-negative integer"))
			return
		}
		req.After = n
	}
	if s := q.Get("created_at"); s != "" {
		t, err := protocol.ParseTimestamp(s)
		if err != nil {
			c.replyError("", req.Conversation, protocol.Errorf(protocol.CodeBadRequest, "created_at: %v", err))
			return
		}
		req.CreatedAt = t
	}
	c.dispatch(req, time.Now())
}

// finish ends the connection once reading has stopped: it leaves every
// conversation, stops the writer and waits for it.
func (c *conn) finish() {
	c.cancel()
	for id := range c.subs {
		c.h.svc.Unsubscribe(id, c)
		c.untrack(id)
	}
	c.mu.Lock()
	c.dead = true
	c.ping.Stop()
	c.dropQueueLocked()
	ended := c.ended
	c.mu.Unlock()
	_ = c.ws.CloseNow()
	c.writer.Wait()
	c.h.metrics.ConnectionCloses.WithLabelValues(ended).Inc()
	c.log.Debug("connection closed", "reason", ended)
}

// logEnd logs why reading ended; expected endings are not errors.
func (c *conn) logEnd(err error) {
	switch status := websocket.CloseStatus(err); {
	case status == websocket.StatusNormalClosure, status == websocket.StatusGoingAway,
		status == websocket.StatusNoStatusRcvd, c.closing(),
		errors.Is(err, context.Canceled), errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		c.log.Debug("connection ended", "err", err)
	case errors.Is(err, websocket.ErrMessageTooBig):
		c.log.Info("connection closed: frame over the size limit", "limit", c.h.opts.MaxFrameBytes)
	default:
		c.log.Info("connection ended", "err", err)
	}
}

// keepalive pings the peer and schedules the next ping. A peer that does
// not answer within WriteTimeout is disconnected, unless the reader served
// a request meanwhile (a replay to a slow client, say): then the pong may
// be waiting unread, and the request's writes have their own timeout.
func (c *conn) keepalive() {
	served := c.requests.Load()
	ctx, cancel := context.WithTimeout(c.ctx, c.h.opts.WriteTimeout)
	err := c.ws.Ping(ctx)
	cancel()
	if err != nil {
		if c.ctx.Err() != nil {
			return
		}
		if served%2 == 0 && c.requests.Load() == served {
			c.log.Info("keepalive ping failed, disconnecting", "err", err)
			c.noteEnd(endPingTimeout)
			_ = c.ws.CloseNow()
			return
		}
	}
	c.nextPing()
}

// nextPing arms the ping timer again, unless the connection is dead.
// finish stops the timer under c.mu after marking the connection dead,
// so a ping answered just before the connection ended cannot re-arm it
// and keep the closed connection in memory for another interval.
func (c *conn) nextPing() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.dead {
		c.ping.Reset(c.h.opts.PingInterval)
	}
}
