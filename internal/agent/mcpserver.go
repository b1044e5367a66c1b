package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/chatgateway/gateway/internal/readlimit"
)

// How MCP sessions live: each server of the registry has a keeper
// goroutine that connects at start, lists the tools, waits for the
// session to end and connects again, backing off from minBackoff to
// maxBackoff while the server cannot be reached. The gateway starts
// whether or not a server is up; an agent taken while its server is down
// lacks that server's tools, and a call made while it is down tries once
// to connect, then fails as a tool-level error. A call the server cannot
// have run (see callOnce), as the first one after the server restarted,
// is made once more on a new session.
const (
	minBackoff = time.Second
	maxBackoff = 30 * time.Second
	// DefaultConnectTimeout bounds connecting to an MCP server and listing
	// its tools.
	DefaultConnectTimeout = 10 * time.Second
	// ProgressInterval is the least time between two progress reports of
	// one call; notifications that come sooner are dropped.
	ProgressInterval = 250 * time.Millisecond
	// maxListedTools bounds the tools one listing of a server may hold,
	// over all its pages: a server whose list never ends (each page names
	// a next one) would otherwise grow it until the connect timeout.
	maxListedTools = 1000
)

// mcpTool is one tool an MCP server listed, allow-list applied.
type mcpTool struct {
	model       string // the name the model sees, before agent-wide dedup
	name        string // the server's name for it
	description string
	schema      map[string]any
}

// mcpServer is the client side of one MCP server.
type mcpServer struct {
	cfg    MCPServer
	env    *env
	client *mcp.Client
	ctx    context.Context // the keeper's lifetime
	stop   context.CancelFunc
	ready  chan struct{} // closed when the first connect attempt has ended
	tokens atomic.Uint64
	sinks  sync.Map // progress token (string) → *progressSink
	stdins sync.Map // *mcp.ClientSession → *stdinPipe: a stdio server's stdin (see end)

	mu         sync.Mutex
	sess       *mcp.ClientSession
	tools      []mcpTool // as last listed
	connecting *attempt  // the connect in flight, if any
	inflight   int       // calls running
	retired    bool      // no longer in the registry's config
	relisting  bool      // a relister goroutine runs
	relistMore bool      // the tools changed again since it began its listing

	relisted func() // if set, called after each relist (for tests); under mu
}

// attempt is one connect; waiters share it.
type attempt struct {
	ctx    context.Context
	cancel context.CancelFunc // by closeIfIdle: nothing waits for it
	done   chan struct{}
	sess   *mcp.ClientSession
	err    error
}

func newMCPServer(cfg MCPServer, e *env) *mcpServer {
	s := &mcpServer{cfg: cfg, env: e, ready: make(chan struct{})}
	s.ctx, s.stop = context.WithCancel(context.Background())
	s.client = mcp.NewClient(&mcp.Implementation{Name: "gateway", Version: "1"}, &mcp.ClientOptions{
		ProgressNotificationHandler: func(_ context.Context, req *mcp.ProgressNotificationClientRequest) {
			if v, ok := s.sinks.Load(fmt.Sprint(req.Params.ProgressToken)); ok {
				v.(*progressSink).send(Progress{Progress: req.Params.Progress, Total: req.Params.Total, Message: req.Params.Message})
			}
		},
		ToolListChangedHandler: func(context.Context, *mcp.ToolListChangedRequest) {
			s.relistSoon()
		},
	})
	return s
}

// start runs the keeper.
func (s *mcpServer) start() {
	go s.keep()
}

// keep connects, waits for the session to end, and connects again, until
// the server is retired.
func (s *mcpServer) keep() {
	var ready sync.Once
	markReady := func() { ready.Do(func() { close(s.ready) }) }
	defer markReady()
	backoff := minBackoff
	for s.ctx.Err() == nil {
		sess, err := s.session(s.ctx)
		markReady()
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			s.env.log.Warn("mcp server not reachable", "server", s.cfg.Name, "retry_in", backoff, "err", err)
			select {
			case <-time.After(backoff):
			case <-s.ctx.Done():
				return
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		backoff = minBackoff
		s.env.log.Info("mcp server connected", "server", s.cfg.Name, "tools", len(s.listed()))
		err = sess.Wait()
		s.drop(sess)
		if s.ctx.Err() == nil {
			s.env.log.Warn("mcp session ended", "server", s.cfg.Name, "err", err)
		}
	}
}

// session returns the live session, connecting (once, for all waiters)
// if there is none.
func (s *mcpServer) session(ctx context.Context) (*mcp.ClientSession, error) {
	s.mu.Lock()
	if s.sess != nil {
		defer s.mu.Unlock()
		return s.sess, nil
	}
	a := s.connecting
	if a == nil || a.ctx.Err() != nil {
		// Not the keeper's context: a retired server still connects for
		// the calls of turns that started before the reload.
		a = &attempt{done: make(chan struct{})}
		a.ctx, a.cancel = context.WithTimeout(context.Background(), s.env.connectTimeout)
		s.connecting = a
		go s.connect(a)
	}
	s.mu.Unlock()
	select {
	case <-a.done:
		return a.sess, a.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// connect makes attempt a: connect, then list the tools.
func (s *mcpServer) connect(a *attempt) {
	defer a.cancel()
	sess, tools, err := s.dial(a.ctx)
	s.mu.Lock()
	if s.connecting == a {
		s.connecting = nil
	}
	var spare *mcp.ClientSession
	switch {
	case err != nil:
	case s.sess != nil:
		// A cancelled attempt that connected all the same, after a
		// new one: keep one session.
		spare, sess = sess, s.sess
	default:
		s.sess, s.tools = sess, tools
	}
	s.mu.Unlock()
	if spare != nil {
		// Outside mu, as drop and closeIfIdle close: closing may wait
		// on the server.
		s.end(spare)
	}
	a.sess, a.err = sess, err
	close(a.done)
	s.closeIfIdle()
}

func (s *mcpServer) dial(ctx context.Context) (*mcp.ClientSession, []mcpTool, error) {
	var t mcp.Transport
	var stdin *stdinPipe // a stdio server's, once started
	switch {
	case s.cfg.inProcess != nil:
		ct, st := mcp.NewInMemoryTransports()
		if _, err := s.cfg.inProcess.Connect(ctx, st, nil); err != nil {
			return nil, nil, err
		}
		t = ct
	case s.cfg.URL != "":
		base := s.env.httpClient
		limit := mcpMessageBytes(s.env.maxOutput)
		t = &mcp.StreamableClientTransport{Endpoint: s.cfg.URL, MaxEventSize: limit, HTTPClient: &http.Client{
			Transport:     headerTransport{base: base.Transport, headers: s.cfg.Headers, limit: limit},
			CheckRedirect: base.CheckRedirect,
		}}
	default:
		cmd := exec.Command(s.cfg.Command[0], s.cfg.Command[1:]...)
		cmd.Env = childEnv(os.Environ(), s.cfg.Env)
		cmd.Stderr = os.Stderr
		t = commandTransport{cmd: cmd, limit: mcpMessageBytes(s.env.maxOutput), stdin: &stdin}
	}
	sess, err := s.client.Connect(ctx, t, nil)
	if err != nil {
		return nil, nil, err
	}
	if stdin != nil {
		s.stdins.Store(sess, stdin)
	}
	tools, err := s.list(ctx, sess)
	if err != nil {
		s.end(sess)
		return nil, nil, err
	}
	return sess, tools, nil
}

// list lists sess's tools, keeping those of the allow-list if there is one.
func (s *mcpServer) list(ctx context.Context, sess *mcp.ClientSession) ([]mcpTool, error) {
	var tools []mcpTool
	listed := 0
	for t, err := range sess.Tools(ctx, nil) {
		if err != nil {
			return nil, fmt.Errorf("listing tools: %w", err)
		}
		if listed++; listed > maxListedTools {
			return nil, fmt.Errorf("listing tools: the server lists more than %d tools", maxListedTools)
		}
		if len(s.cfg.Tools) > 0 && !slices.Contains(s.cfg.Tools, t.Name) {
			continue
		}
		tools = append(tools, mcpTool{model: modelName(s.cfg.Name, t.Name), name: t.Name,
			description: t.Description, schema: objectSchema(t.InputSchema)})
	}
	for _, name := range s.cfg.Tools {
		if !slices.ContainsFunc(tools, func(t mcpTool) bool { return t.name == name }) {
			s.env.log.Warn("mcp server lacks an allowed tool", "server", s.cfg.Name, "tool", name)
		}
	}
	return tools, nil
}

// objectSchema is an MCP tool's input schema as Bedrock takes it: an
// object schema. MCP requires one too, but a server may leave "type" out.
func objectSchema(v any) map[string]any {
	schema, _ := v.(map[string]any)
	if schema == nil {
		return map[string]any{"type": "object"}
	}
	if schema["type"] != "object" {
		schema = maps.Clone(schema)
		schema["type"] = "object"
	}
	return schema
}

// relistSoon lists the tools again after the server said they changed:
// at once if no listing is under way, else once more after it, however
// many times the server says so meanwhile. One goroutine lists at a time,
// so that a server that keeps saying it cannot make the gateway run a
// goroutine and a listing per notification.
func (s *mcpServer) relistSoon() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.relisting {
		s.relistMore = true
		return
	}
	s.relisting = true
	go func() {
		for {
			s.relist()
			s.mu.Lock()
			if !s.relistMore {
				s.relisting = false
				s.mu.Unlock()
				return
			}
			s.relistMore = false
			s.mu.Unlock()
		}
	}()
}

// relist lists the tools again.
func (s *mcpServer) relist() {
	s.mu.Lock()
	sess := s.sess
	s.mu.Unlock()
	if sess == nil {
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.env.connectTimeout)
	defer cancel()
	tools, err := s.list(ctx, sess)
	if err != nil {
		s.env.log.Warn("mcp tools not listed", "server", s.cfg.Name, "err", err)
		return
	}
	s.mu.Lock()
	if s.sess == sess {
		s.tools = tools
	}
	hook := s.relisted
	s.mu.Unlock()
	if hook != nil {
		hook()
	}
}

// listed is the server's tools as last listed (none if it was never
// reached).
func (s *mcpServer) listed() []mcpTool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tools
}

// drop forgets sess, if it is still the live session, and closes it.
func (s *mcpServer) drop(sess *mcp.ClientSession) {
	s.mu.Lock()
	if s.sess == sess {
		s.sess = nil
	}
	s.mu.Unlock()
	s.end(sess)
}

// end closes sess. A stdio server's stdin is closed first: the SDK's
// Close waits for the calls in flight, and a call whose request the
// server does not read (see callOnce) would keep it waiting for ever;
// closing stdin fails that write, and tells the server to exit as Close
// does.
func (s *mcpServer) end(sess *mcp.ClientSession) {
	if p, ok := s.stdins.LoadAndDelete(sess); ok {
		_ = p.(*stdinPipe).Close()
	}
	sess.Close()
}

// retire stops the keeper and closes the session once no call runs,
// cancelling a connect that no call waits for. A call made later (by a
// turn that took its agent before a reload) connects again, and the
// session is closed after it.
func (s *mcpServer) retire() {
	s.stop()
	s.mu.Lock()
	s.retired = true
	s.mu.Unlock()
	s.closeIfIdle()
}

func (s *mcpServer) closeIfIdle() {
	s.mu.Lock()
	sess := s.sess
	idle := s.retired && s.inflight == 0 && sess != nil
	if idle {
		s.sess = nil
	}
	if s.retired && s.inflight == 0 && s.connecting != nil {
		s.connecting.cancel()
	}
	s.mu.Unlock()
	if idle {
		s.end(sess)
	}
}

// call runs tool name of this server, once: made again, on a new
// session, only if the server cannot have run it.
func (s *mcpServer) call(ctx context.Context, name string, input json.RawMessage, progress func(Progress)) (Result, error) {
	s.mu.Lock()
	s.inflight++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inflight--
		s.mu.Unlock()
		s.closeIfIdle()
	}()
	sess, err := s.session(ctx)
	if err != nil {
		return Result{}, s.unreachable(err)
	}
	token := s.cfg.Name + "-" + strconv.FormatUint(s.tokens.Add(1), 10)
	sink := &progressSink{f: progress}
	s.sinks.Store(token, sink)
	defer func() {
		s.sinks.Delete(token)
		sink.close()
	}()
	res, unsent, err := s.callOnce(ctx, sess, name, input, token)
	if unsent {
		// The server did not run it: once more, on a new session (the
		// keeper's connect, if one is under way). The progress token is
		// the call's, as no notification can come for an unsent request.
		s.drop(sess)
		if sess, err = s.session(ctx); err != nil {
			return Result{}, s.unreachable(err)
		}
		res, unsent, err = s.callOnce(ctx, sess, name, input, token)
	}
	if err != nil {
		if ctx.Err() != nil || !sessionGone(err) {
			return Result{}, fmt.Errorf("MCP server %s: %w", s.cfg.Name, err)
		}
		// A dead session (or one a restarted server forgot) is dropped at
		// once: the keeper then connects again.
		s.drop(sess)
		if !unsent && errors.Is(err, mcp.ErrSessionMissing) {
			return Result{}, fmt.Errorf("MCP server %s lost the session during the call, which may have run, so it is not made again: %w", s.cfg.Name, err)
		}
		return Result{}, fmt.Errorf("MCP server %s: %w", s.cfg.Name, err)
	}
	return mcpResult(res)
}

func (s *mcpServer) unreachable(err error) error {
	return fmt.Errorf("MCP server %s is not reachable: %w", s.cfg.Name, err)
}

// callOnce calls tool name on sess. unsent reports that the server
// cannot have run the call, so that it may be made again: the session
// had ended before the request went out (the SDK then refuses to send,
// with mcp.ErrConnectionClosed), or the server answered the request
// itself with 404 for a session it does not know (mcp.ErrSessionMissing;
// the MCP spec has the server refuse such a request, as one restarted
// does). A session lost after the request went out may have run the
// tool: a stream cut mid-call whose resumption gets 404 also fails with
// mcp.ErrSessionMissing, hence the check of what the request got.
//
// The SDK gives a call up as soon as ctx ends, except while it writes the
// request: a stdio server that stopped reading its stdin blocks that
// write, whatever ctx says, once the pipe is full. So callOnce returns
// when ctx ends, and leaves the call to end on its own: its write ends
// when the server reads again or the session is closed (see unstick).
func (s *mcpServer) callOnce(ctx context.Context, sess *mcp.ClientSession, name string, input json.RawMessage, token string) (res *mcp.CallToolResult, unsent bool, err error) {
	params := &mcp.CallToolParams{Name: name, Arguments: input}
	params.SetProgressToken(token)
	d := &delivery{}
	done := make(chan answer, 1)
	go func() {
		res, err := sess.CallTool(context.WithValue(ctx, deliveryKey{}, d), params)
		done <- answer{res, err}
	}()
	var a answer
	select {
	case a = <-done:
	case <-ctx.Done():
		select {
		case a = <-done: // it came as ctx ended
		default:
			if p, ok := s.stdins.Load(sess); ok {
				go s.unstick(sess, p.(*stdinPipe), done)
			}
			return nil, false, fmt.Errorf("calling %q: %w", name, context.Cause(ctx))
		}
	}
	unsent = a.err != nil && ctx.Err() == nil && sessionGone(a.err) && !d.maybe.Load()
	return a.res, unsent, a.err
}

// answer is what the SDK's CallTool returned.
type answer struct {
	res *mcp.CallToolResult
	err error
}

// unstick waits for a call given up on sess, a stdio server's session,
// to end (done), which the SDK makes at once unless it is writing the
// request. If, one call timeout after another, the server's stdin has a
// write under way, the server reads no more: its session is closed, which
// stops it, and the keeper starts it again, so that later calls do not
// wait the same way.
func (s *mcpServer) unstick(sess *mcp.ClientSession, stdin *stdinPipe, done <-chan answer) {
	timeout := s.cfg.Timeout.or(DefaultTimeout)
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		// A call that has not begun its write yet (it encodes a large
		// request) is looked at again later.
		if stdin.blocked() {
			s.env.log.Warn("mcp server reads no more: restarting it", "server", s.cfg.Name)
			s.drop(sess)
			return
		}
		t.Reset(timeout)
	}
}

// sessionGone reports whether err, a call's, says its session is over.
func sessionGone(err error) bool {
	return errors.Is(err, mcp.ErrConnectionClosed) || errors.Is(err, mcp.ErrSessionMissing)
}

// delivery records, for one call over streamable HTTP, whether a request
// of it may have reached the server: any POST but one answered 404 (see
// headerTransport). The SDK makes a call's requests with its context,
// where callOnce puts a *delivery under deliveryKey{}.
type delivery struct {
	maybe atomic.Bool
}

type deliveryKey struct{}

// mcpResult maps an MCP result: isError to an error holding its text;
// otherwise the structured content if there is some, else {"text": …}
// when all content is text, else {"content": [the MCP content blocks]}.
func mcpResult(r *mcp.CallToolResult) (Result, error) {
	var texts []string
	onlyText := true
	for _, c := range r.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			texts = append(texts, t.Text)
		} else {
			onlyText = false
		}
	}
	text := strings.Join(texts, "\n")
	if r.IsError {
		if strings.TrimSpace(text) == "" {
			text = "the tool reported an error"
		}
		return Result{Error: text}, nil
	}
	var v any
	switch {
	case r.StructuredContent != nil:
		v = r.StructuredContent
	case onlyText:
		v = map[string]string{"text": text}
	default:
		v = map[string]any{"content": r.Content}
	}
	out, err := json.Marshal(v)
	if err != nil {
		return Result{}, fmt.Errorf("the tool's result is not JSON: %w", err)
	}
	return Result{Output: out}, nil
}

// progressSink passes one call's progress on, at most one report per
// ProgressInterval, and none after close.
type progressSink struct {
	f      func(Progress)
	mu     sync.Mutex
	last   time.Time
	closed bool
}

func (p *progressSink) send(pr Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if p.closed || (!p.last.IsZero() && now.Sub(p.last) < ProgressInterval) {
		return
	}
	p.last = now
	p.f(pr)
}

func (p *progressSink) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
}

// mcpRunner runs one tool of an MCP server.
type mcpRunner struct {
	srv  *mcpServer
	name string
}

var _ runner = mcpRunner{}

func (r mcpRunner) run(ctx context.Context, _ CallInfo, input json.RawMessage, progress func(Progress)) (Result, error) {
	return r.srv.call(ctx, r.name, input, progress)
}

// inheritedEnv are the variables a stdio MCP server inherits from the
// gateway: what a program needs to run, not the gateway's secrets (AWS
// credentials, tokens), which a server gets only when its env names them.
var inheritedEnv = []string{"PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "TMPDIR", "LANG", "LC_ALL", "TZ"}

// childEnv is the environment of a stdio MCP server's process: the
// variables of inheritedEnv (PATH, HOME, USER, LOGNAME, SHELL, TERM,
// TMPDIR, LANG, LC_ALL, TZ) found in environ, then env's, which win.
func childEnv(environ []string, env map[string]string) []string {
	var out []string
	for _, kv := range environ {
		if k, _, ok := strings.Cut(kv, "="); ok && slices.Contains(inheritedEnv, k) && !hasKey(env, k) {
			out = append(out, kv)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(env)) {
		out = append(out, k+"="+env[k])
	}
	return out
}

func hasKey(m map[string]string, k string) bool {
	_, ok := m[k]
	return ok
}

// mcpMessageBytes is the most one message from an MCP server may hold
// when a call's output is cut at max bytes: a result may carry the output
// twice (as text and as structured content), escaped, and the rest is room
// for the envelope and for lists of tools. Past it the session ends, so
// that a server cannot make the gateway hold more than the configuration
// allows.
func mcpMessageBytes(max int) int { return 4*max + 1<<20 }

// headerTransport adds the configured headers to each request, and fails
// the reading of a response body longer than limit bytes, unless it is an
// event stream (the MCP client bounds each of its events).
type headerTransport struct {
	base    http.RoundTripper
	headers map[string]string
	limit   int
}

func (h headerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := h.base
	if base == nil {
		base = http.DefaultTransport
	}
	if len(h.headers) > 0 {
		req = req.Clone(req.Context())
		for k, v := range h.headers {
			req.Header.Set(k, v)
		}
	}
	resp, err := base.RoundTrip(req)
	if d, _ := req.Context().Value(deliveryKey{}).(*delivery); d != nil && req.Method == http.MethodPost &&
		(err != nil || resp.StatusCode != http.StatusNotFound) {
		d.maybe.Store(true)
	}
	if err == nil && !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		resp.Body = readlimit.ReadCloser(resp.Body, int64(h.limit), errTooLarge(h.limit))
	}
	return resp, err
}
