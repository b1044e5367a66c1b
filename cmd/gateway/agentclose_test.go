package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/coder/websocket"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/chatgateway/gateway/internal/conn/conntest"
	"github.com/chatgateway/gateway/protocol"
)

// mcpStdioFlag makes the test binary a stdio MCP server (see TestMain)
// with one tool, pid, which answers {"pid": its process id}.
const mcpStdioFlag = "-gateway-test-mcp-stdio"

// mcpMarkPrefix, as an argument after mcpStdioFlag, names a file the
// server creates as it starts: a test sees whether it was started.
const mcpMarkPrefix = "mark="

// serveStdioMCP serves the MCP server of mcpStdioFlag on stdin and stdout
// until stdin closes, then exits.
func serveStdioMCP() {
	for _, arg := range os.Args[1:] {
		if mark, ok := strings.CutPrefix(arg, mcpMarkPrefix); ok {
			if err := os.WriteFile(mark, nil, 0o600); err != nil {
				os.Exit(1)
			}
		}
	}
	s := mcp.NewServer(&mcp.Implementation{Name: "pid", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "pid", Description: "The server's process id."},
		func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, struct {
			PID int `json:"pid"`
		}, error) {
			return nil, struct {
				PID int `json:"pid"`
			}{os.Getpid()}, nil
		})
	if err := s.Run(context.Background(), &mcp.StdioTransport{}); err != nil {
		os.Exit(1)
	}
	os.Exit(0)
}

// writeStdioAgents writes an agents file whose agent a has the tools of
// MCP server proc: the test binary as a stdio server (mcpStdioFlag), given
// arg too.
func writeStdioAgents(t *testing.T, file, arg string) {
	t.Helper()
	yaml := `mcp_servers:
  - {name: proc, command: ["` + os.Args[0] + `", "` + mcpStdioFlag + `", "` + arg + `"]}
agents:
  - {name: a, tools: [proc]}
`
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestAgentsStdioServerLifetime checks that the gateway ends its stdio MCP
// servers' processes: the old one when SIGHUP reloads a file that changes
// the server, the current one when the gateway stops.
func TestAgentsStdioServerLifetime(t *testing.T) {
	file := filepath.Join(t.TempDir(), "agents.yaml")
	writeStdioAgents(t, file, "first")
	g := startRun(t, map[string]string{"GATEWAY_DB": filepath.Join(t.TempDir(), "gateway.db"), "GATEWAY_DEMO_WORD_DELAY": "-1ns"},
		"-addr", "127.0.0.1:0", "-agents", file)
	// serverPID asks the demo model to call proc__pid in a new conversation.
	serverPID := func(conversation string) int {
		t.Helper()
		c := conntest.Dial(t, g.URL, "/v1/ws")
		// A client that does not read would hold the gateway's closing
		// handshake for its 5 s timeout.
		defer c.WS.Close(websocket.StatusNormalClosure, "")
		if f := c.Call(&protocol.Create{ID: "c", Conversation: conversation, Agent: "a"}); f.Type != protocol.ReplyCreated {
			t.Fatalf("create: %s %s %s", f.Type, f.Code, f.ErrorMessage())
		}
		res := ofType(send(t, c, conversation, "/tool proc__pid {}"), protocol.EventToolResult)
		var out struct{ PID int }
		if len(res) != 1 || res[0].Status != protocol.ResultOK || json.Unmarshal(res[0].Output, &out) != nil || out.PID == 0 {
			t.Fatalf("tool_results %+v", res)
		}
		return out.PID
	}
	first := serverPID("one")
	if !running(t, first) {
		t.Fatalf("the server %d is not running", first)
	}

	writeStdioAgents(t, file, "second")
	reloaded := g.log.watch(regexp.MustCompile(`SIGHUP: agents reloaded`))
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	<-reloaded
	if running(t, first) {
		t.Errorf("the server %d of the old file still runs after the reload", first)
	}
	second := serverPID("two")
	if second == first || !running(t, second) {
		t.Fatalf("after the reload, server %d (before %d)", second, first)
	}

	g.Stop(t)
	if running(t, second) {
		t.Errorf("the server %d still runs after the gateway stopped", second)
	}
}

// running reports whether process pid exists (and was not reaped).
func running(t *testing.T, pid int) bool {
	t.Helper()
	err := syscall.Kill(pid, 0)
	if err != nil && !errors.Is(err, syscall.ESRCH) {
		t.Fatalf("kill -0 %d: %v", pid, err)
	}
	return err == nil
}

// TestLockedDatabaseStartsNoMCPServer starts a second gateway on the
// database a first one holds: it fails on the file's lock without having
// started the stdio MCP server its agents file names.
func TestLockedDatabaseStartsNoMCPServer(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "gateway.db")
	startRun(t, map[string]string{"GATEWAY_DB": db}, "-addr", "127.0.0.1:0")
	mark := filepath.Join(dir, "started")
	file := filepath.Join(dir, "agents.yaml")
	writeStdioAgents(t, file, mcpMarkPrefix+mark)
	err := run(context.Background(), []string{"-addr", "127.0.0.1:0", "-agents", file},
		func(k string) string { return map[string]string{"GATEWAY_DB": db}[k] }, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Fatalf("second gateway on a locked database: %v, want the lock's error", err)
	}
	if _, err := os.Stat(mark); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the MCP server was started (%s: %v)", mark, err)
	}
}
