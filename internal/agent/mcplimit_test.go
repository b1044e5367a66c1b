package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/chatgateway/gateway/internal/toolout"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// countingTransport counts the bytes of the bodies read through it that
// answer a tools/call request. The other requests' answers (the client's
// session traffic, which may run beside a call) are not counted.
type countingTransport struct {
	n *atomic.Int64
}

func (c countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	call := false
	if req.Body != nil {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return nil, err
		}
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(body))
		call = bytes.Contains(body, []byte(`"method":"tools/call"`))
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err == nil && call {
		resp.Body = countingBody{resp.Body, c.n}
	}
	return resp, err
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// hugeBytes is the length of the text of addHuge's tool.
const hugeBytes = 8 << 20

// addHuge adds tool "huge" to s: its answer is far past the bound of an
// MCP message with the least output limit.
func addHuge(s *mcp.Server) {
	s.AddTool(&mcp.Tool{Name: "huge", InputSchema: json.RawMessage(`{"type": "object"}`)},
		func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: strings.Repeat("x", hugeBytes)}}}, nil
		})
}

// TestMCPAnswerTooLarge: an MCP server's answer far past the output cap is
// not read whole (over SSE the SDK drains the rest of the stream into
// io.Discard until the session closes); the call fails with an error that
// gives the bound, and the keeper connects again.
func TestMCPAnswerTooLarge(t *testing.T) {
	t.Parallel()
	limit := mcpMessageBytes(toolout.MinBytes)
	httpServer := func(t *testing.T, json bool) string {
		s, _ := testServer()
		addHuge(s)
		srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s },
			&mcp.StreamableHTTPOptions{JSONResponse: json}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	for _, tc := range []struct {
		name   string
		server func(t *testing.T) MCPServer
		json   bool // answers come as JSON bodies, whose reading is counted
	}{
		{name: "sse", server: func(t *testing.T) MCPServer { return MCPServer{URL: httpServer(t, false)} }},
		{name: "json", server: func(t *testing.T) MCPServer { return MCPServer{URL: httpServer(t, true)} }, json: true},
		{name: "stdio", server: func(*testing.T) MCPServer { return MCPServer{Command: []string{os.Args[0], stdioFlag}} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sc := tc.server(t)
			sc.Name, sc.Tools = "m", []string{"huge", "echo"}
			var read atomic.Int64
			connected := make(chan struct{}, 10)
			r, err := New(&Config{MCPServers: []MCPServer{sc}, Agents: []AgentConfig{{Name: "a", Tools: []string{"m"}}}},
				Options{MaxOutputBytes: toolout.MinBytes, HTTPClient: &http.Client{Transport: countingTransport{&read}},
					Logger: slog.New(signalHandler{"mcp server connected", connected})})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { r.Close() })
			<-connected
			a, _ := r.Agent("a")
			before := read.Load()
			res, err := a.Call(context.Background(), "m__huge", testCall, nil, nil)
			got := read.Load() - before
			t.Logf("read %d bytes over HTTP; error %q", got, res.Error)
			if err != nil || !strings.Contains(res.Error, strconv.Itoa(limit)+" bytes") {
				t.Fatalf("got %.100s, %q, %v; want an error saying the answer is past %d bytes", res.Output, res.Error, err, limit)
			}
			if tc.json && got > int64(limit)+1 {
				t.Errorf("read %d bytes of an answer of more than %d; want at most %d", got, hugeBytes, limit+1)
			}
			<-connected
			res, err = a.Call(context.Background(), "m__echo", testCall, json.RawMessage(`{"say": "hi"}`), nil)
			if err != nil || string(res.Output) != `{"say":"hi"}` {
				t.Errorf("the next call: got %s, %q, %v", res.Output, res.Error, err)
			}
		})
	}
}
