package agent

import (
	"errors"
	"log/slog"
	"net/http"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/chatgateway/gateway/internal/metrics"
	"github.com/chatgateway/gateway/internal/toolout"
)

// Options tunes a Registry. Zero values mean the documented defaults.
type Options struct {
	// Logger gets one line per call and the MCP connection news (default:
	// discard).
	Logger *slog.Logger
	// Metrics records tool calls (default: a fresh, unexported set).
	Metrics *metrics.Metrics
	// MaxOutputBytes caps one call's output (default
	// toolout.DefaultMaxBytes, at least toolout.MinBytes).
	MaxOutputBytes int
	// HTTPClient makes HTTP tool calls and MCP streamable HTTP requests
	// (default: one that does not follow redirects, so that a 3xx is an
	// error result). Its Timeout should be zero: tools have their own.
	HTTPClient *http.Client
	// DefaultModel is the model of agents whose entry names none.
	DefaultModel string
	// ConnectTimeout bounds connecting to an MCP server and listing its
	// tools (default DefaultConnectTimeout). New and Reload wait at most
	// this long for new servers.
	ConnectTimeout time.Duration
}

// maxIdlePerHost is how many idle connections to one tool host the
// default client keeps: the calls of one step run at once, and Go's
// default of 2 would open (and close) a connection for each call past two.
const maxIdlePerHost = 64

// defaultHTTPClient does not follow redirects (a 3xx is an error result:
// a POST redirected becomes a GET) and keeps enough idle connections.
func defaultHTTPClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = maxIdlePerHost
	return &http.Client{Transport: t, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
}

// Registry is the live set of agents and tools. Its methods are safe for
// concurrent use.
type Registry struct {
	env          *env
	defaultModel string

	reload sync.Mutex // serialises Reload and Close
	// closing is closed when Close starts: from then on Reload fails,
	// and a Reload waiting for new servers gives up.
	closing   chan struct{}
	closeOnce sync.Once

	mu      sync.Mutex
	cfg     *Config
	servers map[string]*mcpServer
}

// ErrClosed is Reload's error after Close.
var ErrClosed = errors.New("agent: registry closed")

// New validates cfg and returns a registry of its agents. It starts a
// connection to each MCP server and waits for the first attempts to end
// (at most ConnectTimeout); a server that cannot be reached does not make
// New fail: it is logged and retried in the background, and its tools
// appear once it is reached. Close stops the connections.
func New(cfg *Config, opts Options) (*Registry, error) {
	e := &env{log: opts.Logger, metrics: opts.Metrics, maxOutput: opts.MaxOutputBytes,
		connectTimeout: opts.ConnectTimeout, httpClient: opts.HTTPClient}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.metrics == nil {
		e.metrics = metrics.New()
	}
	e.maxOutput = toolout.Limit(e.maxOutput)
	if e.connectTimeout <= 0 {
		e.connectTimeout = DefaultConnectTimeout
	}
	if e.httpClient == nil {
		e.httpClient = defaultHTTPClient()
	}
	r := &Registry{env: e, defaultModel: opts.DefaultModel, servers: map[string]*mcpServer{}, closing: make(chan struct{})}
	if err := r.Reload(cfg); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload replaces the agents and tools with cfg's. An invalid cfg changes
// nothing and is returned as the error. Turns keep the *Agent they took;
// MCP servers whose entry did not change keep their connection, the
// others are connected anew (waiting as New does, unless Close cuts the
// wait short: Reload then returns ErrClosed) and the old ones closed once
// their calls end.
func (r *Registry) Reload(cfg *Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	r.reload.Lock()
	defer r.reload.Unlock()
	select {
	case <-r.closing:
		return ErrClosed
	default:
	}
	r.mu.Lock()
	old := r.servers
	r.mu.Unlock()
	servers := map[string]*mcpServer{}
	var fresh []*mcpServer
	for _, sc := range cfg.MCPServers {
		if s, ok := old[sc.Name]; ok && sameServer(s.cfg, sc) {
			servers[sc.Name] = s
			continue
		}
		s := newMCPServer(sc, r.env)
		servers[sc.Name] = s
		fresh = append(fresh, s)
		s.start()
	}
	for _, s := range fresh {
		select {
		case <-s.ready:
		case <-r.closing:
			for _, s := range fresh {
				s.retire()
			}
			return ErrClosed
		}
	}
	r.mu.Lock()
	r.cfg, r.servers = cfg, servers
	r.mu.Unlock()
	for name, s := range old {
		if servers[name] != s {
			s.retire()
		}
	}
	return nil
}

// Close stops every MCP connection, cancelling the connects in flight
// that no call waits for (a Reload waiting for new servers returns
// ErrClosed). Agents taken before keep working: their MCP calls connect
// for the call.
func (r *Registry) Close() error {
	r.closeOnce.Do(func() { close(r.closing) })
	r.reload.Lock()
	defer r.reload.Unlock()
	r.mu.Lock()
	servers := r.servers
	r.mu.Unlock()
	for _, s := range servers {
		s.retire()
	}
	return nil
}

// Agent returns the agent named name as it is now, with the tools its MCP
// servers list now. It does not check allow: see Agent.Allowed.
func (r *Registry) Agent(name string) (*Agent, bool) {
	r.mu.Lock()
	cfg, servers := r.cfg, r.servers
	r.mu.Unlock()
	i := slices.IndexFunc(cfg.Agents, func(a AgentConfig) bool { return a.Name == name })
	if i < 0 {
		return nil, false
	}
	return r.build(cfg, servers, &cfg.Agents[i]), true
}

// List is the agents a user with these claims may use, in the file's
// order.
func (r *Registry) List(claims map[string]any) []AgentInfo {
	r.mu.Lock()
	cfg, servers := r.cfg, r.servers
	r.mu.Unlock()
	out := []AgentInfo{}
	for i := range cfg.Agents {
		ac := &cfg.Agents[i]
		if ac.Allow != nil && !allowed(ac.Allow.Claims, claims) {
			continue
		}
		out = append(out, r.build(cfg, servers, ac).Info())
	}
	return out
}

// build makes the Agent of ac from cfg and the servers' tools now.
func (r *Registry) build(cfg *Config, servers map[string]*mcpServer, ac *AgentConfig) *Agent {
	a := &Agent{Name: ac.Name, Description: ac.Description, Model: ac.Model, System: ac.System,
		MaxSteps: ac.MaxSteps, MaxTokens: ac.MaxTokens, Temperature: ac.Temperature,
		runners: map[string]runner{}, env: r.env}
	if a.Model == "" {
		a.Model = r.defaultModel
	}
	if a.MaxSteps == 0 {
		a.MaxSteps = DefaultMaxSteps
	}
	if ac.Allow != nil {
		a.allow = ac.Allow.Claims
	}
	approval := map[string]bool{}
	for _, name := range ac.Approval {
		approval[name] = true
	}
	taken := map[string]bool{}
	for _, name := range ac.Tools {
		if t := cfg.tool(name); t != nil {
			info := ToolInfo{Name: t.Name, Description: t.Description, InputSchema: t.InputSchema,
				Approval: approval[t.Name]}
			if info.InputSchema == nil {
				info.InputSchema = map[string]any{"type": "object", "properties": map[string]any{}}
			}
			if t.Client != nil {
				info.Kind, info.Timeout = KindClient, t.Timeout.or(DefaultClientTimeout)
			} else {
				info.Kind, info.Timeout = KindHTTP, t.Timeout.or(DefaultTimeout)
				a.runners[t.Name] = &httpTool{url: t.HTTP.URL, headers: t.HTTP.Headers,
					client: r.env.httpClient, max: r.env.maxOutput}
			}
			taken[info.Name] = true
			a.Tools = append(a.Tools, info)
			continue
		}
		s := servers[name]
		listed := s.listed()
		names := mcpNames(name, listed, taken)
		for i, mt := range listed {
			// Approval names the tool by the server's name for it or by
			// the name the model sees, suffix included, so that two tools
			// whose names fit the pattern alike are told apart.
			info := ToolInfo{Name: names[i], Description: mt.description, Kind: KindMCP,
				InputSchema: mt.schema, Timeout: s.cfg.Timeout.or(DefaultTimeout)}
			info.Approval = approval[name] || approval[info.Name] || approval[name+mcpSeparator+mt.name]
			a.Tools = append(a.Tools, info)
			a.runners[info.Name] = mcpRunner{srv: s, name: mt.name}
		}
	}
	return a
}

// sameServer reports whether two MCP server entries are the same, so that
// a reload keeps the connection. An in-process server is compared by
// identity only: comparing a live mcp.Server's insides would race with it.
func sameServer(a, b MCPServer) bool {
	if a.inProcess != b.inProcess {
		return false
	}
	a.inProcess, b.inProcess = nil, nil
	return reflect.DeepEqual(a, b)
}
