package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testEnv is the environment the example files expand from.
func testEnv(k string) string {
	return map[string]string{"ORDERS_TOKEN": "secret-token", "FILES_KEY": "files-key", "HOST": "orders.internal"}[k]
}

func TestLoadExample(t *testing.T) {
	t.Parallel()
	cfg, err := Load("testdata/example.yaml", testEnv)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Tools) != 2 || len(cfg.MCPServers) != 1 || len(cfg.Agents) != 1 {
		t.Fatalf("got %d tools, %d servers, %d agents", len(cfg.Tools), len(cfg.MCPServers), len(cfg.Agents))
	}
	lookup := cfg.Tools[0]
	if got := lookup.HTTP.Headers["Authorization"]; got != "Bearer secret-token" {
		t.Errorf("Authorization = %q, want the expanded token", got)
	}
	if time.Duration(lookup.Timeout) != 30*time.Second {
		t.Errorf("timeout = %v", time.Duration(lookup.Timeout))
	}
	if cfg.Tools[1].Client == nil {
		t.Error("confirm is not a client tool")
	}
	if got := cfg.MCPServers[0].Headers["X-Key"]; got != "files-key" {
		t.Errorf("X-Key = %q", got)
	}
	a := cfg.Agents[0]
	if a.MaxTokens == nil || *a.MaxTokens != 1024 || a.Temperature == nil || *a.Temperature != 0.2 {
		t.Errorf("max_tokens, temperature = %v, %v", a.MaxTokens, a.Temperature)
	}
	if a.Allow == nil || a.Allow.Claims["cognito:groups"] != "support" {
		t.Errorf("allow = %+v", a.Allow)
	}
}

func TestParseJSON(t *testing.T) {
	t.Parallel()
	cfg, err := Parse([]byte(`{"tools":[{"name":"t","client":{}}],"agents":[{"name":"a","tools":["t"]}]}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Agents[0].Tools[0] != "t" || cfg.Tools[0].Client == nil {
		t.Errorf("got %+v", cfg)
	}
}

func TestParseNullClient(t *testing.T) {
	t.Parallel()
	// "client:" with nothing after it means a client tool, as "client: {}".
	cfg, err := Parse([]byte("tools:\n  - name: t\n    client:\nagents:\n  - name: a\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Tools[0].Client == nil {
		t.Error("client: (null) did not make a client tool")
	}
}

func TestExpandVars(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want, err string }{
		{in: "plain", want: "plain"},
		{in: "http://${HOST}/x?a=$b", want: "http://orders.internal/x?a=$b"},
		{in: "${ORDERS_TOKEN}${FILES_KEY}", want: "secret-tokenfiles-key"},
		{in: "$HOST and ${ HOST }", want: "$HOST and ${ HOST }"},
		{in: "x${NOPE}y", err: "${NOPE} is not set"},
	} {
		got, err := expandVars(tc.in, testEnv)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("expandVars(%q) error = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("expandVars(%q) = %q, %v, want %q", tc.in, got, err, tc.want)
		}
	}
}

// agentsOnly completes a file fragment with one agent.
const agentsOnly = "agents:\n  - name: a\n"

func TestParseErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, file, want string
	}{
		{"empty", "", "the agents file is empty"},
		{"not a mapping", "- 1\n", "must be a mapping"},
		{"two documents", agentsOnly + "---\n" + agentsOnly, "more than one YAML document"},
		{"syntax", "agents: [\n", "yaml"},
		{"no agents", "tools: []\n", "defines no agents"},
		{"unknown top-level field", "agent: []\n", `unknown field "agent" (known: agents, mcp_servers, tools)`},
		{"list is a mapping", "agents: {name: a}\n", "agents must be a list"},
		{"unknown agent field", "agents:\n  - name: support\n    toolz: [x]\n",
			`agents[0] (support): line 3: unknown field "toolz" (known: name, description, model, system, tools, approval, max_steps, max_tokens, temperature, allow)`},
		{"field twice", "agents:\n  - name: a\n    model: x\n    model: y\n", "agents[0] (a): line 4: model appears twice"},
		{"unknown nested field", "tools:\n  - name: t\n    http: {url: 'http://x', header: {}}\n" + agentsOnly,
			`tools[0] (t): http: line 3: unknown field "header" (known: url, headers)`},
		{"wrong type", "agents:\n  - name: a\n    max_steps: ten\n", "agents[0] (a): max_steps: line 3: cannot unmarshal !!str `ten` into int"},
		{"entry without name", "agents:\n  - description: x\n", `agents[0]: name "" must match`},
		{"bad name", "agents:\n  - name: 'a b'\n", `agents[0] (a b): name "a b" must match ^[a-zA-Z0-9_-]{1,64}$`},
		{"long name", "agents:\n  - name: " + strings.Repeat("x", 65) + "\n", "must match"},
		{"duplicate agent", agentsOnly + "  - name: a\n", `agents[1] (a): name "a" is taken by agents[0] (a)`},
		{"tool and server share a name", "tools:\n  - {name: x, client: {}}\nmcp_servers:\n  - {name: x, url: 'http://m'}\n" + agentsOnly,
			`tools[0] (x): name "x" is taken by mcp_servers[0] (x)`},
		{"tool named like an MCP tool", "tools:\n  - {name: files__read, client: {}}\nmcp_servers:\n  - {name: files, url: 'http://m'}\n" + agentsOnly,
			`tools[0] (files__read): name "files__read" looks like a tool of MCP server "files"`},
		{"neither http nor client", "tools:\n  - {name: t}\n" + agentsOnly, "tools[0] (t): one of http and client is required"},
		{"http and client", "tools:\n  - {name: t, client: {}, http: {url: 'http://x'}}\n" + agentsOnly, "tools[0] (t): http and client are exclusive"},
		{"no url", "tools:\n  - {name: t, http: {}}\n" + agentsOnly, "tools[0] (t): http: url: is required"},
		{"bad url", "tools:\n  - {name: t, http: {url: 'ftp://x'}}\n" + agentsOnly, `tools[0] (t): http: url: "ftp://x" is not an http or https URL`},
		{"unset variable", "tools:\n  - {name: t, http: {url: 'http://x', headers: {A: '${NOPE}'}}}\n" + agentsOnly,
			"tools[0] (t): http: headers: A: ${NOPE} is not set"},
		{"unset variable in url", "mcp_servers:\n  - {name: m, url: 'http://${NOPE}/mcp'}\n" + agentsOnly,
			"mcp_servers[0] (m): url: ${NOPE} is not set"},
		{"unset variable in command", "mcp_servers:\n  - {name: m, command: [x, '${NOPE}']}\n" + agentsOnly,
			"mcp_servers[0] (m): command[1]: ${NOPE} is not set"},
		{"reserved header", "tools:\n  - {name: t, http: {url: 'http://x', headers: {x-gateway-user: me}}}\n" + agentsOnly,
			"tools[0] (t): http: headers: x-gateway-user is set by the gateway"},
		{"bad header name", "tools:\n  - {name: t, http: {url: 'http://x', headers: {'a b': c}}}\n" + agentsOnly,
			`tools[0] (t): http: headers: "a b" is not a valid header name`},
		{"bad timeout", "tools:\n  - {name: t, client: {}, timeout: soon}\n" + agentsOnly,
			`tools[0] (t): timeout: line 2: want a duration such as "30s", not "soon"`},
		{"negative timeout", "tools:\n  - {name: t, client: {}, timeout: -1s}\n" + agentsOnly, "tools[0] (t): timeout: must be positive"},
		{"schema not an object", "tools:\n  - {name: t, client: {}, input_schema: {type: string}}\n" + agentsOnly,
			`tools[0] (t): input_schema: want an object schema ("type: object")`},
		{"schema with a non-string key", "tools:\n  - {name: t, client: {}, input_schema: {type: object, properties: {1: {}}}}\n" + agentsOnly,
			"tools[0] (t): input_schema: not valid as JSON"},
		{"server with url and command", "mcp_servers:\n  - {name: m, url: 'http://m', command: [x]}\n" + agentsOnly,
			"mcp_servers[0] (m): url and command are exclusive"},
		{"server with neither", "mcp_servers:\n  - {name: m}\n" + agentsOnly, "mcp_servers[0] (m): one of url and command is required"},
		{"stdio server with headers", "mcp_servers:\n  - {name: m, command: [x], headers: {A: b}}\n" + agentsOnly,
			"mcp_servers[0] (m): headers: only an MCP server with a url takes headers"},
		{"env without a command", "mcp_servers:\n  - {name: m, url: 'http://m', env: {A: b}}\n" + agentsOnly,
			"mcp_servers[0] (m): env: only an MCP server with a command takes env"},
		{"bad env name", "mcp_servers:\n  - {name: m, command: [x], env: {'A=B': c}}\n" + agentsOnly,
			`mcp_servers[0] (m): env: "A=B" is not a valid variable`},
		{"unset variable in env", "mcp_servers:\n  - {name: m, command: [x], env: {A: '${NOPE}'}}\n" + agentsOnly,
			"mcp_servers[0] (m): env: A: ${NOPE} is not set"},
		{"empty program", "mcp_servers:\n  - {name: m, command: ['']}\n" + agentsOnly, "mcp_servers[0] (m): command: the program is empty"},
		{"allow-list twice", "mcp_servers:\n  - {name: m, url: 'http://m', tools: [a, a]}\n" + agentsOnly,
			`mcp_servers[0] (m): tools: "a" is empty or listed twice`},
		{"unknown tool", "agents:\n  - name: a\n  - name: support\n    tools: [x]\n",
			`agents[1] (support): tools: unknown tool or MCP server "x"`},
		{"tool twice", "tools:\n  - {name: t, client: {}}\nagents:\n  - {name: a, tools: [t, t]}\n", `agents[0] (a): tools: "t" is listed twice`},
		{"approval of another tool", "tools:\n  - {name: t, client: {}}\n  - {name: u, client: {}}\nagents:\n  - {name: a, tools: [t], approval: [u]}\n",
			`agents[0] (a): approval: "u" is none of the agent's tools`},
		{"approval outside the allow-list", "mcp_servers:\n  - {name: m, url: 'http://m', tools: [x]}\nagents:\n  - {name: a, tools: [m], approval: [m__y]}\n",
			`agents[0] (a): approval: "m__y" is not in MCP server "m"'s tools`},
		{"max_steps too big", "agents:\n  - {name: a, max_steps: 101}\n", "agents[0] (a): max_steps: must be 1 to 100"},
		{"max_tokens zero", "agents:\n  - {name: a, max_tokens: 0}\n", "agents[0] (a): max_tokens: must be positive"},
		{"temperature too high", "agents:\n  - {name: a, temperature: 2}\n", "agents[0] (a): temperature: must be 0 to 1"},
		{"allow without claims", "agents:\n  - {name: a, allow: {}}\n", "agents[0] (a): allow: claims: at least one claim is required"},
		{"allow with a list", "agents:\n  - {name: a, allow: {claims: {groups: [x]}}}\n", "agents[0] (a): allow: claims: groups: want a string, number or boolean"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse([]byte(tc.file), testEnv)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Parse error = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestParseValid(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, file string }{
		{"approval of a server", "mcp_servers:\n  - {name: m, url: 'http://m'}\nagents:\n  - {name: a, tools: [m], approval: [m]}\n"},
		{"approval of one MCP tool", "mcp_servers:\n  - {name: m, url: 'http://m'}\nagents:\n  - {name: a, tools: [m], approval: [m__x]}\n"},
		{"numeric and boolean claims", "agents:\n  - {name: a, allow: {claims: {level: 3, admin: true}}}\n"},
		{"stdio server", "mcp_servers:\n  - {name: m, command: [mcp-server, '$HOME']}\n" + agentsOnly},
		{"null lists", "tools:\nmcp_servers:\n" + agentsOnly},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := Parse([]byte(tc.file), testEnv); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "agents.yaml")
	if err := os.WriteFile(path, []byte("agents:\n  - name: a\n    tools: [x]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path, testEnv)
	if err == nil || !strings.HasPrefix(err.Error(), path+": agent: agents[0] (a): tools:") {
		t.Fatalf("Load error = %v, want it to name the file and the entry", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml"), testEnv); err == nil {
		t.Fatal("Load of a missing file succeeded")
	}
}
