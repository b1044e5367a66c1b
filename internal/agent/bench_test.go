package agent

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkCallHTTP is one HTTP tool call to a loopback server that
// answers at once: the gateway's own cost of a call (request, headers,
// body, output checks, metrics, log) plus loopback HTTP.
func BenchmarkCallHTTP(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, `{"order": {"id": "42", "state": "shipped"}}`)
	}))
	b.Cleanup(srv.Close)
	r, err := New(&Config{
		Tools:  []Tool{{Name: "t", HTTP: &HTTPTool{URL: srv.URL}}},
		Agents: []AgentConfig{{Name: "a", Tools: []string{"t"}}},
	}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	a, _ := r.Agent("a")
	benchCall(b, a, "t", `{"id": "42"}`)
}

// BenchmarkCallMCP is one call of the built-in example's calc tool: an
// MCP round trip over in-memory transports.
func BenchmarkCallMCP(b *testing.B) {
	r, err := New(Builtin(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close() })
	a, _ := r.Agent("demo")
	benchCall(b, a, "example__calc", `{"a": 6, "op": "*", "b": 7}`)
}

func benchCall(b *testing.B, a *Agent, tool, input string) {
	ctx := context.Background()
	in := json.RawMessage(input)
	b.ReportAllocs()
	for b.Loop() {
		res, err := a.Call(ctx, tool, testCall, in, nil)
		if err != nil || res.Error != "" {
			b.Fatal(res.Error, err)
		}
	}
}
