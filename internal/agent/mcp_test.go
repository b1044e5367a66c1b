package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/chatgateway/gateway/internal/toolout"
)

// stdioFlag makes the test binary an MCP server on stdio (see TestMain),
// so that a test can start it as a stdio server's command.
const stdioFlag = "-agent-test-mcp-stdio"

// hangFlag makes the test binary a stdio server whose handshake hangs
// (see hangingStdio).
const hangFlag = "-agent-test-mcp-hang"

// ranEnv names the file where the stdio server's "exit" tool notes its
// runs.
const ranEnv = "AGENT_TEST_RAN"

func TestMain(m *testing.M) {
	if i := slices.Index(os.Args, hangFlag); i > 0 && i+1 < len(os.Args) {
		c, err := net.Dial("tcp", os.Args[i+1])
		if err != nil {
			os.Exit(1)
		}
		var b [1]byte
		if _, err := c.Read(b[:]); err != nil || b[0] != 'h' {
			os.Exit(1)
		}
		// Never answer; end when the gateway closes stdin.
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}
	if slices.Contains(os.Args[1:], deafFlag) {
		serveDeaf()
	}
	if slices.Contains(os.Args[1:], stdioFlag) {
		srv, _ := testServer()
		// env tells what the process's environment holds.
		mcp.AddTool(srv, &mcp.Tool{Name: "env"}, func(_ context.Context, _ *mcp.CallToolRequest, in struct {
			Names []string `json:"names"`
		}) (*mcp.CallToolResult, map[string]string, error) {
			out := map[string]string{}
			for _, name := range in.Names {
				out[name] = os.Getenv(name)
			}
			return nil, out, nil
		})
		// exit notes its run in the file $AGENT_TEST_RAN, and ends the
		// process during the call.
		srv.AddTool(&mcp.Tool{Name: "exit", InputSchema: json.RawMessage(`{"type": "object"}`)}, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			f, err := os.OpenFile(os.Getenv(ranEnv), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
			if err == nil {
				_, _ = f.WriteString("exit\n")
				f.Close()
			}
			os.Exit(3)
			return nil, nil
		})
		addHuge(srv)
		if err := srv.Run(context.Background(), &mcp.StdioTransport{}); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	// A secret of the gateway's, which stdio servers must not inherit.
	os.Setenv("AGENT_TEST_SECRET", "leaked")
	os.Exit(m.Run())
}

// serverHooks lets a test see inside testServer's "slow" tool: started
// gets a value when a call starts, ended when its context ends; a value
// sent to release makes it return. Over streamable HTTP (httpMCP),
// cancels gets a value for each notifications/cancelled that reaches the
// server: whether a call of "slow" had started by then.
type serverHooks struct {
	started, ended chan struct{}
	release        chan struct{}
	running        atomic.Bool
	cancels        chan bool
}

type echoArgs struct {
	Say string `json:"say"`
}

// testServer is an MCP server with tools that show every kind of result.
func testServer() (*mcp.Server, *serverHooks) {
	h := &serverHooks{started: make(chan struct{}, 1), ended: make(chan struct{}, 1), release: make(chan struct{}, 1),
		cancels: make(chan bool, 10)}
	s := mcp.NewServer(&mcp.Implementation{Name: "test", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "echo", Description: "Echoes its input."},
		func(_ context.Context, _ *mcp.CallToolRequest, in echoArgs) (*mcp.CallToolResult, echoArgs, error) {
			return nil, in, nil
		})
	obj := json.RawMessage(`{"type": "object"}`)
	s.AddTool(&mcp.Tool{Name: "text", InputSchema: obj}, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "one"}, &mcp.TextContent{Text: "two"}}}, nil
	})
	s.AddTool(&mcp.Tool{Name: "image", InputSchema: obj}, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.ImageContent{Data: []byte{1, 2}, MIMEType: "image/png"}}}, nil
	})
	s.AddTool(&mcp.Tool{Name: "fail", InputSchema: obj}, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: "no such order"}}}, nil
	})
	s.AddTool(&mcp.Tool{Name: "slow", InputSchema: obj}, func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		h.running.Store(true)
		_ = req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: req.Params.GetProgressToken(),
			Progress: 1, Total: 3, Message: "working"})
		h.started <- struct{}{}
		select {
		case <-h.release:
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "done"}}}, nil
		case <-ctx.Done():
			h.ended <- struct{}{}
			return nil, ctx.Err()
		}
	})
	s.AddTool(&mcp.Tool{Name: "hidden", InputSchema: obj}, func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return &mcp.CallToolResult{}, nil
	})
	return s, h
}

// httpMCP serves testServer over streamable HTTP and records the X-Key
// header of its requests in keys.
func httpMCP(t *testing.T) (url string, h *serverHooks, keys chan string) {
	t.Helper()
	s, h := testServer()
	keys = make(chan string, 100)
	handler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case keys <- r.Header.Get("X-Key"):
		default:
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return
		}
		if bytes.Contains(body, []byte(`"notifications/cancelled"`)) {
			select { // a test that cancels more does not read them
			case h.cancels <- h.running.Load():
			default:
			}
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		handler.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, h, keys
}

// mcpAgent is a registry with MCP server "m" as sc says (name set here)
// and an agent "a" using it.
func mcpAgent(t *testing.T, sc MCPServer) (*Registry, *Agent) {
	t.Helper()
	sc.Name = "m"
	r, err := New(&Config{MCPServers: []MCPServer{sc}, Agents: []AgentConfig{{Name: "a", Tools: []string{"m"}, Approval: []string{"m__fail"}}}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	a, _ := r.Agent("a")
	return r, a
}

func toolNames(a *Agent) []string {
	var names []string
	for _, t := range a.Tools {
		names = append(names, t.Name)
	}
	return names
}

func TestMCPToolsOverHTTP(t *testing.T) {
	t.Parallel()
	url, _, keys := httpMCP(t)
	_, a := mcpAgent(t, MCPServer{URL: url, Headers: map[string]string{"X-Key": "k1"},
		Tools: []string{"echo", "text", "image", "fail", "missing"}})
	if got, want := toolNames(a), []string{"m__echo", "m__fail", "m__image", "m__text"}; !slices.Equal(got, want) {
		t.Fatalf("tools %v, want %v (the allow-list applied)", got, want)
	}
	echo, _ := a.Tool("m__echo")
	if echo.Kind != KindMCP || echo.Description != "Echoes its input." || echo.Timeout != DefaultTimeout || echo.Approval {
		t.Errorf("echo: %+v", echo)
	}
	if props, _ := echo.InputSchema["properties"].(map[string]any); props["say"] == nil {
		t.Errorf("echo's schema lacks its property: %v", echo.InputSchema)
	}
	if fail, _ := a.Tool("m__fail"); !fail.Approval {
		t.Error("m__fail does not need approval")
	}
	ctx := context.Background()
	for _, tc := range []struct {
		tool, input, output, err string
	}{
		{tool: "m__echo", input: `{"say": "hi"}`, output: `{"say":"hi"}`},
		{tool: "m__text", output: `{"text":"one\ntwo"}`},
		{tool: "m__image", output: `{"content":[{"type":"image","mimeType":"image/png","data":"AQI="}]}`},
		{tool: "m__fail", err: "no such order"},
		{tool: "m__hidden", err: `agent a has no tool "m__hidden"`},
	} {
		res, err := a.Call(ctx, tc.tool, testCall, json.RawMessage(tc.input), nil)
		if err != nil || string(res.Output) != tc.output || res.Error != tc.err {
			t.Errorf("%s: got %s, %q, %v; want %s, %q", tc.tool, res.Output, res.Error, err, tc.output, tc.err)
		}
	}
	for len(keys) > 0 {
		if k := <-keys; k != "k1" {
			t.Fatalf("a request to the MCP server had X-Key %q", k)
		}
	}
}

func TestMCPToolOverStdio(t *testing.T) {
	t.Parallel()
	_, a := mcpAgent(t, MCPServer{Command: []string{os.Args[0], stdioFlag}, Tools: []string{"echo", "fail"}})
	if got := toolNames(a); !slices.Equal(got, []string{"m__echo", "m__fail"}) {
		t.Fatalf("tools %v", got)
	}
	res, err := a.Call(context.Background(), "m__echo", testCall, json.RawMessage(`{"say": "over stdio"}`), nil)
	if err != nil || string(res.Output) != `{"say":"over stdio"}` {
		t.Fatalf("got %s, %q, %v", res.Output, res.Error, err)
	}
}

func TestMCPStdioEnvironment(t *testing.T) {
	t.Parallel()
	cfg, err := Parse([]byte(`
mcp_servers:
  - name: m
    command: ["`+os.Args[0]+`", "`+stdioFlag+`"]
    env: {TOKEN: "${ORDERS_TOKEN}", HOME: /elsewhere}
    tools: [env]
agents:
  - {name: a, tools: [m]}
`), testEnv)
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	a, _ := r.Agent("a")
	res, err := a.Call(context.Background(), "m__env", testCall, json.RawMessage(`{"names": ["AGENT_TEST_SECRET", "TOKEN", "HOME", "PATH"]}`), nil)
	var env map[string]string
	if err != nil || json.Unmarshal(res.Output, &env) != nil {
		t.Fatalf("got %s, %q, %v", res.Output, res.Error, err)
	}
	if env["AGENT_TEST_SECRET"] != "" || env["TOKEN"] != "secret-token" || env["HOME"] != "/elsewhere" || env["PATH"] != os.Getenv("PATH") {
		t.Errorf("the server's environment: %v (want no secret, TOKEN expanded, HOME set, PATH inherited)", env)
	}
}

func TestMCPProgress(t *testing.T) {
	t.Parallel()
	url, h, _ := httpMCP(t)
	_, a := mcpAgent(t, MCPServer{URL: url})
	got := make(chan Progress, 10)
	go func() {
		<-h.started
		<-got // hold the call open until its progress arrived
		h.release <- struct{}{}
	}()
	var reports []Progress
	res, err := a.Call(context.Background(), "m__slow", testCall, nil, func(p Progress) {
		reports = append(reports, p)
		got <- p
	})
	if err != nil || string(res.Output) != `{"text":"done"}` {
		t.Fatalf("got %s, %q, %v", res.Output, res.Error, err)
	}
	if want := []Progress{{Progress: 1, Total: 3, Message: "working"}}; !slices.Equal(reports, want) {
		t.Errorf("progress %+v, want %+v", reports, want)
	}
}

// TestMCPProgressCapped has a server report progress with a message over
// the output limit: the message is cut as an output would be, since it
// is stored in the conversation's log too.
func TestMCPProgressCapped(t *testing.T) {
	t.Parallel()
	got := make(chan Progress, 10)
	s := mcp.NewServer(&mcp.Implementation{Name: "loud", Version: "1"}, nil)
	s.AddTool(&mcp.Tool{Name: "loud", InputSchema: json.RawMessage(`{"type": "object"}`)},
		func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			_ = req.Session.NotifyProgress(ctx, &mcp.ProgressNotificationParams{ProgressToken: req.Params.GetProgressToken(),
				Progress: 1, Message: strings.Repeat("w", toolout.DefaultMaxBytes+1)})
			<-got // hold the call open until its progress arrived
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "done"}}}, nil
		})
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	t.Cleanup(srv.Close)
	r, err := New(&Config{MCPServers: []MCPServer{{Name: "m", URL: srv.URL}}, Agents: []AgentConfig{{Name: "a", Tools: []string{"m"}}}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	a, _ := r.Agent("a")
	var reports []Progress
	res, err := a.Call(context.Background(), "m__loud", testCall, nil, func(p Progress) {
		reports = append(reports, p)
		got <- p
	})
	if err != nil || res.Error != "" {
		t.Fatalf("got %s, %q, %v", res.Output, res.Error, err)
	}
	if len(reports) != 1 || len(reports[0].Message) > toolout.DefaultMaxBytes || !strings.HasSuffix(reports[0].Message, "(cut)") {
		for i := range reports {
			reports[i].Message = fmt.Sprintf("%d bytes", len(reports[i].Message))
		}
		t.Fatalf("progress %+v, want one message of at most %d bytes, cut", reports, toolout.DefaultMaxBytes)
	}
}

func TestMCPCancel(t *testing.T) {
	t.Parallel()
	url, h, _ := httpMCP(t)
	_, a := mcpAgent(t, MCPServer{URL: url})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-h.started
		cancel()
	}()
	res, err := a.Call(ctx, "m__slow", testCall, nil, nil)
	if !errors.Is(err, context.Canceled) || Status(res, err) != StatusCancelled {
		t.Fatalf("Call = %+v, %v; want cancelled", res, err)
	}
	<-h.ended // the server's handler saw the call cancelled
	// The session survives a cancelled call.
	if res, err := a.Call(context.Background(), "m__echo", testCall, json.RawMessage(`{"say": "x"}`), nil); err != nil || res.Error != "" {
		t.Fatalf("call after a cancel: %+v, %v", res, err)
	}
}

// TestMCPTimeout checks that a call that times out is cancelled at the
// server: a handler that had the call when the client's cancel reached
// the server sees its context end.
func TestMCPTimeout(t *testing.T) {
	t.Parallel()
	url, h, _ := httpMCP(t)
	// A call that times out as it goes out may reach the server after its
	// cancel, which the server then ignores: its handler would run until
	// released, and the server's Close wait for it.
	t.Cleanup(func() { h.release <- struct{}{} })
	_, a := mcpAgent(t, MCPServer{URL: url, Timeout: Duration(50 * time.Millisecond)})
	res, err := a.Call(context.Background(), "m__slow", testCall, nil, nil)
	if !errors.Is(err, ErrTimeout) || Status(res, err) != StatusTimeout {
		t.Fatalf("Call = %+v, %v; want a timeout", res, err)
	}
	// On a busy machine the timeout can end the call before the server
	// saw it. If it saw it, the client sends a cancel; if the call was
	// running when the cancel came, the cancel must end it.
	select {
	case <-h.started:
		if <-h.cancels {
			<-h.ended
		}
	default:
	}
}

func TestMCPServerDown(t *testing.T) {
	t.Parallel()
	// A port with nothing behind it, which the server takes later.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	r, a := mcpAgent(t, MCPServer{URL: "http://" + addr + "/mcp"})
	if len(a.Tools) != 0 {
		t.Fatalf("tools of a server that is down: %v", toolNames(a))
	}
	if list := r.List(nil); len(list) != 1 || len(list[0].Tools) != 0 {
		t.Fatalf("List = %+v", list)
	}
	// The server comes up: a call (here, the connect a call makes)
	// reaches it, and the agent gets its tools.
	l, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the port was taken meanwhile: %v", err)
	}
	s, _ := testServer()
	srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil)}}
	srv.Start()
	// Close the session first: the server waits for its open stream.
	t.Cleanup(func() {
		r.Close()
		srv.Close()
	})
	if _, err := r.servers["m"].session(context.Background()); err != nil {
		t.Fatal(err)
	}
	a, _ = r.Agent("a")
	if len(a.Tools) != 6 {
		t.Fatalf("tools after the server came up: %v", toolNames(a))
	}
}

func TestProgressSink(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		var got []float64
		p := &progressSink{f: func(pr Progress) { got = append(got, pr.Progress) }}
		for i := range 5 {
			p.send(Progress{Progress: float64(i)})
		}
		time.Sleep(ProgressInterval)
		p.send(Progress{Progress: 5})
		time.Sleep(ProgressInterval / 2)
		p.send(Progress{Progress: 6})
		p.close()
		time.Sleep(ProgressInterval)
		p.send(Progress{Progress: 7})
		if want := []float64{0, 5}; !slices.Equal(got, want) {
			t.Errorf("passed on %v, want %v", got, want)
		}
	})
}

func TestMCPResult(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		r      *mcp.CallToolResult
		output string
		err    string
	}{
		{"structured wins over text", &mcp.CallToolResult{StructuredContent: map[string]any{"n": 1},
			Content: []mcp.Content{&mcp.TextContent{Text: `{"n":1}`}}}, `{"n":1}`, ""},
		{"no content", &mcp.CallToolResult{}, `{"text":""}`, ""},
		{"error without text", &mcp.CallToolResult{IsError: true}, "", "the tool reported an error"},
		{"error with text", &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: "a"}, &mcp.TextContent{Text: "b"}}}, "", "a\nb"},
	} {
		res, err := mcpResult(tc.r)
		if err != nil || string(res.Output) != tc.output || res.Error != tc.err {
			t.Errorf("%s: got %s, %q, %v; want %s, %q", tc.name, res.Output, res.Error, err, tc.output, tc.err)
		}
	}
}

func TestModelName(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 70)
	for _, tc := range []struct{ server, tool, want string }{
		{"files", "read_file", "files__read_file"},
		{"files", "read.file/v2 é", "files__read_file_v2__"},
		{"s", long, "s__" + strings.Repeat("x", 52) + "_" + "c2d5c5f6"},
	} {
		got := modelName(tc.server, tc.tool)
		if !nameRE.MatchString(got) {
			t.Errorf("modelName(%q, %q) = %q, not a valid name", tc.server, tc.tool, got)
		}
		if tc.want != "" && got != tc.want && !strings.HasPrefix(tc.want, "s__") {
			t.Errorf("modelName(%q, %q) = %q, want %q", tc.server, tc.tool, got, tc.want)
		}
	}
	if a, b := modelName("s", long+"a"), modelName("s", long+"b"); a == b || len(a) != 64 {
		t.Errorf("two long names map to %q and %q", a, b)
	}
	taken := map[string]bool{"a": true, "a_2": true}
	if got := uniqueName("a", taken); got != "a_3" {
		t.Errorf("uniqueName = %q", got)
	}
	taken = map[string]bool{long[:64]: true}
	if got := uniqueName(long[:64], taken); len(got) != 64 || taken[got] {
		t.Errorf("uniqueName of a 64-character name = %q", got)
	}
}

func TestMCPToolListChanged(t *testing.T) {
	t.Parallel()
	s, _ := testServer()
	srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil))
	t.Cleanup(srv.Close)
	r, a := mcpAgent(t, MCPServer{URL: srv.URL})
	if len(a.Tools) != 6 {
		t.Fatalf("tools %v", toolNames(a))
	}
	relisted := make(chan struct{}, 1)
	m := r.servers["m"]
	m.mu.Lock()
	m.relisted = func() { relisted <- struct{}{} }
	m.mu.Unlock()
	s.AddTool(&mcp.Tool{Name: "new", InputSchema: json.RawMessage(`{"type": "object"}`)},
		func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "new"}}}, nil
		})
	<-relisted
	if old := toolNames(a); len(old) != 6 {
		t.Errorf("an agent taken before the change changed: %v", old)
	}
	a, _ = r.Agent("a")
	_, ok := a.Tool("m__new")
	if !ok {
		t.Fatalf("after the change: %v", toolNames(a))
	}
	if res, err := a.Call(context.Background(), "m__new", testCall, nil, nil); err != nil || string(res.Output) != `{"text":"new"}` {
		t.Fatalf("calling the new tool: %s, %q, %v", res.Output, res.Error, err)
	}
}

// TestMCPToolListChangedStorm: a server that says its tools changed many
// times while they are being listed again gets one more listing after
// that one, not a listing (and a goroutine) per notification.
func TestMCPToolListChangedStorm(t *testing.T) {
	t.Parallel()
	const times = 20
	s, _ := testServer()
	sent := make(chan struct{}, 1)
	s.AddSendingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if method != "notifications/tools/list_changed" {
				return next(ctx, method, req)
			}
			for range times {
				if _, err := next(ctx, method, req); err != nil {
					t.Errorf("notifying: %v", err)
				}
			}
			sent <- struct{}{}
			return nil, nil
		}
	})
	var armed atomic.Bool
	var lists atomic.Int64 // once armed
	listing, release := make(chan struct{}, times), make(chan struct{})
	s.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if method == "tools/list" && armed.Load() {
				lists.Add(1)
				listing <- struct{}{}
				<-release
			}
			return next(ctx, method, req)
		}
	})
	r, err := New(&Config{MCPServers: []MCPServer{{Name: "m", inProcess: s}},
		Agents: []AgentConfig{{Name: "a", Tools: []string{"m"}}}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	relisted := make(chan struct{}, times)
	m := r.servers["m"]
	m.mu.Lock()
	m.relisted = func() { relisted <- struct{}{} }
	m.mu.Unlock()
	armed.Store(true)
	s.AddTool(&mcp.Tool{Name: "new", InputSchema: json.RawMessage(`{"type": "object"}`)},
		func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{}, nil
		})
	<-sent
	// The client handles what the server sends in order: once it answered
	// a ping sent after the notifications, it has handled them all.
	for ss := range s.Sessions() {
		if err := ss.Ping(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
	}
	<-listing
	close(release)
	<-relisted
	<-relisted
	if n := lists.Load(); n != 2 {
		t.Errorf("%d notifications during a listing made %d listings; want 2 (that one and one after it)", times, n)
	}
	if a, _ := r.Agent("a"); !slices.Contains(toolNames(a), "m__new") {
		t.Errorf("after the change: %v", toolNames(a))
	}
}

func TestObjectSchema(t *testing.T) {
	t.Parallel()
	given := map[string]any{"properties": map[string]any{}}
	for _, tc := range []struct {
		in   any
		want string
	}{
		{nil, `{"type":"object"}`},
		{"not a map", `{"type":"object"}`},
		{given, `{"properties":{},"type":"object"}`},
		{map[string]any{"type": "object", "required": []any{"a"}}, `{"required":["a"],"type":"object"}`},
	} {
		b, _ := json.Marshal(objectSchema(tc.in))
		if string(b) != tc.want {
			t.Errorf("objectSchema(%v) = %s, want %s", tc.in, b, tc.want)
		}
	}
	if _, ok := given["type"]; ok {
		t.Error("objectSchema changed the server's schema")
	}
}

// signalHandler is a slog handler that sends on ch each record whose
// message is msg, so that a test can wait for what the keeper logs.
type signalHandler struct {
	msg string
	ch  chan struct{}
}

func (h signalHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h signalHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h signalHandler) WithGroup(string) slog.Handler            { return h }
func (h signalHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.ch <- struct{}{}
	}
	return nil
}

func TestMCPServerRestart(t *testing.T) {
	t.Parallel()
	serve := func(l net.Listener) *httptest.Server {
		s, _ := testServer() // a new server: the old session is unknown to it
		srv := &httptest.Server{Listener: l, Config: &http.Server{Handler: mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s }, nil)}}
		srv.Start()
		return srv
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	first := serve(l)
	connected := make(chan struct{}, 10)
	r, err := New(&Config{MCPServers: []MCPServer{{Name: "m", URL: first.URL}}, Agents: []AgentConfig{{Name: "a", Tools: []string{"m"}}}},
		Options{Logger: slog.New(signalHandler{"mcp server connected", connected})})
	if err != nil {
		t.Fatal(err)
	}
	<-connected
	a, _ := r.Agent("a")
	call := func() (Result, error) {
		return a.Call(context.Background(), "m__echo", testCall, json.RawMessage(`{"say": "x"}`), nil)
	}

	// The server goes away: a call is an error result, not a hang.
	first.CloseClientConnections()
	first.Listener.Close()
	if res, err := call(); err != nil || res.Error == "" {
		t.Fatalf("call while the server is down: %+v, %v", res, err)
	}

	// It comes back as a new process would (no sessions): the keeper
	// connects again and calls work.
	l, err = net.Listen("tcp", first.Listener.Addr().String())
	if err != nil {
		t.Skipf("the port was taken meanwhile: %v", err)
	}
	second := serve(l)
	t.Cleanup(func() {
		r.Close()
		second.Close()
		first.Close()
	})
	<-connected
	if res, err := call(); err != nil || string(res.Output) != `{"say":"x"}` {
		t.Fatalf("call after the server came back: %s, %q, %v", res.Output, res.Error, err)
	}
}

func TestMCPApprovalNames(t *testing.T) {
	t.Parallel()
	s := mcp.NewServer(&mcp.Implementation{Name: "names", Version: "1"}, nil)
	for _, name := range []string{"do.it", "other"} {
		s.AddTool(&mcp.Tool{Name: name, InputSchema: json.RawMessage(`{"type": "object"}`)},
			func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				return &mcp.CallToolResult{}, nil
			})
	}
	// Approval may name an MCP tool by the server's name for it or by the
	// name the model sees, even with an allow-list.
	for _, approval := range []string{"m__do.it", "m__do_it"} {
		r, err := New(&Config{
			MCPServers: []MCPServer{{Name: "m", inProcess: s, Tools: []string{"do.it", "other"}}},
			Agents:     []AgentConfig{{Name: "a", Tools: []string{"m"}, Approval: []string{approval}}},
		}, Options{})
		if err != nil {
			t.Fatalf("approval %s: %v", approval, err)
		}
		a, _ := r.Agent("a")
		doIt, _ := a.Tool("m__do_it")
		other, _ := a.Tool("m__other")
		if !doIt.Approval || other.Approval {
			t.Errorf("approval %s: tools %v, approval of do.it %v, of other %v", approval, toolNames(a), doIt.Approval, other.Approval)
		}
		r.Close()
	}
}

// TestMCPNameCollision gives an MCP server two tools whose names become
// the same once made to fit Bedrock's pattern: the one whose name fits as
// it is keeps it, the others get suffixes, and each name the model sees
// calls, and asks approval for, its own tool, whichever way approval
// names it.
func TestMCPNameCollision(t *testing.T) {
	t.Parallel()
	s := mcp.NewServer(&mcp.Implementation{Name: "collide", Version: "1"}, nil)
	for _, name := range []string{"do.it", "do_it", "do it"} {
		s.AddTool(&mcp.Tool{Name: name, InputSchema: json.RawMessage(`{"type": "object"}`)},
			func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: name}}}, nil
			})
	}
	for _, tc := range []struct {
		approval string // as the agents file names it
		want     func(server, model string) bool
	}{
		{"m__do.it", func(server, _ string) bool { return server == "do.it" }},
		{"m__do_it", func(server, model string) bool { return server == "do_it" && model == "m__do_it" }},
		{"m__do_it_3", func(_, model string) bool { return model == "m__do_it_3" }},
		{"m", func(string, string) bool { return true }},
	} {
		r, err := New(&Config{
			MCPServers: []MCPServer{{Name: "m", inProcess: s}},
			Agents:     []AgentConfig{{Name: "a", Tools: []string{"m"}, Approval: []string{tc.approval}}},
		}, Options{})
		if err != nil {
			t.Fatalf("approval %s: %v", tc.approval, err)
		}
		a, _ := r.Agent("a")
		if got := slices.Sorted(slices.Values(toolNames(a))); !slices.Equal(got, []string{"m__do_it", "m__do_it_2", "m__do_it_3"}) {
			t.Fatalf("tools %v", got)
		}
		called := map[string]bool{}
		for _, tool := range a.Tools {
			res, err := a.Call(context.Background(), tool.Name, testCall, json.RawMessage(`{}`), nil)
			var out struct{ Text string }
			if err != nil || json.Unmarshal(res.Output, &out) != nil {
				t.Fatalf("call %s: %s, %q, %v", tool.Name, res.Output, res.Error, err)
			}
			if called[out.Text] {
				t.Errorf("two names call %s", out.Text)
			}
			called[out.Text] = true
			if want := tc.want(out.Text, tool.Name); tool.Approval != want {
				t.Errorf("approval %s: %s (the server's %q) asks approval %v, want %v", tc.approval, tool.Name, out.Text, tool.Approval, want)
			}
		}
		r.Close()
	}
}

// TestCloseCancelsConnect closes the registry while the keeper's connect
// waits on a server whose handshake hangs, over streamable HTTP and
// stdio: the connect ends at once, cancelled, and the server sees the
// gateway go (its request ends, its process ends), instead of waiting out
// the connect timeout.
func TestCloseCancelsConnect(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		start func(t *testing.T) *hangingServer
	}{{"http", hangingHTTP}, {"stdio", hangingStdio}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := tc.start(t)
			h.cfg.Name = "m"
			// The default connect timeout: without the cancel, the
			// connect ends with it, not cancelled.
			r, err := New(&Config{MCPServers: []MCPServer{h.cfg}, Agents: []AgentConfig{{Name: "a", Tools: []string{"m"}}}}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close() }) // if the test stops early
			close(h.hang)
			// The keeper connects again after its backoff.
			<-h.hung
			s := r.servers["m"]
			s.mu.Lock()
			a := s.connecting
			s.mu.Unlock()
			if a == nil {
				t.Fatal("no connect in flight while the handshake hangs")
			}

			r.Close()
			<-a.done
			if !errors.Is(a.err, context.Canceled) {
				t.Errorf("the connect in flight at Close ended with %v, want it cancelled", a.err)
			}
			<-h.ended
		})
	}
}

// TestCloseEndsReload closes the registry while a Reload (SIGHUP) waits
// for a new server whose handshake hangs: the Reload returns ErrClosed at
// once instead of holding Close up for the connect timeout, and the
// connect is cancelled.
func TestCloseEndsReload(t *testing.T) {
	t.Parallel()
	r, err := New(&Config{Agents: []AgentConfig{{Name: "a"}}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := hangingHTTP(t)
	t.Cleanup(func() { r.Close() }) // if the test stops early; before h closes
	close(h.hang)
	h.cfg.Name = "m"
	reloaded := make(chan error, 1)
	go func() {
		reloaded <- r.Reload(&Config{MCPServers: []MCPServer{h.cfg}, Agents: []AgentConfig{{Name: "a", Tools: []string{"m"}}}})
	}()
	<-h.hung
	r.Close()
	if err := <-reloaded; !errors.Is(err, ErrClosed) {
		t.Errorf("Reload cut short by Close: %v, want ErrClosed", err)
	}
	<-h.ended
}

// hangingServer is an MCP server whose handshakes fail at once until
// hang is closed, and hang after: hung gets a value when one hangs, and
// ended when the gateway's side of it goes.
type hangingServer struct {
	cfg         MCPServer
	hang        chan struct{}
	hung, ended chan struct{}
}

func newHanging() *hangingServer {
	return &hangingServer{hang: make(chan struct{}), hung: make(chan struct{}, 1), ended: make(chan struct{}, 1)}
}

func poke(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// hangingHTTP serves over streamable HTTP.
func hangingHTTP(t *testing.T) *hangingServer {
	h := newHanging()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-h.hang:
		default:
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		// Read the request: the server notices the client going away
		// only then.
		_, _ = io.Copy(io.Discard, r.Body)
		poke(h.hung)
		<-r.Context().Done()
		poke(h.ended)
	}))
	t.Cleanup(srv.Close)
	h.cfg = MCPServer{URL: srv.URL}
	return h
}

// hangingStdio runs the test binary as a stdio server (hangFlag) that
// asks a listener of the test whether to hang, and holds its connection
// open while it lives.
func hangingStdio(t *testing.T) *hangingServer {
	h := newHanging()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			select {
			case <-h.hang:
			default:
				_, _ = c.Write([]byte("x"))
				c.Close()
				continue
			}
			_, _ = c.Write([]byte("h"))
			poke(h.hung)
			_, _ = io.Copy(io.Discard, c) // until the process ends
			c.Close()
			poke(h.ended)
		}
	}()
	h.cfg = MCPServer{Command: []string{os.Args[0], hangFlag, l.Addr().String()}}
	return h
}
