package agent

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// stopGrace is how long closing a stdio MCP server waits for it to exit
// after closing its stdin, then after SIGTERM, before killing it.
const stopGrace = 5 * time.Second

// commandTransport runs a stdio MCP server's command, as
// mcp.CommandTransport does, but fails a line of its output (one message)
// longer than limit bytes, where the SDK's own bound is a constant.
type commandTransport struct {
	cmd   *exec.Cmd
	limit int
	// stdin, if not nil, gets the server's stdin once it started.
	stdin **stdinPipe
}

func (t commandTransport) Connect(ctx context.Context) (mcp.Connection, error) {
	stdout, err := t.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stdin, err := t.cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	if err := t.cmd.Start(); err != nil {
		return nil, err
	}
	pipe := &stdinPipe{WriteCloser: stdin}
	if t.stdin != nil {
		*t.stdin = pipe
	}
	// Closing the connection closes stdout, then stdin: a server still
	// writing (an answer past the limit) fails, and stdin's end tells it
	// to exit.
	return (&mcp.IOTransport{Reader: &lineLimit{r: stdout, limit: t.limit},
		Writer: serverStdin{WriteCloser: pipe, cmd: t.cmd}, MaxLineLength: -1}).Connect(ctx)
}

// stdinPipe is a stdio server's stdin. It counts the writes under way, so
// that a server that no longer reads can be told (see unstick); its Close
// only closes the pipe.
type stdinPipe struct {
	io.WriteCloser
	writing atomic.Int32
}

func (p *stdinPipe) Write(b []byte) (int, error) {
	p.writing.Add(1)
	defer p.writing.Add(-1)
	return p.WriteCloser.Write(b)
}

// blocked reports whether a write is under way.
func (p *stdinPipe) blocked() bool { return p.writing.Load() > 0 }

// serverStdin is a stdio server's stdin, whose Close stops the server.
type serverStdin struct {
	io.WriteCloser
	cmd *exec.Cmd
}

// Close closes stdin and waits for the server to exit, sending it SIGTERM,
// then SIGKILL, when it has not after stopGrace.
func (s serverStdin) Close() error {
	err := s.WriteCloser.Close()
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	for _, sig := range []os.Signal{syscall.SIGTERM, os.Kill} {
		select {
		case werr := <-done:
			return werr
		case <-time.After(stopGrace):
		}
		_ = s.cmd.Process.Signal(sig)
	}
	if werr := <-done; werr != nil {
		return werr
	}
	return err
}

// lineLimit fails a read once a line is longer than limit bytes.
type lineLimit struct {
	r     io.ReadCloser
	limit int
	n     int // bytes of the current line read so far
}

func (l *lineLimit) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	for rest := p[:n]; ; {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			l.n += len(rest)
			break
		}
		if l.n+i > l.limit {
			l.n += i
			break
		}
		l.n, rest = 0, rest[i+1:]
	}
	if l.n > l.limit {
		return n, errTooLarge(l.limit)
	}
	return n, err
}

func (l *lineLimit) Close() error { return l.r.Close() }

// errTooLarge is the error of an MCP server's message past limit bytes.
func errTooLarge(limit int) error {
	return fmt.Errorf("the MCP server's answer is larger than %d bytes", limit)
}
