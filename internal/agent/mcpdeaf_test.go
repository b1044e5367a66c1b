package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// deafFlag makes the test binary a stdio MCP server that stops reading
// its stdin once it has listed its tools (see serveDeaf).
const deafFlag = "-agent-test-mcp-deaf"

// serveDeaf serves testServer on stdio, but reads nothing more from
// stdin once it has read the tools/list request of the gateway's connect:
// a server stuck in its work, which leaves the gateway's requests in the
// pipe, until the pipe is full and the gateway's write of a request
// blocks. It ends when the gateway stops it (SIGTERM).
func serveDeaf() {
	srv, _ := testServer()
	in := &deafReader{r: os.Stdin}
	t := &mcp.IOTransport{Reader: in, Writer: os.Stdout}
	_ = srv.Run(context.Background(), t)
	os.Exit(0)
}

type deafReader struct {
	r    io.ReadCloser
	deaf bool
}

func (d *deafReader) Close() error { return d.r.Close() }

func (d *deafReader) Read(p []byte) (int, error) {
	if d.deaf {
		select {} // until the process is stopped
	}
	n, err := d.r.Read(p)
	d.deaf = bytes.Contains(p[:n], []byte(`"tools/list"`))
	return n, err
}

// TestMCPStdioServerStopsReading calls a stdio server that no longer
// reads its stdin (once it listed its tools) with an input larger than
// the pipe holds: the SDK's
// write of the request blocks, and does not watch the call's context.
// The call must end all the same at the tool's timeout (as at a cancel),
// so that the turn does too.
func TestMCPStdioServerStopsReading(t *testing.T) {
	t.Parallel()
	_, a := mcpAgent(t, MCPServer{Command: []string{os.Args[0], deafFlag}, Timeout: Duration(100 * time.Millisecond)})
	if len(a.Tools) == 0 {
		t.Fatal("the server's tools were not listed")
	}
	big, _ := json.Marshal(map[string]string{"say": strings.Repeat("x", 1<<20)})
	res, err := a.Call(context.Background(), "m__echo", testCall, big, nil)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("call to a server that reads no more: %.100s, %q, %v; want a timeout", res.Output, res.Error, err)
	}
}
