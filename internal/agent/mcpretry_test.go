package agent

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/chatgateway/gateway/internal/toolout"
)

// restartingMCP is a streamable HTTP MCP server at one URL that a test
// restarts: every connection ends and a new server, which knows no
// session, answers from then on, as a new process would. The tools of
// every instance count their runs in ran.
type restartingMCP struct {
	srv      *httptest.Server
	resume   bool // keep events, so that a client resumes a cut stream
	instance atomic.Pointer[mcpInstance]
	held     atomic.Pointer[heldGets]
	ran      atomic.Int32
	started  chan struct{} // a value when "hold" starts its first run
	release  chan struct{} // a value lets a "count" run end
}

// mcpInstance is one run of the server; dead is closed when it is
// replaced.
type mcpInstance struct {
	server  *mcp.Server
	handler http.Handler
	dead    chan struct{}
}

// heldGets holds the GET requests (a client's standalone stream, coming
// back) of sessions that an instance before the restart made, until open
// is closed.
type heldGets struct {
	sessions map[string]bool
	open     chan struct{}
}

func newRestartingMCP(resume bool) *restartingMCP {
	m := &restartingMCP{resume: resume, started: make(chan struct{}, 1), release: make(chan struct{}, 1)}
	m.instance.Store(m.newInstance())
	m.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := m.held.Load(); h != nil && r.Method == http.MethodGet && h.sessions[r.Header.Get("Mcp-Session-Id")] {
			select {
			case <-h.open:
			case <-r.Context().Done():
				return
			}
		}
		m.instance.Load().handler.ServeHTTP(w, r)
	}))
	// A connection per request: one the old instance left idle in the
	// client's pool would fail the next request with EOF, which may
	// follow a request the server read, so the gateway does not make the
	// call again. The client of a real restart notices its connections
	// closed long before the next call.
	m.srv.Config.SetKeepAlivesEnabled(false)
	m.srv.Start()
	return m
}

func (m *restartingMCP) newInstance() *mcpInstance {
	in := &mcpInstance{server: mcp.NewServer(&mcp.Implementation{Name: "restarting", Version: "1"}, nil), dead: make(chan struct{})}
	obj := json.RawMessage(`{"type": "object"}`)
	// count reports its run as progress, and ends once let.
	in.server.AddTool(&mcp.Tool{Name: "count", InputSchema: obj}, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		n := m.ran.Add(1)
		_ = req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: req.Params.GetProgressToken(), Progress: float64(n)})
		select {
		case <-m.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return &mcp.CallToolResult{StructuredContent: map[string]int32{"ran": n}}, nil
	})
	// hold's first run sends a progress notification (an event of its
	// stream) and lasts until its instance is replaced; a later run ends
	// at once.
	in.server.AddTool(&mcp.Tool{Name: "hold", InputSchema: obj}, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		if m.ran.Add(1) > 1 {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ran again"}}}, nil
		}
		_ = req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: req.Params.GetProgressToken(), Progress: 1})
		m.started <- struct{}{}
		select {
		case <-in.dead:
		case <-ctx.Done():
		}
		return nil, context.Canceled
	})
	var opts *mcp.StreamableHTTPOptions
	if m.resume {
		opts = &mcp.StreamableHTTPOptions{EventStore: mcp.NewMemoryEventStore(nil)}
	}
	in.handler = mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return in.server }, opts)
	return in
}

// restart puts a new instance behind the URL and ends the old one's
// connections and calls. With holdGets, the GET requests of the old
// sessions wait until openGets is called, so that a client's standalone
// stream, coming back, cannot tell it of the restart before a call does.
func (m *restartingMCP) restart(holdGets bool) (openGets func()) {
	old := m.instance.Swap(m.newInstance())
	h := &heldGets{sessions: map[string]bool{}, open: make(chan struct{})}
	for ss := range old.server.Sessions() {
		h.sessions[ss.ID()] = true
	}
	if holdGets {
		m.held.Store(h)
	}
	m.srv.CloseClientConnections()
	close(old.dead)
	return func() { close(h.open) }
}

// close ends the test's server after the gateway's registry r: its
// streams end when their connections are closed.
func (m *restartingMCP) close(r *Registry) {
	r.Close()
	m.srv.CloseClientConnections()
	m.srv.Close()
}

// TestMCPCallAfterServerRestart restarts the server between two calls:
// the second call's request gets 404 for the session the new server does
// not know, and is made again on a new session, so that it works, runs
// once, and reports its progress.
func TestMCPCallAfterServerRestart(t *testing.T) {
	t.Parallel()
	m := newRestartingMCP(false)
	connected := make(chan struct{}, 10)
	r, err := New(&Config{MCPServers: []MCPServer{{Name: "m", URL: m.srv.URL}}, Agents: []AgentConfig{{Name: "a", Tools: []string{"m"}}}},
		Options{Logger: slog.New(signalHandler{"mcp server connected", connected})})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.close(r) })
	<-connected
	a, _ := r.Agent("a")
	call := func() (Result, []Progress, error) {
		var reports []Progress
		res, err := a.Call(context.Background(), "m__count", testCall, nil, func(p Progress) {
			reports = append(reports, p)
			poke(m.release) // let the tool end once its progress came
		})
		return res, reports, err
	}
	if res, _, err := call(); err != nil || string(res.Output) != `{"ran":1}` {
		t.Fatalf("call before the restart: %s, %q, %v", res.Output, res.Error, err)
	}

	openGets := m.restart(true)
	res, reports, err := call()
	openGets()
	if err != nil || string(res.Output) != `{"ran":2}` {
		t.Fatalf("first call after the restart: %s, %q, %v (the tool ran %d times in all); want it run once, on a new session", res.Output, res.Error, err, m.ran.Load())
	}
	if want := []Progress{{Progress: 2}}; !slices.Equal(reports, want) {
		t.Errorf("progress of the call made again: %+v, want %+v", reports, want)
	}
	if n := m.ran.Load(); n != 2 {
		t.Errorf("the tool ran %d times in all, want 2", n)
	}
}

// TestMCPCallCutIsNotRepeated restarts the server during a call: the call
// may have run, so it fails and is not made again, whether its stream is
// resumed (and the new server answers 404 for the session) or cannot be;
// the next call works.
func TestMCPCallCutIsNotRepeated(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		resume bool
		err    string
	}{
		{"resumed", true, "lost the session during the call, which may have run"},
		{"not resumable", false, "request terminated without response"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := newRestartingMCP(tc.resume)
			r, err := New(&Config{MCPServers: []MCPServer{{Name: "m", URL: m.srv.URL}}, Agents: []AgentConfig{{Name: "a", Tools: []string{"m"}}}}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { m.close(r) })
			a, _ := r.Agent("a")
			go func() {
				<-m.started
				m.restart(false)
			}()
			res, err := a.Call(context.Background(), "m__hold", testCall, nil, nil)
			if err != nil || res.Error == "" || !strings.Contains(res.Error, tc.err) {
				t.Fatalf("call cut by the restart: %s, %q, %v; want an error result with %q", res.Output, res.Error, err, tc.err)
			}
			if n := m.ran.Load(); n != 1 {
				t.Fatalf("the tool ran %d times, want once: the cut call was made again", n)
			}
			poke(m.release)
			if res, err := a.Call(context.Background(), "m__count", testCall, nil, nil); err != nil || string(res.Output) != `{"ran":2}` {
				t.Fatalf("call after: %s, %q, %v", res.Output, res.Error, err)
			}
		})
	}
}

// TestMCPStdioCallAfterServerDied calls a stdio server whose process died
// during the previous call, before a keeper replaced its session: that
// call, which reached the process, is not made again; the next one, which
// the SDK does not send on the ended session, is made on a new process.
// No keeper runs, so that the next call surely finds the ended session.
func TestMCPStdioCallAfterServerDied(t *testing.T) {
	t.Parallel()
	ranFile := filepath.Join(t.TempDir(), "ran")
	s := newMCPServer(MCPServer{Name: "m", Command: []string{os.Args[0], stdioFlag}, Env: map[string]string{ranEnv: ranFile}},
		&env{log: slog.New(slog.DiscardHandler), maxOutput: toolout.Limit(0), connectTimeout: DefaultConnectTimeout, httpClient: defaultHTTPClient()})
	t.Cleanup(s.retire)
	ctx := context.Background()
	noProgress := func(Progress) {}
	if _, err := s.call(ctx, "exit", json.RawMessage(`{}`), noProgress); err == nil {
		t.Fatal("a call whose process exited during it succeeded")
	}
	res, err := s.call(ctx, "echo", json.RawMessage(`{"say": "again"}`), noProgress)
	if err != nil || string(res.Output) != `{"say":"again"}` {
		t.Fatalf("call after the process died: %s, %q, %v", res.Output, res.Error, err)
	}
	if ran, err := os.ReadFile(ranFile); err != nil || string(ran) != "exit\n" {
		t.Fatalf("exit ran %q (%v), want once", ran, err)
	}
}
