package httpapi_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatgateway/gateway/internal/conn/conntest"
	"github.com/chatgateway/gateway/internal/httpapi"
)

// TestSlowReader asks for a long answer and reads none of it: the
// gateway closes the connection once a part of the answer has waited
// WriteTimeout, instead of holding the handler, and the answer it read,
// for as long as the client likes. What reached the client is cut short.
func TestSlowReader(t *testing.T) {
	t.Parallel()
	// The long conversation is made on a gateway of the default timeouts:
	// its answers (the actions' events, 60 KiB each) would otherwise have
	// to reach this test within 100 ms on a busy machine.
	path := filepath.Join(t.TempDir(), "gateway.db")
	setup := conntest.Start(t, conntest.Config{Path: path})
	base := setup.URL + "/v1/conversations"
	if status, b := conntest.Do(t, "POST", base, `{"conversation":"long"}`); status != http.StatusCreated {
		t.Fatalf("create: %d %s", status, b)
	}
	// About 1.2 MB of events, and 240 KB of messages: far more than the
	// kernel buffers in between hold.
	text := strings.Repeat("x", 60<<10)
	for i := range 20 {
		body := fmt.Sprintf(`{"name":"step","output":%q}`, text)
		if status, b := conntest.Do(t, "POST", base+"/long/actions", body); status != http.StatusCreated {
			t.Fatalf("action %d: %d %s", i, status, b)
		}
	}
	for i := range 4 {
		body := fmt.Sprintf(`{"text":%q}`, text)
		if status, b := conntest.Do(t, "POST", base+"/long/messages", body); status != http.StatusAccepted {
			t.Fatalf("send %d: %d %s", i, status, b)
		}
	}
	setup.Close(t)
	closed := make(chan string, 100)
	s := conntest.Start(t, conntest.Config{
		Path:       path,
		API:        httpapi.Options{WriteTimeout: 100 * time.Millisecond},
		SendBuffer: 16 << 10,
		ConnState: func(c net.Conn, state http.ConnState) {
			if state == http.StateClosed {
				closed <- c.RemoteAddr().String()
			}
		},
	})
	for _, tt := range []struct{ name, path, header string }{
		{"events", "/long/events?limit=1000", ""},
		{"history", "/long/messages?limit=500", ""},
		// An upgrade's header on a request that no WebSocket serves.
		{"events with an upgrade header", "/long/events?limit=1000", "Connection: Upgrade\r\nUpgrade: websocket\r\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.(*net.TCPConn).SetReadBuffer(16 << 10)
			req := "GET /v1/conversations" + tt.path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n" + tt.header + "\r\n"
			if _, err := io.WriteString(c, req); err != nil {
				t.Fatal(err)
			}
			// The test's own bound on a gateway that would wait forever.
			deadline := time.After(conntest.Timeout)
			for done := false; !done; {
				select {
				case addr := <-closed:
					done = addr == c.LocalAddr().String()
				case <-deadline:
					t.Fatalf("the gateway still writes to a client that reads nothing after %v", conntest.Timeout)
				}
			}
			if err := c.SetDeadline(time.Now().Add(conntest.Timeout)); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				return // cut before the headers: also short
			}
			defer resp.Body.Close()
			if b, err := io.ReadAll(resp.Body); err == nil {
				t.Fatalf("read the whole answer (%d bytes) from a closed connection; want it cut short", len(b))
			}
		})
	}
}
