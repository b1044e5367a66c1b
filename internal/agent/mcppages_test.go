package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestMCPToolListEndless: a server whose tool list never ends (every page
// names a next one) fails its listing once it passed maxListedTools,
// with an error that says so, instead of growing the list until the
// connect timeout.
func TestMCPToolListEndless(t *testing.T) {
	t.Parallel()
	const pageSize = 100
	s, _ := testServer()
	var pages atomic.Int64 // the most pages one listing asked for
	s.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if method != "tools/list" {
				return next(ctx, method, req)
			}
			page := 1
			if c := req.(*mcp.ListToolsRequest).Params.Cursor; c != "" {
				n, _ := strconv.Atoi(c)
				page = n + 1
			}
			if int64(page) > pages.Load() {
				pages.Store(int64(page)) // one listing at a time
			}
			res := &mcp.ListToolsResult{NextCursor: fmt.Sprint(page)}
			for i := range pageSize {
				res.Tools = append(res.Tools, &mcp.Tool{Name: fmt.Sprintf("t%d_%d", page, i),
					InputSchema: json.RawMessage(`{"type": "object"}`)})
			}
			return res, nil
		}
	})
	r, err := New(&Config{MCPServers: []MCPServer{{Name: "m", inProcess: s}},
		Agents: []AgentConfig{{Name: "a", Tools: []string{"m"}}}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	_, err = r.servers["m"].session(context.Background())
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("more than %d tools", maxListedTools)) {
		t.Fatalf("got %v; want an error saying the server lists more than %d tools", err, maxListedTools)
	}
	if got, most := pages.Load(), int64(maxListedTools/pageSize+1); got > most {
		t.Errorf("one listing asked for %d pages; want at most %d", got, most)
	}
	if a, _ := r.Agent("a"); len(a.Tools) != 0 {
		t.Errorf("the agent has %d tools of a listing that failed", len(a.Tools))
	}
}
