package agent

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/chatgateway/gateway/internal/toolout"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// countingTransport counts the bytes of response bodies read through it.
type countingTransport struct {
	n *atomic.Int64
}

func (c countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err == nil {
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

// TestMCPAnswerTooLarge: an MCP server's answer far past the output cap is
// not read whole (nor, over SSE, held whole: the SDK drains the rest of
// the stream into io.Discard until the session closes); the call fails with
// an error that gives the bound, and the keeper connects again.
func TestMCPAnswerTooLarge(t *testing.T) {
	t.Parallel()
	const huge = 8 << 20
	limit := mcpMessageBytes(toolout.MinBytes)
	for _, tc := range []struct {
		name string
		json bool // the server answers with JSON bodies, not SSE streams
	}{{"sse", false}, {"json", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, _ := testServer()
			s.AddTool(&mcp.Tool{Name: "huge", InputSchema: json.RawMessage(`{"type": "object"}`)},
				func(context.Context, *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
					return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: strings.Repeat("x", huge)}}}, nil
				})
			srv := httptest.NewServer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return s },
				&mcp.StreamableHTTPOptions{JSONResponse: tc.json}))
			t.Cleanup(srv.Close)
			var read atomic.Int64
			connected := make(chan struct{}, 10)
			r, err := New(&Config{MCPServers: []MCPServer{{Name: "m", URL: srv.URL, Tools: []string{"huge", "echo"}}},
				Agents: []AgentConfig{{Name: "a", Tools: []string{"m"}}}},
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
			t.Logf("read %d bytes of the answer; error %q", got, res.Error)
			if err != nil || !strings.Contains(res.Error, strconv.Itoa(limit)+" bytes") {
				t.Errorf("got %.100s, %q, %v; want an error saying the answer is past %d bytes", res.Output, res.Error, err, limit)
			}
			if tc.json && got > int64(limit)+1 {
				t.Errorf("read %d bytes of an answer of more than %d; want at most %d", got, huge, limit+1)
			}
			<-connected
			res, err = a.Call(context.Background(), "m__echo", testCall, json.RawMessage(`{"say": "hi"}`), nil)
			if err != nil || string(res.Output) != `{"say":"hi"}` {
				t.Errorf("the next call: got %s, %q, %v", res.Output, res.Error, err)
			}
		})
	}
}
