// Package httpapi is the gateway's HTTP surface on chi: health and
// readiness, /v1/info, the conversation REST API of the wire contract, the
// WebSocket endpoint and the demo page.
package httpapi

import (
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/chatgateway/gateway/internal/auth"
	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/httperr"
	"github.com/chatgateway/gateway/internal/limits"
	"github.com/chatgateway/gateway/internal/metrics"
	"github.com/chatgateway/gateway/protocol"
)

// MaxBodyBytes is the default bound on a request body.
const MaxBodyBytes = 1 << 20

// BodyTimeout is the default time a request has to deliver its body.
const BodyTimeout = time.Minute

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
	// User names the caller of every request under /v1/conversations (the
	// request's context carries it: see auth.CallerFrom); an error
	// refuses it with 401 as auth.Reject answers. The probes,
	// /metrics, /v1/info and the page are open to all; /v1/ws
	// authenticates in its own handler. Default: every caller is auth.LocalUser.
	User func(*http.Request) (auth.Caller, error)
	// SendLimiter, keyed by user, limits the requests that store
	// something: POST …/messages, POST /v1/conversations and POST
	// …/actions (default: no limit); a refused one gets 429 rate_limited
	// with Retry-After and retry_after_ms.
	SendLimiter *limits.Limiter
	// Sizes bounds the title and system prompt of a create and the size
	// of an action (default: limits' defaults); a larger one gets 413
	// too_large.
	Sizes limits.Sizes
	// MaxBodyBytes bounds a request body (default MaxBodyBytes); a larger
	// one gets 413 too_large.
	MaxBodyBytes int64
	// BodyTimeout bounds the time a request takes to deliver its body
	// once its headers are read (default BodyTimeout), so that a client
	// trickling a body cannot hold a handler and its buffer for long; a
	// late one gets 400 bad_request, or the refusal it would have got
	// anyway.
	BodyTimeout time.Duration
	// WriteTimeout bounds the time each part (64 KiB) of an answer takes
	// to reach the client (default WriteTimeout); a client that stops
	// reading has its connection closed, and its answer cut short.
	WriteTimeout time.Duration
	// AllowedOrigins lists the origin patterns, besides the gateway's own
	// origin, whose pages may make state-changing requests (see
	// coder/websocket's AcceptOptions.OriginPatterns for the syntax; pass
	// the WebSocket handler the same list). A state-changing request or
	// an upgrade with any other Origin is refused with 403 forbidden.
	AllowedOrigins []string
	// Loopback, set when the gateway listens only on loopback addresses,
	// refuses with 403 forbidden every request whose Host is neither a
	// loopback name nor matched by AllowedOrigins: a page whose own name
	// was rebound to 127.0.0.1 must not reach the gateway.
	Loopback bool
	// Proxies names the client of each request in the request log, as
	// the per-IP limits count it (see limits.TrustedProxies.Client): give
	// it the limits' own proxies. Default: no proxy is believed, every
	// client is its TCP peer.
	Proxies *limits.TrustedProxies
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
		opts.User = auth.None(auth.LocalUser)
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = MaxBodyBytes
	}
	if opts.BodyTimeout <= 0 {
		opts.BodyTimeout = BodyTimeout
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = WriteTimeout
	}

	serveMetrics := opts.Metrics != nil
	if !serveMetrics {
		opts.Metrics = metrics.New()
	}
	a := &api{svc: svc, opts: opts, log: opts.Logger}
	r := chi.NewRouter()
	// nosniff on every answer: a browser never reads one (JSON with a
	// model's or a user's text, an error) as anything but its type.
	r.Use(a.bodyDeadline, logRequests(a.log, opts.Proxies), a.writeDeadline, middleware.SetHeader("X-Content-Type-Options", "nosniff"), a.checkHost, headAsGet)
	r.NotFound(a.notFound)
	r.MethodNotAllowed(a.methodNotAllowed(r))
	// Every route goes in this group (those under /v1/conversations, in
	// a subrouter, below): its requests pass the origin and content-type
	// checks, and only those of a route that exists, so that a wrong path
	// or method is told as such first.
	r.Group(func(r chi.Router) {
		r.Use(a.checkOrigin, a.requireJSON)
		r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) { writeText(w, http.StatusOK, "ok") })
		r.Get("/readyz", a.ready)
		r.Get("/v1/info", func(w http.ResponseWriter, _ *http.Request) { httperr.WriteJSON(w, http.StatusOK, a.opts.Info) })
		if opts.WebSocket != nil {
			r.Get("/v1/ws", opts.WebSocket.ServeHTTP)
		}
		if serveMetrics {
			r.Get("/metrics", opts.Metrics.Handler().ServeHTTP)
		}
		r.With(a.authenticate).Get("/v1/agents", a.with(a.agents))
		// The page serves every other path; unknown API paths get a JSON
		// 404, not the page's.
		r.Get("/*", func(w http.ResponseWriter, r *http.Request) {
			if opts.Page == nil || strings.HasPrefix(r.URL.Path, "/v1/") {
				a.notFound(w, r)
				return
			}
			opts.Page.ServeHTTP(w, r)
		})
	})
	// A subrouter is called for every request under its path, whatever
	// the method: the checks, and the caller's authentication, go on each
	// of its routes, not on it, so that a wrong path or method is told as
	// such first here too.
	checked := func(r chi.Router) chi.Router {
		return r.With(a.checkOrigin, a.requireJSON, a.authenticate)
	}
	r.Route("/v1/conversations", func(r chi.Router) {
		checked(r).Get("/", a.with(a.list))
		checked(r).Post("/", a.with(a.create))
		r.Route("/{id}", func(r chi.Router) {
			r = checked(r)
			r.Get("/", a.withID(a.get))
			r.Delete("/", a.withID(a.delete))
			r.Get("/messages", a.withID(a.history))
			r.Post("/messages", a.withID(a.send))
			r.Get("/events", a.withID(a.events))
			r.Post("/actions", a.withID(a.action))
			r.Post("/cancel", a.withID(a.cancel))
			r.Post("/calls/{call}/approval", a.withID(a.answer(protocol.TypeApprove)))
			r.Post("/calls/{call}/output", a.withID(a.answer(protocol.TypeToolOutput)))
		})
	})
	return r
}

// headAsGet routes a HEAD request as the GET of its path (net/http sends
// no body for it): no route serves HEAD itself. chi's middleware.GetHead
// does not do that under a subrouter: its look-ahead for a HEAD route
// there finds the mount's pattern, so HEAD /v1/conversations was a 405
// whose Allow listed HEAD.
func headAsGet(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodHead {
			chi.RouteContext(r.Context()).RouteMethod = http.MethodGet
		}
		next.ServeHTTP(w, r)
	})
}

// notFound answers a path no route serves.
func (a *api) notFound(w http.ResponseWriter, r *http.Request) {
	a.fail(w, protocol.Errorf(protocol.CodeNotFound, "no route for %s", limits.Echo(r.URL.Path)))
}

// methodNotAllowed answers a request whose path the router has, but not
// for its method, with 405 and the methods it has in Allow. The page's
// catch-all GET does not count: a POST to a path only the page serves is
// a 404.
func (a *api) methodNotAllowed(routes chi.Routes) http.HandlerFunc {
	type route struct {
		segments []string
		method   string
	}
	// The routes are registered after this handler; walk them once they are.
	routeTable := sync.OnceValue(func() []route {
		var table []route
		_ = chi.Walk(routes, func(method, pattern string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
			if pattern != "/*" {
				table = append(table, route{splitPath(pattern), method})
			}
			return nil
		})
		return table
	})
	return func(w http.ResponseWriter, r *http.Request) {
		table, path := routeTable(), splitPath(r.URL.Path)
		var allow []string
		for _, m := range []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
			if slices.ContainsFunc(table, func(rt route) bool { return rt.method == m && matchPath(rt.segments, path) }) {
				allow = append(allow, m)
			}
		}
		if len(allow) == 0 {
			a.notFound(w, r)
			return
		}
		if allow[0] == http.MethodGet && !slices.Contains(allow, http.MethodHead) {
			allow = slices.Insert(allow, 1, http.MethodHead) // headAsGet serves it
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		a.fail(w, protocol.Errorf(protocol.CodeMethodNotAllowed, "method %s not allowed on %s", limits.Echo(r.Method), limits.Echo(r.URL.Path)))
	}
}

// splitPath splits a path or route pattern into its segments, ignoring a
// trailing slash as the router does for a subrouter's "/".
func splitPath(p string) []string {
	return strings.Split(strings.Trim(p, "/"), "/")
}

// matchPath reports whether path matches a route pattern's segments: a
// {param} matches one segment, a * the rest.
func matchPath(pattern, path []string) bool {
	for i, seg := range pattern {
		switch {
		case seg == "*":
			return true
		case i >= len(path):
			return false
		case strings.HasPrefix(seg, "{"):
		case seg != path[i]:
			return false
		}
	}
	return len(pattern) == len(path)
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
	return auth.Middleware(func(r *http.Request) (auth.Caller, error) {
		c, err := a.opts.User(r)
		if err != nil {
			a.opts.Metrics.Errors.WithLabelValues(auth.Refusal(err).Code).Inc()
		}
		return c, err
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
