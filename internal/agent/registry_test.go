package agent

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

func TestListAndAllowed(t *testing.T) {
	t.Parallel()
	cfg, err := Parse([]byte(`
tools:
  - {name: ask, description: Ask the user, client: {}}
agents:
  - {name: open, description: For everyone, tools: [ask]}
  - {name: support, model: m2, allow: {claims: {"cognito:groups": support}}}
  - {name: admin, allow: {claims: {"cognito:groups": support, level: 3}}}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(cfg, Options{DefaultModel: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		claims map[string]any
		want   []string
	}{
		{"no claims (-auth none)", nil, []string{"open"}},
		{"other group", map[string]any{"cognito:groups": []any{"sales"}}, []string{"open"}},
		{"group in a list", map[string]any{"cognito:groups": []any{"sales", "support"}}, []string{"open", "support"}},
		{"group as a string", map[string]any{"cognito:groups": "support"}, []string{"open", "support"}},
		{"number claim", map[string]any{"cognito:groups": "support", "level": float64(3)}, []string{"open", "support", "admin"}},
		{"wrong number", map[string]any{"cognito:groups": "support", "level": float64(4)}, []string{"open", "support"}},
		{"object claim", map[string]any{"cognito:groups": map[string]any{"support": true}}, []string{"open"}},
	} {
		var names []string
		for _, info := range r.List(tc.claims) {
			names = append(names, info.Name)
			a, ok := r.Agent(info.Name)
			if !ok || !a.Allowed(tc.claims) {
				t.Errorf("%s: %s is listed but not allowed", tc.name, info.Name)
			}
		}
		if !slices.Equal(names, tc.want) {
			t.Errorf("%s: List = %v, want %v", tc.name, names, tc.want)
		}
	}
	// The list's JSON is the wire's: no system prompt, no schema.
	b, err := json.Marshal(r.List(nil))
	if err != nil {
		t.Fatal(err)
	}
	if want := `[{"name":"open","description":"For everyone","model":"m1","tools":[{"name":"ask","description":"Ask the user","kind":"client"}]}]`; string(b) != want {
		t.Errorf("List JSON\n%s\nwant\n%s", b, want)
	}
	a, _ := r.Agent("support")
	if a.Model != "m2" || a.MaxSteps != DefaultMaxSteps || a.Tools != nil {
		t.Errorf("support: %+v", a)
	}
	ask, _ := r.Agent("open")
	if tool, ok := ask.Tool("ask"); !ok || tool.Timeout != DefaultClientTimeout || tool.InputSchema["type"] != "object" {
		t.Errorf("ask: %+v", tool)
	}
	if _, ok := r.Agent("nope"); ok {
		t.Error("Agent(nope) found one")
	}
}

func TestSystemPrompt(t *testing.T) {
	t.Parallel()
	a := &Agent{Name: "support", System: "You are {{agent}} for {{user}} in {{conversation}}; {{user}} again; {{other}} stays."}
	got := a.SystemPrompt("u1", "c1")
	if want := "You are support for u1 in c1; u1 again; {{other}} stays."; got != want {
		t.Errorf("SystemPrompt = %q, want %q", got, want)
	}
}

// echoURL serves an HTTP tool that answers {"server": name}.
func echoURL(t *testing.T, name string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, `{"server":"`+name+`"}`)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestReload(t *testing.T) {
	t.Parallel()
	mcpURL, _, _ := httpMCP(t)
	mcpURL2, _, _ := httpMCP(t)
	file := func(toolURL, otherMCP, system string) *Config {
		cfg, err := Parse([]byte(`
tools:
  - {name: h, http: {url: "`+toolURL+`"}}
mcp_servers:
  - {name: m, url: "`+mcpURL+`", tools: [echo]}
  - {name: n, url: "`+otherMCP+`", tools: [echo]}
agents:
  - {name: a, system: "`+system+`", tools: [h, m, n]}
`), nil)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	r, err := New(file(echoURL(t, "one"), mcpURL, "first"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	old, _ := r.Agent("a")
	m, n := r.servers["m"], r.servers["n"]

	// A failing reload changes nothing.
	bad := file(echoURL(t, "two"), mcpURL2, "second")
	bad.Agents[0].Tools = append(bad.Agents[0].Tools, "missing")
	if err := r.Reload(bad); err == nil || !strings.Contains(err.Error(), `unknown tool or MCP server "missing"`) {
		t.Fatalf("Reload of a bad config: %v", err)
	}
	if a, _ := r.Agent("a"); a.System != "first" {
		t.Fatalf("a failed reload changed the agent: %q", a.System)
	}

	if err := r.Reload(file(echoURL(t, "two"), mcpURL2, "second")); err != nil {
		t.Fatal(err)
	}
	cur, _ := r.Agent("a")
	if cur.System != "second" || old.System != "first" {
		t.Errorf("system prompts: old %q, new %q", old.System, cur.System)
	}
	if r.servers["m"] != m {
		t.Error("an unchanged MCP server was connected anew")
	}
	if r.servers["n"] == n || !n.retired {
		t.Error("a changed MCP server kept its old connection")
	}
	ctx := context.Background()
	for _, tc := range []struct {
		a          *Agent
		tool, want string
	}{
		{old, "h", `{"server":"one"}`}, // the old agent keeps its definition
		{cur, "h", `{"server":"two"}`},
		{old, "n__echo", `{"say":"old"}`}, // its retired MCP server connects for the call
		{cur, "n__echo", `{"say":"old"}`},
		{cur, "m__echo", `{"say":"old"}`},
	} {
		res, err := tc.a.Call(ctx, tc.tool, testCall, json.RawMessage(`{"say": "old"}`), nil)
		if err != nil || string(res.Output) != tc.want {
			t.Errorf("%s of the %q agent: %s, %q, %v; want %s", tc.tool, tc.a.System, res.Output, res.Error, err, tc.want)
		}
	}
	n.mu.Lock()
	open := n.sess != nil
	n.mu.Unlock()
	if open {
		t.Error("the retired server's session stayed open after the call")
	}
	r.Close()
	if err := r.Reload(file(echoURL(t, "three"), mcpURL2, "third")); err != ErrClosed {
		t.Errorf("Reload after Close: %v", err)
	}
}
