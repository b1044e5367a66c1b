package httpapi

import (
	"bufio"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/chatgateway/gateway/internal/limits"
)

// logRequests logs every request once it is served: method, path, client
// (as proxies.Client finds it, so that a refused or slow request can be
// traced to its sender), status, bytes and duration. Probes log at debug
// level. A WebSocket upgrade is logged once upgraded, with status 101 and
// the upgrade's duration; the connection itself goes on in its own
// goroutine (see internal/conn).
func logRequests(log *slog.Logger, proxies *limits.TrustedProxies) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			rec := &recorder{ResponseWriter: w}
			next.ServeHTTP(rec, r)
			level := slog.LevelInfo
			if r.URL.Path == "/healthz" || r.URL.Path == "/readyz" {
				level = slog.LevelDebug
			}
			status := rec.status
			if status == 0 {
				status = http.StatusOK
			}
			log.Log(r.Context(), level, "http request", "method", limits.Echo(r.Method), "path", limits.Echo(r.URL.Path),
				"client", proxies.Client(r), "status", status, "bytes", rec.bytes, "duration", time.Since(start))
		})
	}
}

// recorder notes the status and size of a response.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (rec *recorder) WriteHeader(status int) {
	if rec.status == 0 {
		rec.status = status
	}
	rec.ResponseWriter.WriteHeader(status)
}

func (rec *recorder) Write(b []byte) (int, error) {
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	n, err := rec.ResponseWriter.Write(b)
	rec.bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (rec *recorder) Unwrap() http.ResponseWriter { return rec.ResponseWriter }

// Hijack hands the connection to a WebSocket and records the upgrade.
func (rec *recorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(rec.ResponseWriter).Hijack()
	if err == nil {
		rec.status = http.StatusSwitchingProtocols
	}
	return conn, rw, err
}
