package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"go.yaml.in/yaml/v3"
)

// Config is the content of an agents file: the tools, the MCP servers and
// the agents that use them. Parse returns one that is valid; a Config built
// in code is validated by New.
type Config struct {
	// Tools are the HTTP and client tools.
	Tools []Tool `yaml:"tools"`
	// MCPServers are the MCP servers whose tools agents may use.
	MCPServers []MCPServer `yaml:"mcp_servers"`
	// Agents are the agents conversations can be bound to.
	Agents []AgentConfig `yaml:"agents"`
}

// Tool is one HTTP or client tool of the agents file. Exactly one of HTTP
// and Client is set.
type Tool struct {
	// Name is the name the model calls it by (see NamePattern).
	Name string `yaml:"name"`
	// Description tells the model what the tool does.
	Description string `yaml:"description"`
	// InputSchema is the JSON schema of the tool's input, an object schema
	// (default: an object with no declared properties).
	InputSchema map[string]any `yaml:"input_schema"`
	// HTTP makes it a tool the gateway POSTs to.
	HTTP *HTTPTool `yaml:"http"`
	// Client makes it a tool a connected client answers (tool_output).
	Client *ClientTool `yaml:"client"`
	// Timeout bounds one call (default DefaultTimeout, or
	// DefaultClientTimeout for a client tool).
	Timeout Duration `yaml:"timeout"`
}

// HTTPTool is where an HTTP tool is served.
type HTTPTool struct {
	// URL is POSTed the model's input as a JSON body. ${VAR} is expanded.
	URL string `yaml:"url"`
	// Headers are sent with every call. ${VAR} is expanded in values.
	Headers map[string]string `yaml:"headers"`
}

// ClientTool marks a tool as answered by a connected client. It has no
// settings yet.
type ClientTool struct{}

// MCPServer is one MCP server of the agents file, reached over streamable
// HTTP (URL) or as a child process speaking stdio (Command).
type MCPServer struct {
	// Name prefixes its tools' names as the model sees them:
	// <name>__<tool>.
	Name string `yaml:"name"`
	// URL is the server's streamable HTTP endpoint. ${VAR} is expanded.
	URL string `yaml:"url"`
	// Command is the program and arguments of a stdio server. ${VAR} is
	// expanded in each.
	Command []string `yaml:"command"`
	// Headers are sent with every HTTP request to URL. ${VAR} is expanded
	// in values.
	Headers map[string]string `yaml:"headers"`
	// Env is the environment of a stdio server's process, added to the
	// few variables it inherits from the gateway (PATH, HOME, USER,
	// LOGNAME, SHELL, TERM, TMPDIR, LANG, LC_ALL, TZ). ${VAR} is expanded
	// in values.
	Env map[string]string `yaml:"env"`
	// Tools, when set, is the allow-list of the server's tools (by the
	// server's names) that agents get; the default is all of them.
	Tools []string `yaml:"tools"`
	// Timeout bounds one call (default DefaultTimeout).
	Timeout Duration `yaml:"timeout"`

	// inProcess, when set, is an MCP server in this process, reached over
	// in-memory transports; only Builtin sets it.
	inProcess *mcp.Server
}

// AgentConfig is one agent of the agents file.
type AgentConfig struct {
	// Name is what conversations name the agent by (see NamePattern).
	Name string `yaml:"name"`
	// Description is shown in the agents list.
	Description string `yaml:"description"`
	// Model is the Bedrock model id (default: the gateway's -model).
	Model string `yaml:"model"`
	// System is the system prompt; {{agent}}, {{user}} and
	// {{conversation}} are replaced (see Agent.SystemPrompt).
	System string `yaml:"system"`
	// Tools names tools and MCP servers (all of a server's tools).
	Tools []string `yaml:"tools"`
	// Approval names the calls that wait for a person's approval: a tool,
	// an MCP server (all its tools) or one MCP tool as <server>__<tool>
	// (the server's name for the tool, or the name the model sees).
	Approval []string `yaml:"approval"`
	// MaxSteps bounds the model calls of one turn (default
	// DefaultMaxSteps, at most MaxMaxSteps).
	MaxSteps int `yaml:"max_steps"`
	// MaxTokens is the model's output limit per call, if set.
	MaxTokens *int32 `yaml:"max_tokens"`
	// Temperature is the model's temperature (0 to 1), if set.
	Temperature *float32 `yaml:"temperature"`
	// Allow, if set, limits who may list and use the agent.
	Allow *Allow `yaml:"allow"`
}

// Allow limits an agent to the users whose token claims match.
type Allow struct {
	// Claims must all match: the token's claim equals the value, or is a
	// list holding it. Values are strings, numbers or booleans, compared
	// as text.
	Claims map[string]any `yaml:"claims"`
}

// Duration is a time.Duration written as Go writes one ("30s", "10m").
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if n.Kind != yaml.ScalarNode || n.Decode(&s) != nil {
		return fmt.Errorf("line %d: want a duration such as \"30s\"", n.Line)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: want a duration such as \"30s\", not %q", n.Line, s)
	}
	*d = Duration(v)
	return nil
}

// Defaults and limits of the agents file.
const (
	// DefaultTimeout bounds an HTTP or MCP call without a timeout.
	DefaultTimeout = 60 * time.Second
	// DefaultClientTimeout bounds the wait for a client tool's answer.
	DefaultClientTimeout = 10 * time.Minute
	// DefaultMaxSteps is an agent's max_steps when it sets none.
	DefaultMaxSteps = 10
	// MaxMaxSteps is the largest max_steps allowed.
	MaxMaxSteps = 100
	// NamePattern is what names of agents, tools and MCP servers must
	// match: Bedrock's pattern for tool names.
	NamePattern = `^[a-zA-Z0-9_-]{1,64}$`
)

var nameRE = regexp.MustCompile(NamePattern)

// maxFileBytes bounds an agents file: it is read whole.
const maxFileBytes = 4 << 20

// Load reads, expands and validates the agents file at path, with getenv
// supplying ${VAR} values. Its errors name the entry and the field.
func Load(path string, getenv func(string) string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("agent: read %s: %w", path, err)
	}
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("agent: %s: larger than %d bytes", path, maxFileBytes)
	}
	cfg, err := Parse(data, getenv)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// Parse decodes an agents file (YAML, or JSON, which is YAML too),
// rejecting unknown fields, expands ${VAR} in URLs, headers, commands and env
// with getenv (an unset or empty variable is an error), and validates it.
// Its errors name the entry and the field, e.g.
// `agents[2] (support): tools: unknown tool or MCP server "x"`.
func Parse(data []byte, getenv func(string) string) (*Config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("agent: the agents file is empty")
		}
		return nil, fmt.Errorf("agent: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("agent: the agents file holds more than one YAML document")
	}
	cfg := &Config{}
	if err := decodeFile(&root, cfg); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if err := cfg.expand(getenv); err != nil {
		return nil, fmt.Errorf("agent: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}
