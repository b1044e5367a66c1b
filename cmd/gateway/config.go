package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/chatgateway/gateway/internal/flagenv"
	"github.com/chatgateway/gateway/internal/limits"
)

// config is the gateway's configuration, from flags and their environment
// twins. A zero value means the documented default of the package that
// uses it.
type config struct {
	addr     string
	db       string
	provider string
	model    string
	region   string
	// bedrockEndpoint, maxTokens and temperature configure -provider
	// bedrock; temperature < 0 leaves it to the model.
	bedrockEndpoint string
	maxTokens       int
	temperature     float64
	bedrockAttempts int
	// bedrockHeaderTimeout bounds the wait for Bedrock's response headers,
	// bedrockIdleTimeout the wait for each stream event after them.
	bedrockHeaderTimeout time.Duration
	bedrockIdleTimeout   time.Duration
	// pprof, when set, is the localhost address of the profiling server.
	pprof string
	// otelEndpoint is the OTLP/HTTP collector that gets the spans.
	otelEndpoint   string
	demoWordDelay  time.Duration
	maxFrameBytes  int64
	maxTextBytes   int
	sizes          limits.Sizes
	sendQueue      int
	sendQueueBytes int
	maxQueuedTurns int
	// maxModelCalls bounds the model calls in progress at once (0: no
	// bound).
	maxModelCalls int
	// maxWaitingTurns bounds the turns waiting for their first model
	// call (0: convo.DefaultMaxWaitingTurns).
	maxWaitingTurns int
	// maxHistoryBytes bounds what a turn reads of its conversation (0:
	// convo.DefaultMaxHistoryBytes).
	maxHistoryBytes int
	logFormat       string
	logLevel        string

	auth        string
	jwtJWKS     string
	jwtIssuer   string
	jwtAudience string
	jwtLeeway   time.Duration
	// jwtSecret comes only from the environment (GATEWAY_JWT_SECRET),
	// never from a flag, so that it does not show in ps or shell history.
	jwtSecret      string
	allowedOrigins string

	maxSubscriptions int
	maxConns         int
	maxConnsPerUser  int
	sendRate         float64
	sendBurst        int
	upgradeRate      float64
	upgradeBurst     int
	authFailRate     float64
	authFailBurst    int
	drainTimeout     time.Duration

	// proxies, from -trusted-proxies, are believed about the client
	// address in X-Forwarded-For (nil: no one is).
	proxies *limits.TrustedProxies

	// nats, when set, switches to cluster mode: the comma-separated NATS
	// URLs whose JetStream keeps the conversations (db is then unused).
	nats         string
	natsReplicas int
	natsCreds    string
	natsLease    time.Duration
	node         string

	// agentsFile defines the agents and tools (empty: the built-in
	// example); maxToolOutputBytes caps a tool call's output.
	agentsFile         string
	maxToolOutputBytes int
	// maxToolCalls bounds the agents' tool calls running at once (0: no
	// bound).
	maxToolCalls int
	// maxWaitingCalls bounds the agents' tool calls waiting for an
	// approval or a client's output at once, and apart from those, the
	// calls waiting in line for one of the -max-tool-calls runs (0: no
	// bound). Its default is -max-tool-calls': a turn whose call waits
	// holds what one whose call runs holds (its reply so far and its
	// step's tool inputs, up to 960 KiB together, and its finished
	// results), so that the three bound those turns to 768, as
	// -max-model-calls bounds the turns streaming a reply.
	maxWaitingCalls int
}

// Auth modes.
const (
	authNone = "none"
	authJWT  = "jwt"
)

// secretEnv holds the HS256 secret for -auth jwt.
const secretEnv = "GATEWAY_JWT_SECRET"

// Providers of the model.
const (
	providerDemo    = "demo"
	providerBedrock = "bedrock"
)

// parseConfig reads the flags in args; a flag not given takes its
// environment twin from getenv when that is set.
func parseConfig(args []string, getenv func(string) string, out io.Writer) (*config, error) {
	var c config
	fs := c.flagSet(out)
	if err := flagenv.Parse(fs, "GATEWAY", args, getenv); err != nil {
		return nil, err
	}
	c.jwtSecret = getenv(secretEnv)
	return &c, c.check()
}

// flagSet defines every flag of the gateway, each setting a field of c.
// docs/CONFIGURATION.md is generated from it (TestConfigurationDoc).
func (c *config) flagSet(out io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.addr, "addr", "localhost:8080", "address to listen on (host:port)")
	fs.StringVar(&c.db, "db", "gateway.db", "bbolt database file")
	fs.StringVar(&c.provider, "provider", providerDemo, "model provider: demo (no AWS account needed) or bedrock")
	fs.StringVar(&c.model, "model", "", "default model id (with bedrock: a model or inference-profile id; required)")
	fs.StringVar(&c.region, "region", "", "AWS region for bedrock (default: the AWS default chain's)")
	fs.StringVar(&c.bedrockEndpoint, "bedrock-endpoint", "", "Bedrock Runtime endpoint URL (default: AWS_ENDPOINT_URL_BEDROCK_RUNTIME, else the region's)")
	fs.IntVar(&c.maxTokens, "max-tokens", 0, "bedrock: default maximum tokens of a reply (0: the model's default); a conversation's max_tokens wins")
	fs.Float64Var(&c.temperature, "temperature", -1, "bedrock: default temperature from 0 to 1 (negative: the model's default); a conversation's temperature wins")
	fs.IntVar(&c.bedrockAttempts, "bedrock-attempts", 0, "bedrock: calls per turn while Bedrock throttles or is unavailable before the first chunk (0: 4)")
	fs.DurationVar(&c.bedrockHeaderTimeout, "bedrock-header-timeout", 0, "bedrock: how long one call waits for Bedrock to answer before it fails and is retried like a connection error (0: 60s)")
	fs.DurationVar(&c.bedrockIdleTimeout, "bedrock-idle-timeout", 0, "bedrock: how long a reply may go without a stream event before the gateway closes the stream; before the first chunk it is retried, after it the turn ends model_error (0: 5m)")
	fs.StringVar(&c.pprof, "pprof", "", "serve net/http/pprof on this address, e.g. localhost:6060 (empty: off; keep it on localhost)")
	fs.StringVar(&c.otelEndpoint, "otel-endpoint", "", "OpenTelemetry collector's OTLP/HTTP base URL for traces, e.g. http://localhost:4318 (empty: the standard OTEL_EXPORTER_OTLP_ENDPOINT; neither: tracing off)")
	fs.Var((*delayValue)(&c.demoWordDelay), "demo-word-delay", "pause between the demo model's words, such as 30ms (0: 30ms; negative, such as -1: none)")
	fs.Int64Var(&c.maxFrameBytes, "max-frame-bytes", 0, "largest WebSocket frame a client may send (0: 1 MiB)")
	fs.IntVar(&c.maxTextBytes, "max-text-bytes", 0, "largest user message text (0: 64 KiB)")
	fs.IntVar(&c.sizes.Title, "max-title-bytes", 0, "largest conversation title (0: 1 KiB; with -nats at most 8 KiB)")
	fs.IntVar(&c.sizes.System, "max-system-bytes", 0, "largest system prompt (0: 32 KiB)")
	fs.IntVar(&c.sizes.Action, "max-action-bytes", 0, "largest action published over HTTP: name, turn, input and output together (0: 64 KiB)")
	fs.IntVar(&c.sendQueue, "send-queue", 0, "frames queued for one connection before it is closed as a slow consumer (0: 1024)")
	fs.IntVar(&c.sendQueueBytes, "send-queue-bytes", 0, "bytes queued for one connection before it is closed as a slow consumer; a replay fills at most half (0: 4 MiB)")
	fs.IntVar(&c.maxQueuedTurns, "max-queued-turns", 0, "turns that may wait behind a running one in a conversation (0: 16; with -nats at most 64)")
	fs.IntVar(&c.maxModelCalls, "max-model-calls", 512, "model calls in progress at once in this gateway; a turn past it waits, first come first served, until a call ends (0: no limit)")
	fs.IntVar(&c.maxWaitingTurns, "max-waiting-turns", 0, "turns that may wait in this gateway for -max-model-calls to let them call the model; a turn past it ends at once with error busy, its message kept (0: 1024)")
	fs.IntVar(&c.maxHistoryBytes, "max-history-bytes", 0, "most of a conversation a turn reads to send the model (its messages; an agent's tool inputs and results too); a turn of a longer conversation ends at once with error too_large, its message kept (0: 8 MiB)")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&c.auth, "auth", authNone, "authentication: none (local use: every caller is the user \"local\") or jwt (a bearer token on every upgrade and /v1 request; HS256 secret in "+secretEnv+")")
	fs.StringVar(&c.jwtJWKS, "jwt-jwks", "", "JWKS file or URL with the RS256/ES256 public keys of -auth jwt")
	fs.StringVar(&c.jwtIssuer, "jwt-issuer", "", "with -auth jwt: the required iss claim (empty: not checked)")
	fs.StringVar(&c.jwtAudience, "jwt-audience", "", "with -auth jwt: a required aud claim (empty: not checked)")
	fs.DurationVar(&c.jwtLeeway, "jwt-leeway", 30*time.Second, "with -auth jwt: clock skew tolerated on exp, nbf and iat")
	fs.StringVar(&c.allowedOrigins, "allowed-origins", "", "comma-separated origin patterns (host[:port] such as app.example.com or *.example.com, or scheme://host) whose pages may open WebSockets and make state-changing HTTP requests besides the gateway's own origin; on loopback, also the Host names accepted besides loopback ones")
	fs.IntVar(&c.maxSubscriptions, "max-subscriptions", 0, "conversations one connection may follow at once (0: 1000)")
	fs.IntVar(&c.maxConns, "max-conns", 10000, "open WebSocket connections in all (0: no limit)")
	fs.IntVar(&c.maxConnsPerUser, "max-conns-per-user", 100, "open WebSocket connections per user with -auth jwt (0: no limit)")
	fs.Float64Var(&c.sendRate, "send-rate", 5, "sends, creates and actions per second per user with -auth jwt, over WebSocket and HTTP together (0: no limit)")
	fs.IntVar(&c.sendBurst, "send-burst", 20, "sends, creates and actions a user may make in a burst before -send-rate paces them")
	fs.Float64Var(&c.upgradeRate, "upgrade-rate", 20, "WebSocket upgrades per second per client IP (0: no limit)")
	fs.IntVar(&c.upgradeBurst, "upgrade-burst", 50, "upgrades a client IP may make in a burst before -upgrade-rate paces them")
	fs.Float64Var(&c.authFailRate, "auth-fail-rate", 1, "with -auth jwt: failed authentications per second per client IP; beyond -auth-fail-burst its requests get 429 rate_limited without their token being checked (0: no limit)")
	fs.IntVar(&c.authFailBurst, "auth-fail-burst", 20, "failed authentications a client IP may make in a burst before -auth-fail-rate paces them")
	fs.Func("trusted-proxies", "comma-separated CIDRs (or single addresses) of the reverse proxies and load balancers in front of the gateway, such as 10.0.0.0/8; from a TCP peer inside them the client is the rightmost X-Forwarded-For address outside them, both for the per-IP limits and for the request log's client, which it names even with those limits off (empty: X-Forwarded-For is not read, every client is its TCP peer)",
		func(s string) (err error) {
			c.proxies, err = limits.ParseTrustedProxies(s)
			return err
		})
	fs.StringVar(&c.agentsFile, "agents", "", "agents file (YAML or JSON) defining agents and their HTTP, MCP and client tools; SIGHUP reloads it (empty: a built-in example agent, \"demo\")")
	fs.IntVar(&c.maxToolCalls, "max-tool-calls", 256, "agents' HTTP and MCP tool calls running at once in this gateway; a call past it waits in line, first come first served, until a run ends, and fails with status timeout (the gateway busy) if its tool's timeout passes first; one that finds -max-waiting-calls calls in line fails at once with status error, \"the gateway is busy\" (0: no limit)")
	fs.IntVar(&c.maxWaitingCalls, "max-waiting-calls", 256, "calls of agents' tools waiting for a user's approval or a client's tool_output at once in this gateway, and apart from those, calls waiting in line for one of the -max-tool-calls runs; a call past it is not waited for: it ends at once with status error, \"the gateway has too many calls waiting for an answer\" or \"the gateway is busy\" (in line), and its turn goes on (0: no limit)")
	fs.IntVar(&c.maxToolOutputBytes, "max-tool-output-bytes", 0, "largest tool output sent to the model; a longer one is cut, and says so (0: 256 KiB)")
	fs.DurationVar(&c.drainTimeout, "drain-timeout", 30*time.Second, "on SIGTERM or SIGINT, how long running turns may take to finish before they end interrupted")
	fs.StringVar(&c.nats, "nats", "", "cluster mode: comma-separated NATS URLs (nats://host:4222,…) whose JetStream keeps the conversations, shared by every gateway given the same servers; -db is then unused (empty: one gateway on -db)")
	fs.IntVar(&c.natsReplicas, "nats-replicas", defaultNATSReplicas, "cluster mode: servers that keep each stream and bucket (1 to 5; 3 in production, with sync_interval always on a single server)")
	fs.StringVar(&c.natsCreds, "nats-creds", "", "cluster mode: a NATS credentials file (user JWT and NKey seed)")
	fs.DurationVar(&c.natsLease, "nats-lease", defaultNATSLease, "cluster mode: how long a turn's lease outlives its gateway; a turn cut off by a dead gateway ends interrupted within one and a half times this")
	fs.StringVar(&c.node, "node", "", "cluster mode: this gateway's name in turn leases, unique in the cluster (a gateway does not start while another runs under its name) and the same across restarts (empty: the host name)")
	return fs
}

// check rejects values no package could use.
func (c *config) check() error {
	switch c.provider {
	case providerDemo:
	case providerBedrock:
		if c.model == "" {
			return fmt.Errorf("-provider bedrock needs -model (a Bedrock model or inference-profile id)")
		}
	default:
		return fmt.Errorf("-provider %q: want demo or bedrock", c.provider)
	}
	if c.maxTokens > math.MaxInt32 {
		return fmt.Errorf("-max-tokens %d: too large", c.maxTokens)
	}
	if c.temperature > 1 {
		return fmt.Errorf("-temperature %v: want 0 to 1, or negative for the model's default", c.temperature)
	}
	if c.logFormat != "text" && c.logFormat != "json" {
		return fmt.Errorf("-log-format %q: want text or json", c.logFormat)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return fmt.Errorf("-log-level %q: want debug, info, warn or error", c.logLevel)
	}
	if err := c.checkAuth(); err != nil {
		return err
	}
	if err := c.checkCluster(); err != nil {
		return err
	}
	for _, f := range []struct {
		name     string
		negative bool
	}{
		{"max-subscriptions", c.maxSubscriptions < 0}, {"max-conns", c.maxConns < 0},
		{"max-conns-per-user", c.maxConnsPerUser < 0}, {"send-rate", c.sendRate < 0},
		{"upgrade-rate", c.upgradeRate < 0}, {"auth-fail-rate", c.authFailRate < 0}, {"drain-timeout", c.drainTimeout < 0},
		{"max-tokens", c.maxTokens < 0}, {"bedrock-attempts", c.bedrockAttempts < 0},
		{"bedrock-header-timeout", c.bedrockHeaderTimeout < 0}, {"bedrock-idle-timeout", c.bedrockIdleTimeout < 0},
		{"send-queue-bytes", c.sendQueueBytes < 0}, {"max-title-bytes", c.sizes.Title < 0}, {"max-system-bytes", c.sizes.System < 0}, {"max-action-bytes", c.sizes.Action < 0},
		// A negative -max-frame-bytes would lift the frame limit
		// (coder/websocket's SetReadLimit(-1)); the others would
		// quietly mean their default or minimum.
		{"max-frame-bytes", c.maxFrameBytes < 0}, {"max-text-bytes", c.maxTextBytes < 0},
		{"send-queue", c.sendQueue < 0}, {"max-queued-turns", c.maxQueuedTurns < 0}, {"max-model-calls", c.maxModelCalls < 0},
		{"max-waiting-turns", c.maxWaitingTurns < 0}, {"max-history-bytes", c.maxHistoryBytes < 0},
		{"max-tool-output-bytes", c.maxToolOutputBytes < 0}, {"max-tool-calls", c.maxToolCalls < 0},
		{"max-waiting-calls", c.maxWaitingCalls < 0}, {"jwt-leeway", c.jwtLeeway < 0},
	} {
		if f.negative {
			return fmt.Errorf("-%s: must not be negative", f.name)
		}
	}
	for _, o := range c.origins() {
		// A malformed pattern would match nothing, silently.
		if _, err := path.Match(o, ""); err != nil {
			return fmt.Errorf("-allowed-origins %q: %w", o, err)
		}
	}
	if c.sendRate > 0 && c.sendBurst < 1 || c.upgradeRate > 0 && c.upgradeBurst < 1 || c.authFailRate > 0 && c.authFailBurst < 1 {
		return fmt.Errorf("-send-burst, -upgrade-burst and -auth-fail-burst: must be at least 1 when their rate is set")
	}
	return nil
}

// checkAuth rejects an auth mode that cannot verify anything, and JWT
// settings that would be ignored.
func (c *config) checkAuth() error {
	switch c.auth {
	case authJWT:
		if c.jwtSecret == "" && c.jwtJWKS == "" {
			return fmt.Errorf("-auth jwt needs keys: the HS256 secret in %s, or -jwt-jwks", secretEnv)
		}
	case authNone:
		if c.jwtJWKS != "" || c.jwtIssuer != "" || c.jwtAudience != "" {
			return fmt.Errorf("-jwt-jwks, -jwt-issuer and -jwt-audience need -auth jwt")
		}
	default:
		return fmt.Errorf("-auth %q: want none or jwt", c.auth)
	}
	return nil
}

// delayValue is a duration flag that also takes a bare number of 0 or
// less ("-1"), which needs no unit: "negative means none" should be
// sayable as -1.
type delayValue time.Duration

// String implements flag.Value.
func (d *delayValue) String() string { return time.Duration(*d).String() }

// Set implements flag.Value.
func (d *delayValue) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		n, nerr := strconv.ParseInt(s, 10, 64)
		if nerr != nil || n > 0 {
			return fmt.Errorf("want a duration such as 30ms, 0, or a negative number for none")
		}
		v = time.Duration(n)
	}
	*d = delayValue(v)
	return nil
}

// Defaults of the cluster flags that have one; another value without
// -nats would be ignored.
const (
	defaultNATSReplicas = 1
	defaultNATSLease    = 15 * time.Second
)

// checkCluster rejects cluster settings that cannot work, or would be
// ignored without -nats.
func (c *config) checkCluster() error {
	if c.nats == "" {
		if c.natsCreds != "" || c.node != "" || c.natsReplicas != defaultNATSReplicas || c.natsLease != defaultNATSLease {
			return fmt.Errorf("-nats-creds, -node, -nats-replicas and -nats-lease need -nats")
		}
		return nil
	}
	if c.natsReplicas < 1 || c.natsReplicas > 5 {
		return fmt.Errorf("-nats-replicas %d: want 1 to 5", c.natsReplicas)
	}
	if c.natsLease < time.Second {
		return fmt.Errorf("-nats-lease %s: want at least 1s", c.natsLease)
	}
	// Each record carries the title and the queued turns: past these, a
	// turn_end with the longest reply might not fit one NATS message.
	if c.sizes.Title > limits.MaxClusterTitleBytes {
		return fmt.Errorf("-max-title-bytes %d: with -nats at most %d (every record carries the title, and a turn_end must fit one NATS message)", c.sizes.Title, limits.MaxClusterTitleBytes)
	}
	if c.maxQueuedTurns > limits.MaxClusterQueuedTurns {
		return fmt.Errorf("-max-queued-turns %d: with -nats at most %d (every record carries the queued turns, and a turn_end must fit one NATS message)", c.maxQueuedTurns, limits.MaxClusterQueuedTurns)
	}
	return nil
}

// storage describes where the conversations are kept, for the log.
func (c *config) storage() string {
	if c.nats != "" {
		return "nats " + c.nats
	}
	return c.db
}

// origins returns the patterns of -allowed-origins.
func (c *config) origins() []string {
	var out []string
	for o := range strings.SplitSeq(c.allowedOrigins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, o)
		}
	}
	return out
}

// logger returns the logger c asks for, writing to out.
func (c *config) logger(out io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.logLevel)) // checked by check
	opts := &slog.HandlerOptions{Level: level}
	if c.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(out, opts))
	}
	return slog.New(slog.NewTextHandler(out, opts))
}
