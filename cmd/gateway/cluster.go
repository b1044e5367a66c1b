package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/trace"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/convo/boltlog"
	"github.com/chatgateway/gateway/internal/jetlog"
	"github.com/chatgateway/gateway/internal/metrics"
)

// openStore opens the conversations' storage that cfg asks for (its
// metrics on m, traced with tp) and returns it with a function that
// reports whether it can be reached now (always, for the bbolt file). It
// is opened before anything that starts processes or connections of its
// own (the agents' MCP servers): a bbolt file locked by another gateway
// then fails the start at once.
func openStore(ctx context.Context, cfg *config, m *metrics.Metrics, tp trace.TracerProvider, log *slog.Logger) (convo.Log, func() bool, error) {
	if cfg.nats == "" {
		l, err := boltlog.Open(cfg.db, boltlog.Options{Metrics: m, TracerProvider: tp})
		return l, func() bool { return true }, err
	}
	var opts []nats.Option
	if cfg.natsCreds != "" {
		opts = append(opts, nats.UserCredentials(cfg.natsCreds))
	}
	st, err := jetlog.OpenStore(ctx, cfg.nats, jetlog.StoreOptions{
		Options: jetlog.Options{Replicas: cfg.natsReplicas, LeaseTTL: cfg.natsLease},
		Node:    cfg.node,
		Logger:  log,
		Metrics: m,
	}, opts...)
	if errors.Is(err, jetlog.ErrNodeTaken) {
		return nil, nil, fmt.Errorf("%w: give each its own -node", err)
	}
	if err != nil {
		return nil, nil, err
	}
	log.Info("cluster mode: conversations in NATS JetStream", "nats", cfg.nats, "replicas", cfg.natsReplicas, "node", st.Node())
	return st, st.Ready, nil
}
