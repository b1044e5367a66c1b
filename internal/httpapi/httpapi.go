// Package httpapi is the gateway's HTTP surface on chi: health and
// readiness, /v1/info, the conversation REST API of the wire contract, the
// WebSocket endpoint and the demo page.
package httpapi

import (
	"log/slog"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/chatgateway/gateway/internal/auth"
	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/httpapi/httperr"
	"github.com/chatgateway/gateway/internal/limits"
	"github.com/chatgateway/gateway/internal/metrics"
	"github.com/chatgateway/gateway/protocol"
)

// MaxBodyBytes is the default bound on a request body.
const MaxBodyBytes = 1 << 20

// Info describes the running gateway for GET /v1/info.
type Info struct {
	Provider     string `json:"provider"`
	DefaultModel string `json:"default_model"`
	Version      string `json:"version"`
	Auth         string `json:"auth"`
}

// Options configures the handler New returns. Zero values mean the
// documented defaults.
type Options struct {
	// Logger receives request logs and unexpected errors (default
	// slog.Default()).
	Logger *slog.Logger
	// Info is what GET /v1/info answers.
	Info Info
	// WebSocket serves GET /v1/ws when set.
	WebSocket http.Handler
	// Page serves every path the API does not, the demo page at "/", when
	// set.
	Page http.Handler
	// Metrics counts the error answers by code, and is served at GET
	// /metrics (default: a private set, not served).
	Metrics *metrics.Metrics
	// Ready reports whether the gateway takes traffic (its store is open
	// and it is not draining); nil means always. GET /readyz answers 503
	// when it returns false.
	Ready func() bool
	// User names the caller of every request under /v1/conversations; an
	// error refuses it with 401 as auth.Reject answers. The probes,
	// /metrics, /v1/info and the page are open to all; /v1/ws
	// authenticates in its own handler. Default: every caller is "local".
	User func(*http.Request) (string, error)
	// SendLimiter, keyed by user, limits POST …/messages (default: no
	// limit); a refused send gets 429 rate_limited with Retry-After and
	// retry_after_ms.
	SendLimiter *limits.Limiter
	// MaxBodyBytes bounds a request body (default MaxBodyBytes); a larger
	// one gets 413 too_large.
	MaxBodyBytes int64
}

// api holds what the route handlers share.
type api struct {
	svc  *convo.Service
	opts Options
	log  *slog.Logger
}

// New returns the gateway's HTTP handler serving svc.
func New(svc *convo.Service, opts Options) http.Handler {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.User == nil {
		opts.User = auth.None("local")
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = MaxBodyBytes
	}

	serveMetrics := opts.Metrics != nil
	if !serveMetrics {
		opts.Metrics = metrics.New()
	}
	a := &api{svc: svc, opts: opts, log: opts.Logger}
	r := chi.NewRouter()
	r.Use(logRequests(a.log))
	notFound := func(w http.ResponseWriter, r *http.Request) {
		a.fail(w, protocol.Errorf(protocol.CodeNotFound, "no route for %s", r.URL.Path))
	}
	r.NotFound(notFound)
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		httperr.WriteJSON(w, http.StatusMethodNotAllowed, httperr.Body{Error: protocol.Errorf(protocol.CodeBadRequest, "method %s not allowed on %s", r.Method, r.URL.Path)})
	})
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) { writeText(w, http.StatusOK, "ok") })
	r.Get("/readyz", a.ready)
	r.Get("/v1/info", func(w http.ResponseWriter, _ *http.Request) { httperr.WriteJSON(w, http.StatusOK, a.opts.Info) })
	if opts.WebSocket != nil {
		r.Get("/v1/ws", opts.WebSocket.ServeHTTP)
	}
	if serveMetrics {
		r.Get("/metrics", opts.Metrics.Handler().ServeHTTP)
	}
	r.Route("/v1/conversations", func(r chi.Router) {
		r.Use(a.authenticate)
		r.Get("/", a.with(a.list))
		r.Post("/", a.with(a.create))
		r.Route("/{id}", func(r chi.Router) {
			r.Get("/", a.withID(a.get))
			r.Delete("/", a.withID(a.delete))
			r.Get("/messages", a.withID(a.history))
			r.Post("/messages", a.withID(a.send))
			r.Get("/events", a.withID(a.events))
			r.Post("/actions", a.withID(a.action))
			r.Post("/cancel", a.withID(a.cancel))
		})
	})
	// Unknown API paths get a JSON 404, not the page's.
	r.HandleFunc("/v1/*", notFound)
	if opts.Page != nil {
		r.Handle("/*", opts.Page)
	}
	return r
}

func (a *api) ready(w http.ResponseWriter, _ *http.Request) {
	if a.opts.Ready != nil && !a.opts.Ready() {
		a.fail(w, protocol.Errorf(protocol.CodeUnavailable, "not ready"))
		return
	}
	writeText(w, http.StatusOK, "ok")
}

// authenticate names the caller with Options.User (see auth.UserFrom), or
// refuses the request with 401.
func (a *api) authenticate(next http.Handler) http.Handler {
	return auth.Middleware(func(r *http.Request) (string, error) {
		user, err := a.opts.User(r)
		if err != nil {
			a.opts.Metrics.Errors.WithLabelValues(protocol.CodeUnauthorized).Inc()
		}
		return user, err
	})(next)
}

func (a *api) fail(w http.ResponseWriter, err error) {
	a.opts.Metrics.Errors.WithLabelValues(protocol.AsError(err).Code).Inc()
	httperr.Write(w, a.log, err)
}

func writeText(w http.ResponseWriter, status int, text string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(text + "\n"))
}
