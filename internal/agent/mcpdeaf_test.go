package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// deafFlag makes the test binary a stdio MCP server that stops reading
// its stdin once it has listed its tools (see serveDeaf).
const deafFlag = "-agent-test-mcp-deaf"

// deafStarts names the environment variable with the file to which the
// deaf server adds a line each time it starts.
const deafStarts = "AGENT_TEST_DEAF_STARTS"

// serveDeaf serves testServer on stdio, but reads nothing more from
// stdin once it has read the tools/list request of the gateway's connect:
// a server stuck in its work, which leaves the gateway's requests in the
// pipe, until the pipe is full and the gateway's write of a request
// blocks. It ends when the gateway stops it (SIGTERM).
func serveDeaf() {
	if f, err := os.OpenFile(os.Getenv(deafStarts), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600); err == nil {
		_, _ = f.WriteString("started\n")
		_ = f.Close()
	}
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
// the pipe holds: the SDK's write of the request blocks, and does not
// watch the call's context. The call must end all the same when its
// context does (cancel or the tool's timeout), so that the turn does too;
// and the server is stopped and started again one call timeout later, so
// that later calls do not find it stuck. The timeout is long enough for
// the request's write to begin on a loaded machine (1 s was not, at a
// load average of 20), and the test waits for it once.
func TestMCPStdioServerStopsReading(t *testing.T) {
	t.Parallel()
	starts := filepath.Join(t.TempDir(), "starts")
	r, a := mcpAgent(t, MCPServer{Command: []string{os.Args[0], deafFlag}, Env: map[string]string{deafStarts: starts},
		Timeout: Duration(5 * time.Second)})
	if len(a.Tools) == 0 {
		t.Fatal("the server's tools were not listed")
	}
	srv := r.servers["m"]
	first, err := srv.session(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	stdin, _ := srv.stdins.Load(first)
	big, _ := json.Marshal(map[string]string{"say": strings.Repeat("x", 1<<20)})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ended := make(chan error, 1)
	go func() {
		res, err := a.Call(ctx, "m__echo", testCall, big, nil)
		if err == nil {
			err = fmt.Errorf("answered: %.100s, %q", res.Output, res.Error)
		}
		ended <- err
	}()
	// Cancelled once the request's write has begun, which the server
	// does not read to its end.
	for !stdin.(*stdinPipe).blocked() {
		select {
		case err := <-ended:
			t.Fatalf("the call ended before its request was written: %v", err)
		default:
			runtime.Gosched()
		}
	}
	cancel()
	// Cancelled, or timed out first on a machine slow enough.
	if err := <-ended; !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("call to a server that reads no more: %v; want it cancelled", err)
	}
	_ = first.Wait() // closed, as the server reads no more
	if _, err := srv.session(context.Background()); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(starts)
	if n := strings.Count(string(data), "started"); err != nil || n < 2 {
		t.Fatalf("the server started %d times (%v); want it started again", n, err)
	}
}
