package httpapi

import (
	"mime"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/chatgateway/gateway/internal/limits"
	"github.com/chatgateway/gateway/protocol"
)

// The checks below keep web pages of other sites from using the gateway
// through a visitor's browser (see docs/SECURITY.md): they refuse a
// request before it reaches its route, with one JSON error each.

// checkHost refuses, when the gateway listens only on loopback, a request
// whose Host is neither a loopback name nor the host of an allowed origin:
// a page that rebinds its own DNS name to 127.0.0.1 is same-origin with
// itself, so only its Host gives it away.
func (a *api) checkHost(next http.Handler) http.Handler {
	if !a.opts.Loopback {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !loopbackHost(r.Host) && !matchesOrigin(a.opts.AllowedOrigins, "", r.Host) {
			a.fail(w, protocol.Errorf(protocol.CodeForbidden, "Host %s is not a loopback name or an allowed origin", limits.Quote(r.Host)))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// loopbackHost reports whether host (a Host header: name or address, with
// an optional port) names the local machine: localhost, a name under
// .localhost, or a loopback address.
func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// checkOrigin refuses a state-changing request or a WebSocket upgrade that
// carries an Origin other than the gateway's own (the request's Host) or
// an allowed one. Requests without Origin come from programs, not pages,
// and pass.
func (a *api) checkOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" || safeMethod(r.Method) && !isUpgrade(r) {
			next.ServeHTTP(w, r)
			return
		}
		u, err := url.Parse(origin)
		if err != nil || u.Host == "" {
			a.fail(w, protocol.Errorf(protocol.CodeForbidden, "Origin %s is not allowed", limits.Quote(origin)))
			return
		}
		if !strings.EqualFold(u.Host, r.Host) && !matchesOrigin(a.opts.AllowedOrigins, u.Scheme, u.Host) {
			a.fail(w, protocol.Errorf(protocol.CodeForbidden, "Origin %s is not allowed", limits.Quote(origin)))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// matchesOrigin reports whether an origin with scheme and host matches
// one of patterns, as coder/websocket's AcceptOptions.OriginPatterns
// does, so that -allowed-origins means the same for HTTP and WebSocket: a
// pattern is a path.Match pattern over the host[:port], or over
// scheme://host[:port] when it contains "://". With scheme "" (a Host
// header, which has none) a pattern with a scheme is matched on its
// host part.
func matchesOrigin(patterns []string, scheme, host string) bool {
	host = strings.ToLower(host)
	for _, p := range patterns {
		p = strings.ToLower(p)
		target := host
		if _, h, ok := strings.Cut(p, "://"); ok {
			if scheme == "" {
				p = h
			} else {
				target = strings.ToLower(scheme) + "://" + host
			}
		}
		if ok, err := path.Match(p, target); ok && err == nil {
			return true
		}
	}
	return false
}

// requireJSON refuses a state-changing request whose Content-Type is not
// application/json with 415. A page can send a cross-site POST without
// asking the gateway first only with a form or text content type, so
// this alone keeps such pages from writing, whatever Origin they send.
func (a *api) requireJSON(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !safeMethod(r.Method) {
			mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
			if err != nil || mt != "application/json" {
				a.fail(w, protocol.Errorf(protocol.CodeUnsupportedMediaType,
					"Content-Type: %s needs application/json, not %s", limits.Echo(r.Method), limits.Quote(r.Header.Get("Content-Type"))))
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// safeMethod reports whether method only reads.
func safeMethod(method string) bool {
	return method == http.MethodGet || method == http.MethodHead || method == http.MethodOptions
}

// isUpgrade reports whether r asks for a WebSocket.
func isUpgrade(r *http.Request) bool {
	for _, v := range r.Header.Values("Upgrade") {
		for tok := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(tok), "websocket") {
				return true
			}
		}
	}
	return false
}
