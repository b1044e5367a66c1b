package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/textproto"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Validate reports the first problem of c, naming the entry and the field.
// Parse calls it; New calls it for a Config built in code.
func (c *Config) Validate() error {
	names := map[string]string{} // tool and server names → the entry that has it
	claim := func(label, name string) error {
		if !nameRE.MatchString(name) {
			return fmt.Errorf("agent: %s: name %q must match %s", label, name, NamePattern)
		}
		if other, ok := names[name]; ok {
			return fmt.Errorf("agent: %s: name %q is taken by %s", label, name, other)
		}
		names[name] = label
		return nil
	}
	for i := range c.MCPServers {
		s := &c.MCPServers[i]
		label := entryLabel("mcp_servers", i, s.Name)
		if err := claim(label, s.Name); err != nil {
			return err
		}
		if err := s.validate(); err != nil {
			return fmt.Errorf("agent: %s: %w", label, err)
		}
	}
	for i := range c.Tools {
		t := &c.Tools[i]
		label := entryLabel("tools", i, t.Name)
		if err := claim(label, t.Name); err != nil {
			return err
		}
		// A tool named like an MCP tool would be ambiguous to the model.
		if server, _, ok := strings.Cut(t.Name, mcpSeparator); ok && c.server(server) != nil {
			return fmt.Errorf("agent: %s: name %q looks like a tool of MCP server %q", label, t.Name, server)
		}
		if err := t.validate(); err != nil {
			return fmt.Errorf("agent: %s: %w", label, err)
		}
	}
	if len(c.Agents) == 0 {
		return errors.New("agent: the agents file defines no agents")
	}
	agents := map[string]string{}
	for i := range c.Agents {
		a := &c.Agents[i]
		label := entryLabel("agents", i, a.Name)
		if !nameRE.MatchString(a.Name) {
			return fmt.Errorf("agent: %s: name %q must match %s", label, a.Name, NamePattern)
		}
		if other, ok := agents[a.Name]; ok {
			return fmt.Errorf("agent: %s: name %q is taken by %s", label, a.Name, other)
		}
		agents[a.Name] = label
		if err := c.validateAgent(a); err != nil {
			return fmt.Errorf("agent: %s: %w", label, err)
		}
	}
	return nil
}

// tool is the tool named name, or nil.
func (c *Config) tool(name string) *Tool {
	for i := range c.Tools {
		if c.Tools[i].Name == name {
			return &c.Tools[i]
		}
	}
	return nil
}

// server is the MCP server named name, or nil.
func (c *Config) server(name string) *MCPServer {
	for i := range c.MCPServers {
		if c.MCPServers[i].Name == name {
			return &c.MCPServers[i]
		}
	}
	return nil
}

func (t *Tool) validate() error {
	switch {
	case t.HTTP == nil && t.Client == nil:
		return errors.New("one of http and client is required")
	case t.HTTP != nil && t.Client != nil:
		return errors.New("http and client are exclusive")
	}
	if err := validateSchema(t.InputSchema); err != nil {
		return fmt.Errorf("input_schema: %w", err)
	}
	if t.Timeout < 0 {
		return errors.New("timeout: must be positive")
	}
	if t.HTTP != nil {
		if err := validateURL(t.HTTP.URL); err != nil {
			return fmt.Errorf("http: url: %w", err)
		}
		if err := validateHeaders(t.HTTP.Headers); err != nil {
			return fmt.Errorf("http: headers: %w", err)
		}
	}
	return nil
}

func (s *MCPServer) validate() error {
	switch {
	case s.inProcess != nil:
	case s.URL == "" && len(s.Command) == 0:
		return errors.New("one of url and command is required")
	case s.URL != "" && len(s.Command) > 0:
		return errors.New("url and command are exclusive")
	case s.URL != "":
		if err := validateURL(s.URL); err != nil {
			return fmt.Errorf("url: %w", err)
		}
	case s.Command[0] == "":
		return errors.New("command: the program is empty")
	}
	if len(s.Headers) > 0 && s.URL == "" {
		return errors.New("headers: only an MCP server with a url takes headers")
	}
	if err := validateHeaders(s.Headers); err != nil {
		return fmt.Errorf("headers: %w", err)
	}
	if len(s.Env) > 0 && len(s.Command) == 0 {
		return errors.New("env: only an MCP server with a command takes env")
	}
	for _, k := range slices.Sorted(maps.Keys(s.Env)) {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(s.Env[k], 0) {
			return fmt.Errorf("env: %q is not a valid variable", k)
		}
	}
	seen := map[string]bool{}
	for _, name := range s.Tools {
		if name == "" || seen[name] {
			return fmt.Errorf("tools: %q is empty or listed twice", name)
		}
		seen[name] = true
	}
	if s.Timeout < 0 {
		return errors.New("timeout: must be positive")
	}
	return nil
}

func (c *Config) validateAgent(a *AgentConfig) error {
	seen := map[string]bool{}
	for _, name := range a.Tools {
		if c.tool(name) == nil && c.server(name) == nil {
			return fmt.Errorf("tools: unknown tool or MCP server %q", name)
		}
		if seen[name] {
			return fmt.Errorf("tools: %q is listed twice", name)
		}
		seen[name] = true
	}
	for _, name := range a.Approval {
		if seen[name] {
			continue
		}
		server, tool, ok := strings.Cut(name, mcpSeparator)
		if !ok || !seen[server] || c.server(server) == nil {
			return fmt.Errorf("approval: %q is none of the agent's tools", name)
		}
		if s := c.server(server); len(s.Tools) > 0 && !slices.ContainsFunc(s.Tools, func(t string) bool {
			return t == tool || modelName(server, t) == name
		}) {
			return fmt.Errorf("approval: %q is not in MCP server %q's tools", name, server)
		}
	}
	if a.MaxSteps < 0 || a.MaxSteps > MaxMaxSteps {
		return fmt.Errorf("max_steps: must be 1 to %d", MaxMaxSteps)
	}
	if a.MaxTokens != nil && *a.MaxTokens < 1 {
		return errors.New("max_tokens: must be positive")
	}
	if a.Temperature != nil && (*a.Temperature < 0 || *a.Temperature > 1) {
		return errors.New("temperature: must be 0 to 1")
	}
	if a.Allow != nil {
		if len(a.Allow.Claims) == 0 {
			return errors.New("allow: claims: at least one claim is required")
		}
		for _, k := range slices.Sorted(maps.Keys(a.Allow.Claims)) {
			switch a.Allow.Claims[k].(type) {
			case string, int, int64, uint64, float64, bool:
			default:
				return fmt.Errorf("allow: claims: %s: want a string, number or boolean", k)
			}
		}
	}
	return nil
}

// validateSchema checks that an input schema, if set, is an object schema
// that JSON can carry (YAML allows keys JSON does not).
func validateSchema(s map[string]any) error {
	if s == nil {
		return nil
	}
	if _, err := json.Marshal(s); err != nil {
		return fmt.Errorf("not valid as JSON: %w", err)
	}
	if typ, _ := s["type"].(string); typ != "object" {
		return errors.New(`want an object schema ("type: object")`)
	}
	return nil
}

func validateURL(raw string) error {
	if raw == "" {
		return errors.New("is required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http or https URL", raw)
	}
	return nil
}

// headerNameRE matches an HTTP header name (RFC 9110's token).
var headerNameRE = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")

// reservedHeaders are set by the gateway on every HTTP tool call.
var reservedHeaders = []string{"Content-Type", "X-Gateway-User", "X-Gateway-Conversation", "X-Gateway-Call"}

func validateHeaders(h map[string]string) error {
	for _, k := range slices.Sorted(maps.Keys(h)) {
		if !headerNameRE.MatchString(k) {
			return fmt.Errorf("%q is not a valid header name", k)
		}
		if strings.ContainsAny(h[k], "\r\n\x00") {
			return fmt.Errorf("%s: the value holds a character a header cannot", k)
		}
		if slices.Contains(reservedHeaders, textproto.CanonicalMIMEHeaderKey(k)) {
			return fmt.Errorf("%s is set by the gateway", k)
		}
	}
	return nil
}

// timeout is d, or def when d is zero.
func (d Duration) or(def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return time.Duration(d)
}
