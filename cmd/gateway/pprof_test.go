package main

import (
	"bufio"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"testing/synctest"
	"time"

	"github.com/chatgateway/gateway/internal/pipenet"
)

// TestPprofServerTimeouts serves the -pprof server over in-memory
// sockets in a synctest bubble: a client that sends no request, and one
// that keeps its connection idle after a request, are each disconnected
// after the server's timeout, exactly, on the bubble's clock. A server
// without the timeout would wait forever, which the bubble reports as a
// deadlock.
func TestPprofServerTimeouts(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		request string
		wait    func(*http.Server) time.Duration
	}{
		{"no request", "", func(s *http.Server) time.Duration { return s.ReadHeaderTimeout }},
		{"idle after a request", "GET /debug/pprof/cmdline HTTP/1.1\r\nHost: pprof\r\n\r\n", func(s *http.Server) time.Duration { return s.IdleTimeout }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				srv := pprofServer(slog.New(slog.DiscardHandler))
				ln := pipenet.Listen()
				go func() { _ = srv.Serve(ln) }()
				defer srv.Close()
				client, err := ln.Dial(t.Context(), "", "")
				if err != nil {
					t.Fatal(err)
				}
				defer client.Close()
				r := bufio.NewReader(client)
				if tt.request != "" {
					if _, err := io.WriteString(client, tt.request); err != nil {
						t.Fatal(err)
					}
					resp, err := http.ReadResponse(r, nil)
					if err != nil {
						t.Fatal(err)
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						t.Fatalf("answered %s", resp.Status)
					}
				}
				start := time.Now()
				if _, err := r.ReadByte(); err == nil {
					t.Fatal("the server sent more than its answer")
				}
				if waited, want := time.Since(start), tt.wait(srv); want == 0 || waited != want {
					t.Errorf("closed after %v, want the timeout of %v", waited, want)
				}
			})
		})
	}
}
