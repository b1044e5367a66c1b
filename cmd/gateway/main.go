// Command gateway serves chat conversations over WebSockets and HTTP, with
// a durable bbolt event log per conversation, answering with Amazon Bedrock
// or, without an AWS account, with a built-in demo model.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/chatgateway/gateway/internal/auth"
	"github.com/chatgateway/gateway/internal/bedrock"
	"github.com/chatgateway/gateway/internal/conn"
	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/demo"
	"github.com/chatgateway/gateway/internal/httpapi"
	"github.com/chatgateway/gateway/internal/limits"
	"github.com/chatgateway/gateway/internal/metrics"
	"github.com/chatgateway/gateway/internal/tracing"
	"github.com/chatgateway/gateway/web"
)

// shutdownTimeout bounds the graceful part of a shutdown.
const shutdownTimeout = 10 * time.Second

func main() {
	signalled, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first signal starts the drain. It also restores the default
	// action before run sees it, so that a second signal kills the
	// process at once (the log is durable: nothing acknowledged is lost).
	ctx, cancel := context.WithCancel(context.Background())
	context.AfterFunc(signalled, func() {
		stop()
		cancel()
	})
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout)
	cancel()
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

// run starts the gateway with the flags in args (each also set by its
// GATEWAY_… environment twin, read with getenv), logs to stdout, and
// serves until ctx is done. Then it drains: /readyz answers 503 and new
// upgrades are refused at once, running turns get -drain-timeout to
// finish, the rest end interrupted, the WebSockets close with 1001, the
// HTTP server stops and the database is closed.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := parseConfig(args, getenv, stdout)
	if err != nil {
		return err
	}
	log := cfg.logger(stdout)
	tp, stopTracing, err := tracing.Setup(ctx, tracing.Config{Endpoint: cfg.otelEndpoint, Getenv: getenv,
		Logger: log, ServiceName: "gateway", ServiceVersion: version()})
	if err != nil {
		return err
	}
	defer flushTraces(stopTracing, log)
	model, modelID, err := newModel(ctx, cfg, tp, log)
	if err != nil {
		return err
	}
	user, err := newAuth(ctx, cfg, log)
	if err != nil {
		return err
	}
	m := metrics.New()
	store, storageReady, err := openStore(ctx, cfg, m, tp, log)
	if err != nil {
		return err
	}
	reg, err := newAgents(cfg, getenv, log, m, modelID)
	if err != nil {
		_ = store.Close()
		return err
	}
	defer reg.Close()
	reloadOnHangup(ctx, cfg.agentsFile, getenv, reg, log)
	svc, err := convo.New(store, model, convo.Config{
		DefaultModel:       modelID,
		MaxTextBytes:       cfg.maxTextBytes,
		MaxQueuedTurns:     cfg.maxQueuedTurns,
		MaxModelCalls:      cfg.maxModelCalls,
		MaxToolCalls:       cfg.maxToolCalls,
		MaxWaitingCalls:    cfg.maxWaitingCalls,
		MaxWaitingTurns:    cfg.maxWaitingTurns,
		MaxHistoryBytes:    cfg.maxHistoryBytes,
		Logger:             log,
		Metrics:            m,
		TracerProvider:     tp,
		Agents:             agents{reg: reg},
		MaxToolOutputBytes: cfg.maxToolOutputBytes,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		_ = svc.Close(context.Background())
		return fmt.Errorf("listen on %s: %w", cfg.addr, err)
	}

	if cfg.pprof != "" {
		stop, err := servePprof(cfg.pprof, log)
		if err != nil {
			_ = ln.Close()
			_ = svc.Close(context.Background())
			return err
		}
		defer stop()
	}
	lim := newLimits(cfg, m)
	user = auth.Throttle(user, lim.authFail, cfg.proxies)
	ws := conn.NewHandler(svc, conn.Options{
		Logger:           log,
		User:             user,
		MaxFrameBytes:    cfg.maxFrameBytes,
		SendQueue:        cfg.sendQueue,
		SendQueueBytes:   cfg.sendQueueBytes,
		Metrics:          m,
		OriginPatterns:   cfg.origins(),
		MaxSubscriptions: cfg.maxSubscriptions,
		MaxConns:         cfg.maxConns,
		MaxConnsPerUser:  lim.connsPerUser,
		SendLimiter:      lim.send,
		UpgradeLimiter:   lim.upgrade,
		Proxies:          cfg.proxies,
		Sizes:            cfg.sizes,
		TracerProvider:   tp,
	})
	var ready atomic.Bool
	ready.Store(true)
	srv := newServer(httpapi.New(svc, httpapi.Options{
		Logger:         log,
		Info:           httpapi.Info{Provider: cfg.provider, DefaultModel: modelID, Version: version(), Auth: cfg.auth},
		WebSocket:      ws,
		Page:           web.Handler(),
		Metrics:        m,
		Ready:          func() bool { return ready.Load() && storageReady() },
		User:           user,
		SendLimiter:    lim.send,
		Sizes:          cfg.sizes,
		AllowedOrigins: cfg.origins(),
		Loopback:       isLoopback(ln.Addr()),
		Proxies:        cfg.proxies,
	}), log)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("gateway listening", "url", openURL(cfg.addr, ln.Addr()), "provider", cfg.provider,
		"model", modelID, "storage", cfg.storage(), "auth", cfg.auth)

	select {
	case <-ctx.Done():
		log.Info("shutting down: draining", "drain_timeout", cfg.drainTimeout)
		ready.Store(false)
		ws.StopAccepting()
		drain(svc, cfg.drainTimeout, log)
	case err = <-served:
		err = fmt.Errorf("serve: %w", err)
		ready.Store(false)
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	// Stop accepting; the WebSockets are hijacked, so this does not wait
	// for them.
	if serr := srv.Shutdown(sctx); serr != nil {
		log.Warn("http shutdown", "err", serr)
	}
	// End the turns still running as interrupted while the connections
	// are open to see it, then close them with 1001.
	if cerr := svc.Close(sctx); cerr != nil {
		err = errors.Join(err, cerr)
	}
	if werr := ws.Shutdown(sctx); werr != nil {
		log.Warn("websocket shutdown", "err", werr)
	}
	log.Info("gateway stopped")
	return err
}

// flushTraces sends the spans still queued and stops tracing.
func flushTraces(stop func(context.Context) error, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := stop(ctx); err != nil {
		log.Warn("tracing: flushing the last spans", "err", err)
	}
}

// drain lets the running turns finish, for at most timeout; the HTTP
// server keeps serving meanwhile, so that load balancers see /readyz fail
// and clients watch their turns end.
func drain(svc *convo.Service, timeout time.Duration, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := svc.Drain(ctx); err != nil {
		log.Warn("drain timed out: the turns still running end interrupted", "err", err)
		return
	}
	log.Info("drained: no turn running")
}

// newAuth returns the user hook of cfg.auth.
func newAuth(ctx context.Context, cfg *config, log *slog.Logger) (func(*http.Request) (auth.Caller, error), error) {
	if cfg.auth == authNone {
		log.Info("auth none: every caller is the local user; keep the gateway on loopback")
		return auth.None(auth.LocalUser), nil
	}
	j, err := auth.NewJWT(ctx, auth.JWTOptions{
		Secret:   []byte(cfg.jwtSecret),
		JWKS:     cfg.jwtJWKS,
		Issuer:   cfg.jwtIssuer,
		Audience: cfg.jwtAudience,
		Leeway:   cfg.jwtLeeway,
		Logger:   log,
	})
	if err != nil {
		return nil, fmt.Errorf("-auth jwt: %w", err)
	}
	return j.Caller, nil
}

// newServer returns the HTTP server of h, for the public listener and
// for -pprof's: a client has ReadHeaderTimeout to send a request's
// headers and an idle keep-alive connection is closed after IdleTimeout,
// so that neither holds a goroutine and buffers for as long as it likes.
// No ReadTimeout or WriteTimeout: a body's and an answer's deadlines are
// httpapi's, and a profile takes as long as it asks for.
func newServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// limitSet is the rate limits and per-user bound that cfg asks for.
type limitSet struct {
	send, upgrade, authFail *limits.Limiter
	connsPerUser            int
}

// newLimits builds the limiters of cfg, counting refusals in m. With
// -auth none every caller is the same user, so the per-user limits would
// act as global ones: they are off, and -max-conns and the per-IP upgrade
// limit still apply; no authentication fails, so there is no failure
// limit either.
func newLimits(cfg *config, m *metrics.Metrics) limitSet {
	l := limitSet{
		upgrade: limits.NewLimiter(limits.Rate{PerSecond: cfg.upgradeRate, Burst: cfg.upgradeBurst},
			limits.LimiterOptions{Message: "too many connection attempts, slow down", Refused: m.RateLimited.WithLabelValues("upgrade")}),
	}
	if cfg.auth == authNone {
		return l
	}
	l.send = limits.NewLimiter(limits.Rate{PerSecond: cfg.sendRate, Burst: cfg.sendBurst},
		limits.LimiterOptions{Message: "too many messages, slow down", Refused: m.RateLimited.WithLabelValues("send")})
	l.authFail = limits.NewLimiter(limits.Rate{PerSecond: cfg.authFailRate, Burst: cfg.authFailBurst},
		limits.LimiterOptions{Message: "too many failed authentications from this address, retry later", Refused: m.RateLimited.WithLabelValues("auth")})
	l.connsPerUser = cfg.maxConnsPerUser
	return l
}

// newModel builds the model cfg.provider names, and returns it with the
// default model id.
func newModel(ctx context.Context, cfg *config, tp trace.TracerProvider, log *slog.Logger) (convo.Model, string, error) {
	if cfg.provider == providerBedrock {
		opts := bedrock.Options{Region: cfg.region, Endpoint: cfg.bedrockEndpoint,
			MaxTokens: int32(cfg.maxTokens), MaxAttempts: cfg.bedrockAttempts,
			HeaderTimeout: cfg.bedrockHeaderTimeout, IdleTimeout: cfg.bedrockIdleTimeout, Logger: log, TracerProvider: tp}
		if cfg.temperature >= 0 {
			t := float32(cfg.temperature)
			opts.Temperature = &t
		}
		client, err := bedrock.New(ctx, opts)
		if err != nil {
			return nil, "", err
		}
		log.Info("using Amazon Bedrock", "region", client.Region(), "model", cfg.model)
		return client, cfg.model, nil
	}
	id := cfg.model
	if id == "" {
		id = providerDemo
	}
	log.Info("using the demo model (no AWS account in use)", "model", id)
	return demo.New(demo.Options{WordDelay: cfg.demoWordDelay}), id, nil
}

// openURL is the URL to open in a browser for a gateway listening on addr
// (as configured) at bound (as bound, with the real port).
func openURL(addr string, bound net.Addr) string {
	host, _, _ := net.SplitHostPort(addr)
	_, port, _ := net.SplitHostPort(bound.String())
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}

// isLoopback reports whether addr, a bound listener's address, accepts
// only connections from this machine.
func isLoopback(addr net.Addr) bool {
	tcp, ok := addr.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// version is the module version the binary was built from.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "dev"
}
