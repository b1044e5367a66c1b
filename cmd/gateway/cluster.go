package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/nats-io/nats.go"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/convo/boltlog"
	"github.com/chatgateway/gateway/internal/jetlog"
)

// openService opens the conversations' storage that cfg asks for and
// returns a Service on it, with a function that reports whether the
// storage can be reached now (always, for the bbolt file).
func openService(ctx context.Context, cfg *config, model convo.Model, ccfg convo.Config, log *slog.Logger) (*convo.Service, func() bool, error) {
	if cfg.nats == "" {
		svc, err := boltlog.OpenService(cfg.db, boltlog.Options{}, model, ccfg)
		return svc, func() bool { return true }, err
	}
	var opts []nats.Option
	if cfg.natsCreds != "" {
		opts = append(opts, nats.UserCredentials(cfg.natsCreds))
	}
	st, err := jetlog.OpenStore(ctx, cfg.nats, jetlog.StoreOptions{
		Options: jetlog.Options{Replicas: cfg.natsReplicas, LeaseTTL: cfg.natsLease},
		Node:    cfg.node,
		Logger:  log,
		Metrics: ccfg.Metrics,
	}, opts...)
	if errors.Is(err, jetlog.ErrNodeTaken) {
		return nil, nil, fmt.Errorf("%w: give each its own -node", err)
	}
	if err != nil {
		return nil, nil, err
	}
	log.Info("cluster mode: conversations in NATS JetStream", "nats", cfg.nats, "replicas", cfg.natsReplicas, "node", st.Node())
	svc, err := convo.New(st, model, ccfg)
	if err != nil {
		return nil, nil, err
	}
	return svc, st.Ready, nil
}
