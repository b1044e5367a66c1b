package loadtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/chatgateway/gateway/internal/cork"
)

// idleResult is one step of the idle scenario: n idle connections to the
// gateway and to a bare coder/websocket server, measured the same way.
type idleResult struct {
	n             int
	gateway, bare perConn
}

// perConn is the memory the server process grew by per idle connection.
type perConn struct {
	rss, heap, stack, goroutines float64
	elapsed                      time.Duration
}

// bareServer is a coder/websocket server that accepts and then only blocks
// in Read: the floor the gateway's idle connections are compared with.
type bareServer struct {
	srv  *http.Server
	url  string
	open atomic.Int64
}

func startBare() (*bareServer, error) {
	b := &bareServer{}
	var err error
	b.srv, b.url, err = serveWebSockets(func(ws *websocket.Conn, _ *cork.Conn) {
		b.open.Add(1)
		defer b.open.Add(-1)
		// A context that is never done costs the read no goroutine.
		for {
			if _, _, err := ws.Read(context.Background()); err != nil {
				return
			}
		}
	})
	if err != nil {
		return nil, err
	}
	return b, nil
}

func (b *bareServer) close() { _ = b.srv.Close() }

// idle measures n idle connections to a bare server, then to the gateway
// (each fresh), the clients held by a child process.
func (r *runner) idle(ctx context.Context, n int) (idleResult, error) {
	res := idleResult{n: n}
	bare, err := startBare()
	if err != nil {
		return res, err
	}
	res.bare, err = r.holdIdle(ctx, bare.url, n, bare.open.Load, "")
	bare.close()
	if err != nil {
		return res, fmt.Errorf("bare server: %w", err)
	}
	t, err := r.newTarget(r.model)
	if err != nil {
		return res, err
	}
	defer r.closeTarget(t)
	open := func() int64 {
		m, err := t.gather(ctx)
		if err != nil {
			return -1
		}
		return int64(m["gateway_connections_open"])
	}
	res.gateway, err = r.holdIdle(ctx, t.wsURL, n, open, r.cfg.IdleHeapProfile)
	if err != nil {
		return res, fmt.Errorf("gateway: %w", err)
	}
	return res, nil
}

// holdIdle measures this process's memory, has a child process open n
// connections to url and hold them idle, waits until open reports them
// all, measures again (and writes a heap profile to heapProfile when it
// is not empty), and returns the growth per connection. The clients live
// in the child so that their memory does not count.
func (r *runner) holdIdle(ctx context.Context, url string, n int, open func() int64, heapProfile string) (perConn, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Duration)
	defer cancel()
	before := settledMemory()
	start := time.Now()
	cmd := exec.CommandContext(ctx, r.cfg.Exe)
	cmd.Env = append(os.Environ(), ChildEnv+"="+url+" "+strconv.Itoa(n))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return perConn{}, fmt.Errorf("loadtest: child stdin: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return perConn{}, fmt.Errorf("loadtest: child stdout: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return perConn{}, fmt.Errorf("loadtest: start the client process %s: %w", r.cfg.Exe, err)
	}
	// Closing stdin tells the child to close its connections and exit.
	defer func() {
		_ = stdin.Close()
		_ = cmd.Wait()
		_ = waitFor(ctx, func() bool { return open() == 0 })
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != childReady {
		return perConn{}, fmt.Errorf("loadtest: the client process did not get ready (%q): %w", line, errors.Join(err, ctx.Err()))
	}
	if err := waitFor(ctx, func() bool { return open() >= int64(n) }); err != nil {
		return perConn{}, fmt.Errorf("loadtest: %d of %d connections open: %w", open(), n, err)
	}
	after := settledMemory()
	if heapProfile != "" {
		if err := writeHeapProfile(heapProfile); err != nil {
			return perConn{}, err
		}
	}
	per := func(a, b uint64) float64 { return (float64(a) - float64(b)) / float64(n) }
	return perConn{
		rss:        per(after.rss, before.rss),
		heap:       per(after.heap, before.heap),
		stack:      per(after.stack, before.stack),
		goroutines: float64(after.goroutines-before.goroutines) / float64(n),
		elapsed:    time.Since(start),
	}, nil
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("loadtest: heap profile: %w", err)
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("loadtest: heap profile: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("loadtest: heap profile: %w", err)
	}
	return nil
}

// waitFor polls cond until it holds or ctx ends.
func waitFor(ctx context.Context, cond func() bool) error {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// ChildEnv names the environment variable that turns a process into the
// idle scenario's client process: its value is "URL N". Both cmd/loadgen
// and the package's tests call RunChild first thing.
const ChildEnv = "LOADTEST_IDLE_CLIENTS"

// childLife bounds the life of the idle scenario's client process.
const childLife = 10 * time.Minute

// childReady is the line the child writes once its connections are open.
const childReady = "ready"

// RunChild does nothing and returns false unless ChildEnv is set. When it
// is, it opens the N WebSocket connections to URL it names, writes "ready"
// to stdout, keeps them open (answering control frames, sending nothing)
// until stdin reaches its end, closes them and returns true, with an
// error if the connections could not all be opened.
func RunChild(stdin io.Reader, stdout io.Writer) (bool, error) {
	spec, ok := os.LookupEnv(ChildEnv)
	if !ok {
		return false, nil
	}
	url, count, _ := strings.Cut(spec, " ")
	n, err := strconv.Atoi(count)
	if err != nil {
		return true, fmt.Errorf("loadtest: %s=%q: want \"URL N\"", ChildEnv, spec)
	}
	if _, err := raiseFDLimit(); err != nil {
		return true, err
	}
	// The connections live until this returns; the parent bounds that (it
	// kills this process at its step's time cap), and so does childLife.
	ctx, cancel := context.WithTimeout(context.Background(), childLife)
	defer cancel()
	clients, err := dialAll(ctx, url, n)
	if err != nil {
		return true, err
	}
	defer closeAll(clients)
	for _, c := range clients {
		c.ws.CloseRead(context.Background())
	}
	if _, err := fmt.Fprintln(stdout, childReady); err != nil {
		return true, fmt.Errorf("loadtest: %w", err)
	}
	_, _ = io.Copy(io.Discard, stdin)
	return true, nil
}
