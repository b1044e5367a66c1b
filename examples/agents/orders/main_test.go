package main

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"testing"

	"github.com/chatgateway/gateway/internal/agent"
)

// TestLookupThroughTheAgentsFile loads the example agents file and calls
// its lookup_order tool, served here by this command's handler.
func TestLookupThroughTheAgentsFile(t *testing.T) {
	t.Parallel()
	cfg, err := agent.Load("../agents.yaml", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(handler())
	t.Cleanup(srv.Close)
	if cfg.Tools[0].Name != "lookup_order" {
		t.Fatalf("the first tool is %q", cfg.Tools[0].Name)
	}
	cfg.Tools[0].HTTP.URL = srv.URL + "/lookup"
	cfg.MCPServers[0].Command = []string{"false"} // notes is tested in its own package
	r, err := agent.New(cfg, agent.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	a, ok := r.Agent("support")
	if !ok {
		t.Fatal("no agent support")
	}
	call := agent.CallInfo{User: "u42", Conversation: "c1", Call: "t1"}
	res, err := a.Call(context.Background(), "lookup_order", call, json.RawMessage(`{"id": "1002"}`), nil)
	var o order
	if err != nil || json.Unmarshal(res.Output, &o) != nil || o.Status != "shipped, arriving tomorrow" || o.Customer != "u42" {
		t.Fatalf("lookup 1002: %s, %q, %v", res.Output, res.Error, err)
	}
	res, err = a.Call(context.Background(), "lookup_order", call, json.RawMessage(`{"id": "9"}`), nil)
	if err != nil || res.Error != `HTTP 404 Not Found: no order with id "9"` {
		t.Fatalf("lookup 9: %s, %q, %v", res.Output, res.Error, err)
	}
}
