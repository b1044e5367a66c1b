package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"
)

// config is the gateway's configuration, from flags and their environment
// twins. A zero value means the documented default of the package that
// uses it.
type config struct {
	addr           string
	db             string
	provider       string
	model          string
	region         string
	demoWordDelay  time.Duration
	maxFrameBytes  int64
	maxTextBytes   int
	sendQueue      int
	maxQueuedTurns int
	logFormat      string
	logLevel       string
}

// Providers of the model.
const (
	providerDemo    = "demo"
	providerBedrock = "bedrock"
)

// envName is the environment twin of flag name: -send-queue is
// GATEWAY_SEND_QUEUE.
func envName(name string) string {
	return "GATEWAY_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// parseConfig reads the flags in args; a flag not given takes its
// environment twin from getenv when that is set.
func parseConfig(args []string, getenv func(string) string, out io.Writer) (*config, error) {
	var c config
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&c.addr, "addr", "localhost:8080", "address to listen on (host:port)")
	fs.StringVar(&c.db, "db", "gateway.db", "bbolt database file")
	fs.StringVar(&c.provider, "provider", providerDemo, "model provider: demo (no AWS account needed) or bedrock")
	fs.StringVar(&c.model, "model", "", "default model id (with bedrock: a model or inference-profile id; required)")
	fs.StringVar(&c.region, "region", "", "AWS region for bedrock (default: the AWS default chain's)")
	fs.DurationVar(&c.demoWordDelay, "demo-word-delay", 0, "pause between the demo model's words (0: 30ms; negative: none)")
	fs.Int64Var(&c.maxFrameBytes, "max-frame-bytes", 0, "largest WebSocket frame a client may send (0: 1 MiB)")
	fs.IntVar(&c.maxTextBytes, "max-text-bytes", 0, "largest user message text (0: 64 KiB)")
	fs.IntVar(&c.sendQueue, "send-queue", 0, "frames queued for one connection before it is closed as a slow consumer (0: 1024)")
	fs.IntVar(&c.maxQueuedTurns, "max-queued-turns", 0, "turns that may wait behind a running one in a conversation (0: 16)")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.VisitAll(func(f *flag.Flag) { f.Usage += fmt.Sprintf(" (env %s)", envName(f.Name)) })
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		v := getenv(envName(f.Name))
		if err != nil || given[f.Name] || v == "" {
			return
		}
		if serr := fs.Set(f.Name, v); serr != nil {
			err = fmt.Errorf("%s=%q: %w", envName(f.Name), v, serr)
		}
	})
	if err != nil {
		return nil, err
	}
	return &c, c.check()
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
	if c.logFormat != "text" && c.logFormat != "json" {
		return fmt.Errorf("-log-format %q: want text or json", c.logFormat)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return fmt.Errorf("-log-level %q: want debug, info, warn or error", c.logLevel)
	}
	return nil
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
