package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatgateway/gateway/internal/auth"
	"github.com/chatgateway/gateway/internal/conn"
	"github.com/chatgateway/gateway/internal/conn/conntest"
	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/convo/boltlog"
	"github.com/chatgateway/gateway/internal/httpapi"
	"github.com/chatgateway/gateway/protocol"
	"github.com/chatgateway/gateway/web"
)

// stepModel is a convo.Model the test drives: each reply streams the
// chunks the test hands it with say and ends when the test calls end, so a
// test can look at the page between any two chunks without sleeping.
type stepModel struct {
	chunks chan convo.Chunk
	ends   chan convo.Result
	fails  chan error
}

func newStepModel() *stepModel {
	return &stepModel{chunks: make(chan convo.Chunk), ends: make(chan convo.Result), fails: make(chan error)}
}

func (m *stepModel) Stream(ctx context.Context, _ convo.ModelRequest, emit func(convo.Chunk)) (convo.Result, error) {
	for {
		select {
		case c := <-m.chunks:
			emit(c)
		case r := <-m.ends:
			return r, nil
		case err := <-m.fails:
			return convo.Result{}, err
		case <-ctx.Done():
			return convo.Result{}, fmt.Errorf("step model: %w", ctx.Err())
		}
	}
}

// say hands the running reply a text chunk.
func (m *stepModel) say(t *testing.T, text string) {
	t.Helper()
	select {
	case m.chunks <- convo.Chunk{Kind: convo.ChunkText, Text: text}:
	case <-time.After(stepTimeout):
		t.Fatalf("no reply was streaming to take %q", text)
	}
}

// end finishes the running reply with usage in/out.
func (m *stepModel) end(t *testing.T, in, out int64) {
	t.Helper()
	m.finish(t, convo.Result{StopReason: protocol.StopEndTurn, Usage: protocol.Usage{InputTokens: in, OutputTokens: out}})
}

// finish ends the running model call with r.
func (m *stepModel) finish(t *testing.T, r convo.Result) {
	t.Helper()
	select {
	case m.ends <- r:
	case <-time.After(stepTimeout):
		t.Fatal("no reply was streaming to end")
	}
}

// fail ends the running reply with err.
func (m *stepModel) fail(t *testing.T, err error) {
	t.Helper()
	select {
	case m.fails <- err:
	case <-time.After(stepTimeout):
		t.Fatal("no reply was streaming to fail")
	}
}

// gateway is the real gateway (convo over bbolt, httpapi, conn) serving
// the page on a loopback port.
type gateway struct {
	url string
}

const testModelID = "test.step-model-v1"

// gatewayConfig varies the gateway a test starts.
type gatewayConfig struct {
	// provider is what GET /v1/info names (default "test").
	provider string
	// model is the default model id (default testModelID).
	model string
	// user authenticates WebSocket upgrades and HTTP API requests, as
	// the gateway's -auth jwt does; nil lets everyone in.
	user func(*http.Request) (auth.Caller, error)
	// loopback refuses Hosts that are not loopback names, as the gateway
	// does when it listens on loopback.
	loopback bool
	// agents are the gateway's agents (none when nil).
	agents convo.Agents
	// wrap, when set, wraps the gateway's handler: a test can hold or
	// watch requests with it.
	wrap func(http.Handler) http.Handler
	// maxSubscriptions bounds the conversations one connection follows
	// (default: the gateway's); a subscribe beyond it is refused busy.
	maxSubscriptions int
	// maxQueuedTurns bounds the turns waiting behind a running one
	// (default: the gateway's).
	maxQueuedTurns int
}

func startGateway(t *testing.T, model convo.Model, cfg gatewayConfig) *gateway {
	t.Helper()
	if cfg.provider == "" {
		cfg.provider = "test"
	}
	if cfg.model == "" {
		cfg.model = testModelID
	}
	authMode := "none"
	if cfg.user != nil {
		authMode = "jwt"
	}
	logger := conntest.LoggerAt(t, slog.LevelWarn)
	svc, err := boltlog.OpenService(filepath.Join(t.TempDir(), "db"), boltlog.Options{}, model, convo.Config{DefaultModel: cfg.model, Logger: logger, Agents: cfg.agents,
		MaxQueuedTurns: cfg.maxQueuedTurns})
	if err != nil {
		t.Fatal(err)
	}
	h := httpapi.New(svc, httpapi.Options{
		Logger:    logger,
		Info:      httpapi.Info{Provider: cfg.provider, DefaultModel: cfg.model, Version: "dev", Auth: authMode},
		WebSocket: conn.NewHandler(svc, conn.Options{Logger: logger, User: cfg.user, MaxSubscriptions: cfg.maxSubscriptions}),
		Page:      web.Handler(),
		Loopback:  cfg.loopback,
		User:      cfg.user,
	})
	if cfg.wrap != nil {
		h = cfg.wrap(h)
	}
	srv := httptest.NewUnstartedServer(h)
	// The page's frames and requests are checked against the spec, as
	// every end-to-end test's are.
	conntest.Check(t, srv)
	srv.Start()
	forgetOrigin(t, srv.URL)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
		defer cancel()
		if err := svc.Close(ctx); err != nil {
			t.Errorf("closing the service: %v", err)
		}
		srv.CloseClientConnections()
		srv.Close()
	})
	return &gateway{url: srv.URL}
}

// post sends body as JSON to path and fails the test unless the status is
// want.
func (g *gateway) post(t *testing.T, path, body string, want int) {
	t.Helper()
	g.request(t, http.MethodPost, path, body, want)
}

// request sends a method request with body as JSON to path and fails the
// test unless the status is want.
func (g *gateway) request(t *testing.T, method, path, body string, want int) {
	t.Helper()
	req, err := http.NewRequest(method, g.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != want {
		t.Fatalf("%s %s: status %d, want %d", method, path, res.StatusCode, want)
	}
}

// messages returns the stored messages of conversation, oldest first.
func (g *gateway) messages(t *testing.T, conversation string) []protocol.Message {
	t.Helper()
	res, err := http.Get(g.url + "/v1/conversations/" + conversation + "/messages?limit=500")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var h protocol.HistoryReply
	if err := json.NewDecoder(res.Body).Decode(&h); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("history: status %d, %v", res.StatusCode, err)
	}
	return h.Messages
}

// list returns the conversations, newest first.
func (g *gateway) list(t *testing.T) []protocol.Conversation {
	t.Helper()
	return g.listAs(t, "")
}

// listAs returns the conversations of the user bearer token (none: "")
// signs in, newest first.
func (g *gateway) listAs(t *testing.T, token string) []protocol.Conversation {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, g.url+"/v1/conversations", nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var l protocol.ConversationsReply
	if err := json.NewDecoder(res.Body).Decode(&l); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("list: status %d, %v", res.StatusCode, err)
	}
	return l.Conversations
}

// proxy is a TCP proxy in front of the gateway whose connections the test
// can cut, as a network failure would.
type proxy struct {
	ln       net.Listener
	mu       sync.Mutex
	backend  string // host:port
	conns    []net.Conn
	accepted chan struct{}
	// marker, when set, cuts the connections instead of passing on the
	// gateway's bytes that hold it, once; trips counts such cuts.
	marker []byte
	trips  int
	// refuse closes new connections at once, as a gateway that is down
	// would; passed holds every byte the gateway sent through the proxy.
	refuse bool
	passed []byte
	// grew is closed, and replaced, when passed grows.
	grew chan struct{}
}

func startProxy(t *testing.T, backendURL string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, backend: strings.TrimPrefix(backendURL, "http://"), accepted: make(chan struct{}, 64)}
	p.grew = make(chan struct{})
	forgetOrigin(t, p.url())
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.cut()
	})
	return p
}

func (p *proxy) url() string { return "http://" + p.ln.Addr().String() }

// setBackend makes the proxy pass new connections to backendURL: one where
// nothing listens keeps the page from reconnecting, as a network that is
// down would.
func (p *proxy) setBackend(backendURL string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.backend = strings.TrimPrefix(backendURL, "http://")
}

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		backend, refuse := p.backend, p.refuse
		p.mu.Unlock()
		if refuse {
			c.Close()
			continue
		}
		b, err := net.Dial("tcp", backend)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, b)
		p.mu.Unlock()
		go pipe(b, c)
		go p.fromGateway(c, b)
		select {
		case p.accepted <- struct{}{}:
		default:
		}
	}
}

// cutWhen makes the proxy cut every connection, once, when the gateway
// sends bytes that hold marker (such as a reply's "type":"created"),
// instead of passing them on: as if the connection broke just before the
// reply reached the page.
func (p *proxy) cutWhen(marker string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.marker = []byte(marker)
}

// refuseConns makes the proxy refuse new connections (on) or take them
// again.
func (p *proxy) refuseConns(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refuse = on
}

// sent reports whether the gateway has sent s to the page through the
// proxy.
func (p *proxy) sent(s string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Contains(p.passed, []byte(s))
}

// waitSent waits until the gateway has sent s to the page through the
// proxy, failing t after the harness's step timeout (a safety net).
func (p *proxy) waitSent(t *testing.T, s string) {
	t.Helper()
	timeout := time.After(stepTimeout)
	for {
		p.mu.Lock()
		passed, grew := bytes.Contains(p.passed, []byte(s)), p.grew
		p.mu.Unlock()
		if passed {
			return
		}
		select {
		case <-grew:
		case <-timeout:
			t.Fatalf("the gateway sent no %s to the page", s)
		}
	}
}

// cutsMade returns how many times a marker cut the connections.
func (p *proxy) cutsMade() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.trips
}

func (p *proxy) fromGateway(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if p.tripped(buf[:n]) {
				p.cut()
				return
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	dst.Close()
}

func (p *proxy) tripped(b []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.marker == nil || !bytes.Contains(b, p.marker) {
		p.passed = append(p.passed, b...)
		close(p.grew)
		p.grew = make(chan struct{})
		return false
	}
	p.marker = nil
	p.trips++
	return true
}

func pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	dst.Close()
}

// cut closes every connection through the proxy.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}
