package main

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"

	"github.com/chatgateway/gateway/client"
	"github.com/chatgateway/gateway/internal/conn/conntest"
	"github.com/chatgateway/gateway/protocol"
)

// TestGoClientAgent drives an agent's turn with the Go client against the
// real program: Agents lists the agent, a refund waits for Approve, a
// confirm for ToolOutput, and the turn ends with both results.
func TestGoClientAgent(t *testing.T) {
	t.Parallel()
	r := startAgentRig(t)
	ctx := conntest.Deadline(t)
	c, err := client.Dial(ctx, r.g.URL, client.Options{HTTPClient: conntest.RecordedClient(t, nil)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	agents, err := c.Agents(ctx)
	if err != nil || !slices.ContainsFunc(agents, func(a protocol.AgentInfo) bool { return a.Name == "support" }) {
		t.Fatalf("Agents: %+v, %v; want support listed", agents, err)
	}
	conv, err := c.Create(ctx, protocol.Create{Agent: "support"})
	if err != nil || conv.Agent != "support" {
		t.Fatalf("Create: %+v, %v", conv, err)
	}
	sub, err := c.Subscribe(ctx, conv.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Send(ctx, conv.ID, "/tool refund {\"id\":\"1\"}\n/tool confirm {\"question\":\"ok?\"}"); err != nil {
		t.Fatal(err)
	}
	results := map[string]string{}
	for {
		ev, err := sub.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case ev.Type == protocol.EventToolCall && ev.Status == protocol.CallAwaitingApproval:
			if err := c.Approve(ctx, conv.ID, ev.Call, true, "fine"); err != nil {
				t.Fatalf("Approve: %v", err)
			}
			var perr *protocol.Error
			if err := c.Approve(ctx, conv.ID, ev.Call, false, ""); !errors.As(err, &perr) || perr.Code != protocol.CodeBadRequest {
				t.Fatalf("a second Approve: %v, want bad_request (the first answer wins)", err)
			}
		case ev.Type == protocol.EventToolCall && ev.Status == protocol.CallAwaitingClient:
			if err := c.ToolOutput(ctx, conv.ID, ev.Call, json.RawMessage(`{"yes":true}`), ""); err != nil {
				t.Fatalf("ToolOutput: %v", err)
			}
		case ev.Type == protocol.EventToolResult:
			results[ev.Name] = ev.Status
		}
		if ev.Type == protocol.EventTurnEnd {
			if ev.StopReason != protocol.StopEndTurn {
				t.Fatalf("turn ended %q: %+v", ev.StopReason, ev.Error)
			}
			break
		}
	}
	if results["refund"] != protocol.ResultOK || results["confirm"] != protocol.ResultOK {
		t.Fatalf("tool results %v, want refund and confirm ok", results)
	}
}
