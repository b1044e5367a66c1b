// Package conn serves the gateway's WebSocket protocol (GET /v1/ws): one
// reader goroutine per connection decodes requests and calls convo, and one
// writer goroutine drains a bounded outgoing queue to the socket.
package conn

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/httpapi/httperr"
	"github.com/chatgateway/gateway/internal/metrics"
	"github.com/chatgateway/gateway/protocol"
)

// Defaults for Options.
const (
	DefaultMaxFrameBytes = 1 << 20
	DefaultSendQueue     = 1024
	DefaultWriteTimeout  = 10 * time.Second
	DefaultPingInterval  = 30 * time.Second
)

// LocalUser is the user every connection runs as when Options.User is nil.
const LocalUser = "local"

// Options tunes a Handler. Zero values mean the documented defaults.
type Options struct {
	// Logger receives the connections' logs (default slog.Default()).
	Logger *slog.Logger
	// User names the caller of an upgrade request. An error refuses the
	// upgrade with the HTTP status of its *protocol.Error code. Default:
	// every caller is LocalUser.
	User func(*http.Request) (string, error)
	// MaxFrameBytes bounds a client frame (default 1 MiB); a larger one
	// closes the connection with 1009.
	MaxFrameBytes int64
	// SendQueue bounds the frames waiting to be written to one connection
	// (default 1024); a connection whose queue overflows is closed with
	// 1008 "slow consumer".
	SendQueue int
	// WriteTimeout bounds each write to the socket, and the wait for the
	// pong that answers a keepalive ping (default 10 s).
	WriteTimeout time.Duration
	// PingInterval is the time between keepalive pings (default 30 s).
	PingInterval time.Duration
	// Metrics receives the connection metrics (default: a private set).
	Metrics *metrics.Metrics
	// OriginPatterns lists the other origins whose pages may connect (see
	// websocket.AcceptOptions); the gateway's own origin always may.
	OriginPatterns []string
}

// Handler accepts WebSocket upgrades and serves the protocol against a
// convo.Service. It keeps a registry of its live connections so that
// Shutdown can close them.
type Handler struct {
	svc     *convo.Service
	opts    Options
	log     *slog.Logger
	metrics *metrics.Metrics
	ids     atomic.Uint64

	mu     sync.Mutex
	conns  map[*conn]struct{}
	closed bool
	// live counts the connections being served; Shutdown waits for it.
	live sync.WaitGroup
}

// NewHandler returns a Handler serving svc.
func NewHandler(svc *convo.Service, opts Options) *Handler {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.User == nil {
		opts.User = func(*http.Request) (string, error) { return LocalUser, nil }
	}
	if opts.MaxFrameBytes == 0 {
		opts.MaxFrameBytes = DefaultMaxFrameBytes
	}
	if opts.SendQueue <= 0 {
		opts.SendQueue = DefaultSendQueue
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
	return &Handler{svc: svc, opts: opts, log: opts.Logger, metrics: opts.Metrics, conns: make(map[*conn]struct{})}
}

// errShuttingDown refuses upgrades once Shutdown has begun.
var errShuttingDown = protocol.Errorf(protocol.CodeUnavailable, "the gateway is shutting down")

// ServeHTTP upgrades r to a WebSocket and serves it until it closes. The
// query parameters conversation=ID&after=N subscribe at once.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	user, err := h.opts.User(r)
	if err == nil && h.isClosed() {
		err = errShuttingDown
	}
	if err != nil {
		h.metrics.Errors.WithLabelValues(protocol.AsError(err).Code).Inc()
		httperr.Write(w, h.log, err)
		return
	}
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: h.opts.OriginPatterns})
	if err != nil {
		// Accept has answered the request.
		h.log.Debug("websocket upgrade refused", "err", err)
		return
	}
	ws.SetReadLimit(h.opts.MaxFrameBytes)
	c := newConn(h, ws, user)
	if !h.register(c) {
		_ = ws.Close(websocket.StatusGoingAway, "server shutting down")
		return
	}
	defer h.unregister(c)
	c.serve(r.URL.Query())
}

func (h *Handler) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
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
	h.closed = true
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
		_ = c.ws.CloseNow()
	}
	h.mu.Unlock()
	<-done
	return ctx.Err()
}
