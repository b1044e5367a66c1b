// Command notes is an example MCP server for the gateway's agents (see
// examples/agents/agents.yaml), speaking MCP on stdio: the gateway starts
// it as a child process. Its tools keep notes in memory, for as long as
// the process lives: add_note and list_notes.
//
//	mcp_servers:
//	  - name: notes
//	    command: [go, run, ./examples/agents/notes]
package main

import (
	"context"
	"log"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

func main() {
	if err := newServer().Run(context.Background(), &mcp.StdioTransport{}); err != nil {
		log.Fatalf("notes: %v", err)
	}
}

type addIn struct {
	Text string `json:"text" jsonschema:"the note"`
}

type addOut struct {
	Count int `json:"count"`
}

type listOut struct {
	Notes []string `json:"notes"`
}

// newServer is the notes MCP server, with an empty notebook.
func newServer() *mcp.Server {
	var (
		mu    sync.Mutex
		notes = []string{}
	)
	s := mcp.NewServer(&mcp.Implementation{Name: "notes", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "add_note", Description: "Keep a note."},
		func(_ context.Context, _ *mcp.CallToolRequest, in addIn) (*mcp.CallToolResult, addOut, error) {
			mu.Lock()
			defer mu.Unlock()
			notes = append(notes, in.Text)
			return nil, addOut{Count: len(notes)}, nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "list_notes", Description: "The notes kept so far, oldest first."},
		func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, listOut, error) {
			mu.Lock()
			defer mu.Unlock()
			return nil, listOut{Notes: append([]string{}, notes...)}, nil
		})
	return s
}
