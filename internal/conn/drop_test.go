package conn_test

import (
	"bufio"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatgateway/gateway/internal/conn"
	"github.com/chatgateway/gateway/internal/conn/conntest"
	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/httpapi"
	"github.com/chatgateway/gateway/internal/metrics"
)

// openFDs counts this process's open file descriptors (Linux), or -1.
func openFDs() int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(entries)
}

// dropAbruptly opens a connection to addr and drops it with a TCP reset
// at one of three points: right after connecting, in the middle of the
// upgrade request, or once upgraded with a request sent.
func dropAbruptly(t *testing.T, addr string, stage int) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Error(err)
		return
	}
	defer func() {
		_ = c.(*net.TCPConn).SetLinger(0) // close with RST, not FIN
		_ = c.Close()
	}()
	const upgrade = "GET /v1/ws HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" +
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
	req := fmt.Sprintf(upgrade, addr)
	switch stage % 3 {
	case 0:
	case 1:
		_, _ = c.Write([]byte(req[:len(req)/2]))
	case 2:
		if _, err := c.Write([]byte(req)); err != nil {
			t.Error(err)
			return
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
			t.Errorf("upgrade: %v %v", resp, err)
			return
		}
		// A masked text frame: {"type":"ping"} with a zero mask.
		frame := append([]byte{0x81, 0x80 | 15, 0, 0, 0, 0}, `{"type":"ping"}`...)
		_, _ = c.Write(frame)
	}
}

// TestAbruptDropsLeakNothing opens 10,000 connections in batches and
// drops each abruptly, before, during or after its upgrade, then checks
// that the gateway's goroutines and file descriptors fall back to what
// they were.
func TestAbruptDropsLeakNothing(t *testing.T) {
	// About 4.5 s of CPU under -race (2 s for 3,000), most of it the
	// kernel's and the race detector's work for each connection.
	const total, batch = 10_000, 100
	m := metrics.New()
	// Warnings only: debug lines for 10,000 connections cost a tenth
	// of the test's CPU and would bury a failure's goroutine dump.
	log := conntest.LoggerAt(t, slog.LevelWarn)
	s := conntest.Start(t, conntest.Config{Convo: convo.Config{Logger: log},
		Conn: conn.Options{Metrics: m, Logger: log}, API: httpapi.Options{Logger: log}})
	addr := strings.TrimPrefix(s.URL, "http://")
	// Warm up: the first connections start the server's long-lived parts.
	for i := range 3 {
		dropAbruptly(t, addr, i)
	}
	settle(t, m, math.MaxInt, -1)
	goroutines, fds := runtime.NumGoroutine(), openFDs()

	for i := 0; i < total; i += batch {
		var wg sync.WaitGroup
		for j := range batch {
			wg.Go(func() { dropAbruptly(t, addr, i+j) })
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
	}
	settle(t, m, goroutines, fds)
	if got := gauge(t, m, "gateway_connection_closes_total"); got < total/3 {
		t.Errorf("%v connection ends counted, want at least the %d upgraded ones", got, total/3)
	}
}

// settle waits until no connection is open and the goroutines and file
// descriptors are down to at most the given counts (-1: not checked);
// the bound only turns a leak into a failure with a goroutine dump.
func settle(t *testing.T, m *metrics.Metrics, goroutines, fds int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		g, f, open := runtime.NumGoroutine(), openFDs(), gauge(t, m, "gateway_connections_open")
		if open == 0 && g <= goroutines && (fds < 0 || f <= fds) {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("after the drops: %v connections open, %d goroutines (before %d), %d fds (before %d)\n%s",
				open, g, goroutines, f, fds, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
