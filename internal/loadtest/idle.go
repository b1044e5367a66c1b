package loadtest

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime/pprof"
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
	child, err := r.startChild(ctx, childSpec{Role: roleIdle, URL: url, N: n})
	if err != nil {
		return perConn{}, err
	}
	defer func() {
		child.close()
		_ = waitFor(ctx, func() bool { return open() == 0 })
	}()
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
