package main

import (
	"context"
	"encoding/json"
	"os"
	"slices"
	"testing"

	"github.com/chatgateway/gateway/internal/agent"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// serveFlag makes the test binary the notes server on stdio, so that the
// test can start it as the agents file's command would.
const serveFlag = "-notes-serve-stdio"

func TestMain(m *testing.M) {
	if slices.Contains(os.Args[1:], serveFlag) {
		if err := newServer().Run(context.Background(), &mcp.StdioTransport{}); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestNotesThroughTheAgentsFile loads the example agents file, starts
// this server as its notes MCP server over stdio, and keeps a note.
func TestNotesThroughTheAgentsFile(t *testing.T) {
	t.Parallel()
	cfg, err := agent.Load("../agents.yaml", func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MCPServers[0].Name != "notes" {
		t.Fatalf("the first MCP server is %q", cfg.MCPServers[0].Name)
	}
	cfg.MCPServers[0].Command = []string{os.Args[0], serveFlag}
	r, err := agent.New(cfg, agent.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	a, _ := r.Agent("support")
	add, ok := a.Tool("notes__add_note")
	if !ok || !add.Approval {
		t.Fatalf("notes__add_note: %+v, %v (it needs approval in the file)", add, ok)
	}
	ctx := context.Background()
	res, err := a.Call(ctx, "notes__add_note", agent.CallInfo{}, json.RawMessage(`{"text": "call back on Monday"}`), nil)
	if err != nil || string(res.Output) != `{"count":1}` {
		t.Fatalf("add_note: %s, %q, %v", res.Output, res.Error, err)
	}
	res, err = a.Call(ctx, "notes__list_notes", agent.CallInfo{}, nil, nil)
	if err != nil || string(res.Output) != `{"notes":["call back on Monday"]}` {
		t.Fatalf("list_notes: %s, %q, %v", res.Output, res.Error, err)
	}
}
