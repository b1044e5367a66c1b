package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/chatgateway/gateway/internal/agent"
	"github.com/chatgateway/gateway/internal/auth"
	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/metrics"
	"github.com/chatgateway/gateway/protocol"
)

// agents adapts internal/agent's registry to what convo needs of it. The
// caller of a request is in its context (auth.CallerFrom): the transports
// put it there, with the token claims that the agents' allow lists match.
type agents struct {
	reg *agent.Registry
}

var _ convo.Agents = agents{}

// Agent implements convo.Agents.
func (a agents) Agent(name, user, conversation string) (*convo.Agent, bool) {
	ag, ok := a.reg.Agent(name)
	if !ok {
		return nil, false
	}
	out := &convo.Agent{Name: ag.Name, Model: ag.Model, System: ag.SystemPrompt(user, conversation),
		MaxSteps: ag.MaxSteps, MaxTokens: ag.MaxTokens, Temperature: ag.Temperature,
		Tools: make([]convo.AgentTool, len(ag.Tools))}
	for i, t := range ag.Tools {
		schema, err := json.Marshal(t.InputSchema)
		if err != nil {
			schema = json.RawMessage(`{"type":"object"}`)
		}
		out.Tools[i] = convo.AgentTool{ToolSpec: convo.ToolSpec{Name: t.Name, Description: t.Description, InputSchema: schema},
			Kind: t.Kind, Approval: t.Approval, Timeout: t.Timeout}
	}
	out.Run = func(ctx context.Context, c convo.ToolCall, progress func(convo.ToolProgress)) convo.ToolOutcome {
		res, err := ag.Call(ctx, c.Name, agent.CallInfo{User: c.User, Conversation: c.Conversation, Call: c.ID}, c.Input,
			func(p agent.Progress) {
				progress(convo.ToolProgress{Progress: p.Progress, Total: p.Total, Message: p.Message})
			})
		out := convo.ToolOutcome{Status: agent.Status(res, err), Output: res.Output, Error: res.Error}
		switch {
		case errors.Is(err, agent.ErrTimeout):
			out.Error = "the tool took longer than its timeout"
		case err != nil:
			out.Error = convo.CancelledCallError
		}
		return out
	}
	return out, true
}

// Allowed implements convo.Agents.
func (a agents) Allowed(ctx context.Context, name string) bool {
	ag, ok := a.reg.Agent(name)
	return ok && ag.Allowed(auth.CallerFrom(ctx).Claims)
}

// List implements convo.Agents.
func (a agents) List(ctx context.Context) []protocol.AgentInfo {
	list := a.reg.List(auth.CallerFrom(ctx).Claims)
	out := make([]protocol.AgentInfo, len(list))
	for i, ai := range list {
		out[i] = protocol.AgentInfo{Name: ai.Name, Description: ai.Description, Model: ai.Model,
			Tools: make([]protocol.ToolInfo, len(ai.Tools))}
		for j, t := range ai.Tools {
			out[i].Tools[j] = protocol.ToolInfo{Name: t.Name, Description: t.Description, Kind: t.Kind}
		}
	}
	return out
}

// newAgents loads the agents file of cfg (the built-in example agent
// without one) into a registry. An invalid file is an error that names
// the entry and field at fault.
func newAgents(cfg *config, getenv func(string) string, log *slog.Logger, m *metrics.Metrics, defaultModel string) (*agent.Registry, error) {
	conf := agent.Builtin()
	if cfg.agentsFile != "" {
		var err error
		if conf, err = agent.Load(cfg.agentsFile, getenv); err != nil {
			return nil, err
		}
	}
	reg, err := agent.New(conf, agent.Options{Logger: log, Metrics: m, MaxOutputBytes: cfg.maxToolOutputBytes,
		DefaultModel: defaultModel})
	if err != nil {
		return nil, fmt.Errorf("agents: %w", err)
	}
	if cfg.agentsFile == "" {
		log.Info("agents: the built-in example agent (no -agents file)")
	} else {
		log.Info("agents: loaded", "file", cfg.agentsFile, "agents", len(conf.Agents))
	}
	if cfg.auth == authNone {
		for _, a := range conf.Agents {
			if a.Allow != nil {
				log.Warn("agents: with -auth none there are no token claims, so an agent with allow is usable by no one", "agent", a.Name)
			}
		}
	}
	return reg, nil
}

// reloadOnHangup reloads the agents file into reg on every SIGHUP until
// ctx ends; a file that fails to load or validate is logged, and the
// agents in use stay. Turns that run keep the definition they started
// with.
func reloadOnHangup(ctx context.Context, path string, getenv func(string) string, reg *agent.Registry, log *slog.Logger) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
			}
			if path == "" {
				log.Info("SIGHUP: no -agents file to reload")
				continue
			}
			conf, err := agent.Load(path, getenv)
			if err == nil {
				err = reg.Reload(conf)
			}
			if errors.Is(err, agent.ErrClosed) {
				return // the gateway is shutting down
			}
			if err != nil {
				log.Error("SIGHUP: the agents file was not reloaded; the agents in use stay", "err", err)
				continue
			}
			log.Info("SIGHUP: agents reloaded", "file", path, "agents", len(conf.Agents))
		}
	}()
}
