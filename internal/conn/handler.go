// Package conn serves the gateway's WebSocket protocol (GET /v1/ws): one
// reader goroutine per connection decodes requests and calls convo, and one
// writer goroutine drains a bounded outgoing queue to the socket.
package conn

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"go.opentelemetry.io/otel/trace"

	"github.com/chatgateway/gateway/internal/auth"
	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/cork"
	"github.com/chatgateway/gateway/internal/httperr"
	"github.com/chatgateway/gateway/internal/limits"
	"github.com/chatgateway/gateway/internal/metrics"
	"github.com/chatgateway/gateway/protocol"
)

// Defaults for Options.
const (
	DefaultMaxFrameBytes = 1 << 20
	DefaultSendQueue     = 1024
	// DefaultSendQueueBytes bounds the bytes queued for one connection.
	DefaultSendQueueBytes = 4 << 20
	DefaultWriteTimeout   = 10 * time.Second
	DefaultPingInterval   = 30 * time.Second
	// DefaultMaxSubscriptions bounds the conversations one connection
	// follows at once.
	DefaultMaxSubscriptions = 1000
)

// Options tunes a Handler. Zero values mean the documented defaults.
type Options struct {
	// Logger receives the connections' logs (default slog.Default()).
	Logger *slog.Logger
	// User names the caller of an upgrade request; the connection's
	// requests carry it in their context (see auth.CallerFrom). An error
	// refuses the upgrade with 401 as auth.Reject answers, before any
	// socket is opened. Default: every caller is auth.LocalUser.
	User func(*http.Request) (auth.Caller, error)
	// MaxFrameBytes bounds a client frame (default 1 MiB); a larger one
	// closes the connection with 1009.
	MaxFrameBytes int64
	// SendQueue bounds the frames waiting to be written to one connection
	// (default 1024); a connection whose queue overflows is closed with
	// 1008 "slow consumer".
	SendQueue int
	// SendQueueBytes bounds the bytes of those frames (default
	// DefaultSendQueueBytes), with the same consequence; a frame larger
	// than the bound still goes through an empty queue. A replay fills at
	// most half of it, so this bounds the memory a replay holds for a
	// client that does not read.
	SendQueueBytes int
	// WriteTimeout bounds each write to the socket, and the wait for the
	// pong that answers a keepalive ping (default 10 s).
	WriteTimeout time.Duration
	// PingInterval is the time between keepalive pings (default 30 s).
	PingInterval time.Duration
	// Metrics receives the connection metrics (default: a private set).
	Metrics *metrics.Metrics
	// OriginPatterns lists the other origins whose pages may connect (see
	// websocket.AcceptOptions); the gateway's own origin always may, and
	// so may clients that send no Origin (wscat, Go programs). Any other
	// Origin is refused with 403.
	OriginPatterns []string
	// MaxSubscriptions bounds the conversations one connection is
	// subscribed to (default DefaultMaxSubscriptions); a subscribe, or a
	// send to a conversation not yet followed, beyond it gets a busy error
	// and the connection stays open.
	MaxSubscriptions int
	// MaxConns bounds the open connections (default: no bound); an
	// upgrade beyond it is refused with 503 busy.
	MaxConns int
	// MaxConnsPerUser bounds the open connections of one user (default:
	// no bound); an upgrade beyond it is refused with 503 busy.
	MaxConnsPerUser int
	// SendLimiter, keyed by user, limits the requests that store
	// something, sends and creates (default: no limit); a refused one gets
	// a rate_limited error with retry_after_ms. Share it with the HTTP API
	// so that both count against one budget.
	SendLimiter *limits.Limiter
	// Sizes bounds the title and system prompt of a create (default:
	// limits' defaults); a larger one gets too_large.
	Sizes limits.Sizes
	// TracerProvider receives the spans of sends (nil: tracing is off,
	// and no span is made).
	TracerProvider trace.TracerProvider
	// UpgradeLimiter, keyed by client address (Proxies.ClientKey of the
	// request), limits upgrades (default: no limit); a refused one gets
	// 429 with Retry-After.
	UpgradeLimiter *limits.Limiter
	// Proxies are the reverse proxies whose X-Forwarded-For names the
	// client that UpgradeLimiter counts (default: none, the TCP peer is
	// the client).
	Proxies *limits.TrustedProxies
}

// Handler accepts WebSocket upgrades and serves the protocol against a
// convo.Service. It keeps a registry of its live connections so that
// Shutdown can close them.
type Handler struct {
	svc     *convo.Service
	opts    Options
	log     *slog.Logger
	metrics *metrics.Metrics
	tracer  trace.Tracer
	ids     atomic.Uint64
	slots   *limits.Slots

	mu    sync.Mutex
	conns map[*conn]struct{}
	// refusing, once set by StopAccepting or Shutdown, refuses upgrades;
	// closed, set by Shutdown, also closes the connections.
	refusing bool
	closed   bool
	// live counts the connections being served; Shutdown waits for it.
	live sync.WaitGroup
}

// NewHandler returns a Handler serving svc.
func NewHandler(svc *convo.Service, opts Options) *Handler {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.User == nil {
		opts.User = auth.None(auth.LocalUser)
	}
	if opts.MaxFrameBytes == 0 {
		opts.MaxFrameBytes = DefaultMaxFrameBytes
	}
	if opts.SendQueue <= 0 {
		opts.SendQueue = DefaultSendQueue
	}
	if opts.SendQueueBytes <= 0 {
		opts.SendQueueBytes = DefaultSendQueueBytes
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	if opts.PingInterval <= 0 {
		opts.PingInterval = DefaultPingInterval
	}
	if opts.Metrics == nil {
		opts.Metrics = metrics.New()
	}
	if opts.MaxSubscriptions <= 0 {
		opts.MaxSubscriptions = DefaultMaxSubscriptions
	}
	h := &Handler{svc: svc, opts: opts, log: opts.Logger, metrics: opts.Metrics,
		slots: limits.NewSlots(opts.MaxConns, opts.MaxConnsPerUser), conns: make(map[*conn]struct{})}
	if opts.TracerProvider != nil {
		h.tracer = opts.TracerProvider.Tracer("github.com/chatgateway/gateway/internal/conn")
	}
	return h
}

// errShuttingDown refuses upgrades once StopAccepting or Shutdown has
// been called.
var errShuttingDown = protocol.Errorf(protocol.CodeUnavailable, "the gateway is shutting down")

// ServeHTTP upgrades r to a WebSocket and returns; a goroutine of the
// connection's own serves it until it closes, and Shutdown waits for it.
// The query parameters conversation=ID&after=N subscribe at once. An
// upgrade is refused, before any socket is opened, while the handler is
// not accepting (503 unavailable), by the upgrade rate limit (429), by
// the User hook (401), by the connection bounds (503 busy) and by the
// origin check (403).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	caller, err := h.admit(r)
	user := caller.User
	if err != nil {
		h.refuse(w, err)
		return
	}
	cw := &cork.Response{ResponseWriter: w}
	rw := &refusalWriter{Response: cw}
	ws, err := websocket.Accept(rw, r, &websocket.AcceptOptions{OriginPatterns: h.opts.OriginPatterns})
	if err != nil {
		h.slots.Release(user)
		// Accept's error quotes the request's headers in full.
		h.log.Debug("websocket upgrade refused", "err", limits.Echo(err.Error()))
		if rw.status != 0 {
			h.refuse(w, rw.refusal())
		}
		return
	}
	ws.SetReadLimit(h.opts.MaxFrameBytes)
	c := newConn(h, ws, cw.Sock, caller, h.opts.Proxies.Client(r))
	if !h.register(c) {
		h.slots.Release(user)
		_ = ws.Close(websocket.StatusGoingAway, "server shutting down")
		return
	}
	// Accept has hijacked the socket, so it outlives this request. Serving
	// it on a new goroutine frees net/http's goroutine, with the stack
	// the router and middleware grew, the request and its context: an
	// idle connection costs one small stack. Nothing below uses r.
	go h.serve(c, r.URL.RawQuery)
}

// serve runs c until it ends, then gives back its slot and registry entry.
func (h *Handler) serve(c *conn, query string) {
	defer h.unregister(c)
	defer h.slots.Release(c.user)
	c.serve(query)
}

// admit decides whether r may upgrade, cheapest check first, and returns
// its caller with a connection slot taken.
func (h *Handler) admit(r *http.Request) (auth.Caller, error) {
	if h.isRefusing() {
		return auth.Caller{}, errShuttingDown
	}
	if err := h.opts.UpgradeLimiter.Allow(h.opts.Proxies.ClientKey(r)); err != nil {
		return auth.Caller{}, err
	}
	c, err := h.opts.User(r)
	if err != nil {
		return auth.Caller{}, &authError{err}
	}
	if err := h.slots.Acquire(c.User); err != nil {
		return auth.Caller{}, err
	}
	return c, nil
}

// authError marks a refusal by the User hook, answered by auth.Reject.
type authError struct{ error }

// Unwrap returns the User hook's error.
func (e *authError) Unwrap() error { return e.error }

// refuse answers an upgrade that admit refused, and counts it.
func (h *Handler) refuse(w http.ResponseWriter, err error) {
	if ae := (*authError)(nil); errors.As(err, &ae) {
		h.metrics.Errors.WithLabelValues(auth.Refusal(ae.error).Code).Inc()
		h.log.Debug("websocket upgrade unauthorized", "err", limits.Echo(ae.Error()))
		auth.Reject(w, ae.error)
		return
	}
	h.metrics.Errors.WithLabelValues(protocol.AsError(err).Code).Inc()
	httperr.Write(w, h.log, err)
}

func (h *Handler) isRefusing() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.refusing
}

// StopAccepting refuses new upgrades with 503 unavailable from now on,
// while the open connections go on; a draining gateway calls it before
// letting the running turns finish, and Shutdown after.
func (h *Handler) StopAccepting() {
	h.mu.Lock()
	h.refusing = true
	h.mu.Unlock()
}

// register adds c to the registry unless Shutdown has begun.
func (h *Handler) register(c *conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.conns[c] = struct{}{}
	h.live.Add(1)
	h.metrics.Connections.Inc()
	return true
}

func (h *Handler) unregister(c *conn) {
	h.mu.Lock()
	delete(h.conns, c)
	h.mu.Unlock()
	h.metrics.Connections.Dec()
	h.live.Done()
}

// Shutdown refuses new connections, closes every live one with 1001 (going
// away) once the frames already queued for it are written, and waits for
// them to end. When ctx is done first it drops the rest and returns
// ctx.Err().
func (h *Handler) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	h.refusing, h.closed = true, true
	for c := range h.conns {
		c.closeAfterQueue(websocket.StatusGoingAway, "server shutting down")
	}
	h.mu.Unlock()

	done := make(chan struct{})
	go func() {
		h.live.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	h.mu.Lock()
	for c := range h.conns {
		c.noteEnd(endShutdown)
		_ = c.ws.CloseNow()
	}
	h.mu.Unlock()
	<-done
	return ctx.Err()
}
