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

	"github.com/chatgateway/gateway/internal/bedrock"
	"github.com/chatgateway/gateway/internal/conn"
	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/demo"
	"github.com/chatgateway/gateway/internal/httpapi"
	"github.com/chatgateway/gateway/internal/metrics"
	"github.com/chatgateway/gateway/web"
)

// shutdownTimeout bounds the graceful part of a shutdown.
const shutdownTimeout = 10 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout)
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
// serves until ctx is done; then it shuts down: it stops accepting,
// stores running turns as interrupted, closes the WebSockets with 1001
// and closes the database.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := parseConfig(args, getenv, stdout)
	if err != nil {
		return err
	}
	log := cfg.logger(stdout)
	model, modelID, err := newModel(ctx, cfg, log)
	if err != nil {
		return err
	}
	m := metrics.New()
	svc, err := convo.Open(cfg.db, model, convo.Config{
		DefaultModel:   modelID,
		MaxTextBytes:   cfg.maxTextBytes,
		MaxQueuedTurns: cfg.maxQueuedTurns,
		Logger:         log,
		Metrics:        m,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		_ = svc.Close(context.Background())
		return fmt.Errorf("listen on %s: %w", cfg.addr, err)
	}

	ws := conn.NewHandler(svc, conn.Options{Logger: log, MaxFrameBytes: cfg.maxFrameBytes, SendQueue: cfg.sendQueue, Metrics: m})
	var ready atomic.Bool
	ready.Store(true)
	srv := &http.Server{
		Handler: httpapi.New(svc, httpapi.Options{
			Logger:    log,
			Info:      httpapi.Info{Provider: cfg.provider, DefaultModel: modelID, Version: version(), Auth: "none"},
			WebSocket: ws,
			Page:      web.Handler(),
			Metrics:   m,
			Ready:     ready.Load,
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("gateway listening", "url", openURL(cfg.addr, ln.Addr()), "provider", cfg.provider,
		"model", modelID, "db", cfg.db)

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err = <-served:
		err = fmt.Errorf("serve: %w", err)
	}
	ready.Store(false)
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	// Stop accepting; the WebSockets are hijacked, so this does not wait
	// for them.
	if serr := srv.Shutdown(sctx); serr != nil {
		log.Warn("http shutdown", "err", serr)
	}
	// End the running turns as interrupted while the connections are
	// still open to see it, then close them with 1001.
	if cerr := svc.Close(sctx); cerr != nil {
		err = errors.Join(err, cerr)
	}
	if werr := ws.Shutdown(sctx); werr != nil {
		log.Warn("websocket shutdown", "err", werr)
	}
	log.Info("gateway stopped")
	return err
}

// newModel builds the model cfg.provider names, and returns it with the
// default model id.
func newModel(ctx context.Context, cfg *config, log *slog.Logger) (convo.Model, string, error) {
	if cfg.provider == providerBedrock {
		client, err := bedrock.New(ctx, bedrock.Options{Region: cfg.region, Logger: log})
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

// version is the module version the binary was built from.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "dev"
}
