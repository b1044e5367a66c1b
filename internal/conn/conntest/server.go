package conntest

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"

	"github.com/chatgateway/gateway/internal/conn"
	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/convo/boltlog"
	"github.com/chatgateway/gateway/internal/demo"
	"github.com/chatgateway/gateway/internal/httpapi"
)

// Config describes a test gateway. Zero values mean: the demo model
// without pauses, a fresh database in t.TempDir(), default limits.
type Config struct {
	Model convo.Model
	Convo convo.Config
	Conn  conn.Options
	API   httpapi.Options
	// Path is the database file.
	Path string
	// SendBuffer, when > 0, sets the kernel send buffer of every accepted
	// connection, so that a client that stops reading fills it quickly.
	SendBuffer int
	// ConnState, when not nil, is the HTTP server's ConnState hook: a
	// test sees when the gateway closes a connection.
	ConnState func(net.Conn, http.ConnState)
	// WrapLog, when not nil, returns the Log the Service runs on, given
	// the bbolt one: a test's wrapper that lands a concurrent call at a
	// chosen point of a read or an append.
	WrapLog func(convo.Log) convo.Log
	// Log, when not nil, is the Log the Service runs on instead of a
	// bbolt file (Path and WrapLog are then unused): a cluster-mode
	// test's jetlog.Store, which the Service owns from then on.
	Log convo.Log
}

// Server is a gateway serving its real HTTP API and WebSocket handler on
// loopback, with a real bbolt database. Its listener taps every
// connection, so that no test's frames escape the spec check.
type Server struct {
	URL  string
	Path string
	Svc  *convo.Service
	WS   *conn.Handler
	HTTP *httptest.Server

	// rec holds the frames the server's connections carried, both
	// ways, for Close to check.
	rec       *recording
	open      *openConns // for Drop
	closeOnce sync.Once
}

// Start starts a test gateway and stops it when the test ends.
func Start(t testing.TB, cfg Config) *Server {
	t.Helper()
	log := Logger(t)
	if cfg.Model == nil {
		cfg.Model = demo.New(demo.Options{WordDelay: -1})
	}
	if cfg.Path == "" {
		cfg.Path = filepath.Join(t.TempDir(), "gateway.db")
	}
	if cfg.Convo.Logger == nil {
		cfg.Convo.Logger = log
	}
	if cfg.Conn.Logger == nil {
		cfg.Conn.Logger = log
	}
	if cfg.API.Logger == nil {
		cfg.API.Logger = log
	}
	l := cfg.Log
	if l == nil {
		bolt, err := boltlog.Open(cfg.Path, boltlog.Options{Metrics: cfg.Convo.Metrics, TracerProvider: cfg.Convo.TracerProvider})
		if err != nil {
			t.Fatalf("open the log: %v", err)
		}
		l = bolt
		if cfg.WrapLog != nil {
			l = cfg.WrapLog(bolt)
		}
	}
	// New closes l if it fails.
	svc, err := convo.New(l, cfg.Model, cfg.Convo)
	if err != nil {
		t.Fatalf("open the service: %v", err)
	}
	ws := conn.NewHandler(svc, cfg.Conn)
	cfg.API.WebSocket = ws
	if cfg.API.AllowedOrigins == nil {
		// One list for both, as main passes -allowed-origins.
		cfg.API.AllowedOrigins = cfg.Conn.OriginPatterns
	}
	srv := httptest.NewUnstartedServer(httpapi.New(svc, cfg.API))
	if cfg.SendBuffer > 0 {
		srv.Listener = bufferListener{Listener: srv.Listener, size: cfg.SendBuffer}
	}
	srv.Config.ConnState = cfg.ConnState
	rec, open := record(srv)
	srv.Start()
	s := &Server{URL: srv.URL, Path: cfg.Path, Svc: svc, WS: ws, HTTP: srv, rec: rec, open: open}
	t.Cleanup(func() { s.Close(t) })
	return s
}

// Check makes srv, a gateway not yet started, check what it serves as a
// Server of Start does: once the test's cleanups have closed srv, every
// WebSocket frame its connections carried (but the requests of a Client)
// against protocol/asyncapi.yaml and every HTTP exchange against
// protocol/openapi.yaml. Call it before the cleanup that closes srv is
// registered, so that it runs after. For tests whose clients are not
// this package's, such as a browser.
func Check(t testing.TB, srv *httptest.Server) {
	rec, _ := record(srv)
	t.Cleanup(func() { rec.check(t) })
}

// record makes srv record its WebSocket frames and HTTP exchanges, and
// keep its open connections.
func record(srv *httptest.Server) (*recording, *openConns) {
	rec, open := &recording{}, &openConns{}
	srv.Config.Handler = checkedHandler{h: srv.Config.Handler, rec: rec}
	srv.Listener = tapListener{Listener: srv.Listener, rec: rec, open: open}
	return rec, open
}

// Drop cuts every connection the gateway has open, WebSockets included,
// without a close frame: what a failing network or load balancer does.
func (s *Server) Drop() { s.open.closeAll() }

// Close stops the gateway as main does: WebSockets closed with 1001, the
// service closed, the listener closed; then it checks every WebSocket
// frame the gateway sent, and every request of a client other than Client
// (the Go client, say), against protocol/asyncapi.yaml, and every HTTP
// exchange it served against protocol/openapi.yaml. It runs once.
func (s *Server) Close(t testing.TB) {
	s.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), Timeout)
		defer cancel()
		s.HTTP.Close()
		if err := s.Svc.Close(ctx); err != nil {
			t.Errorf("closing the service: %v", err)
		}
		if err := s.WS.Shutdown(ctx); err != nil {
			t.Errorf("closing the WebSockets: %v", err)
		}
		s.rec.check(t)
	})
}

// Dial connects a client to the server's /v1/ws with query (e.g.
// "conversation=c&after=3", or "").
func (s *Server) Dial(t testing.TB, query string) *Client {
	t.Helper()
	return DialWith(t, s.URL, WSPath(query), 0)
}

// WSPath is /v1/ws with query, if not empty.
func WSPath(query string) string {
	if query == "" {
		return "/v1/ws"
	}
	return "/v1/ws?" + query
}

// bufferListener sets the send buffer of the connections it accepts.
type bufferListener struct {
	net.Listener
	size int
}

func (l bufferListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(l.size)
	}
	return c, err
}

// Logger returns a logger that writes to t.Log, at debug level.
func Logger(t testing.TB) *slog.Logger {
	return LoggerAt(t, slog.LevelDebug)
}

// LoggerAt returns a logger that writes records of level and above to
// t.Log, for tests whose thousands of connections would fill the test's
// log (and spend its CPU) with debug lines.
func LoggerAt(t testing.TB, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}

var _ io.Writer = testWriter{}

// Deadline is a context for one test step that should not hang.
func Deadline(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	t.Cleanup(cancel)
	return ctx
}
