package main

import (
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/chatgateway/gateway/internal/conn/conntest"
	"github.com/chatgateway/gateway/protocol"
)

// TestDrain stops the gateway while a turn streams. /readyz fails and
// upgrades are refused at once while the turn goes on; the turn ends
// end_turn when the drain timeout is long enough and interrupted when it
// is not; the client sees 1001; the database opens again.
func TestDrain(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		timeout   string
		wordDelay string
		stop      string
	}{
		{"turn finishes", "30s", "20ms", protocol.StopEndTurn},
		// The reply (about 60 words, echoing the message) takes three
		// seconds: a second's drain streams a score of them, then ends it.
		{"turn interrupted", "1s", "50ms", protocol.StopInterrupted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db := filepath.Join(t.TempDir(), "gateway.db")
			env := map[string]string{"GATEWAY_DB": db, "GATEWAY_DEMO_WORD_DELAY": tt.wordDelay, "GATEWAY_DRAIN_TIMEOUT": tt.timeout}
			g := startRun(t, env, "-addr", "127.0.0.1:0")
			c := conntest.Dial(t, g.URL, "/v1/ws")
			c.Request(&protocol.Send{ID: "s", Text: strings.Repeat("tell me a long story please ", 7)})
			frames := c.ReadUntil(conntest.IsType(protocol.EventDelta))

			g.stop() // as SIGTERM does; g.Stop below waits for run
			deadline := time.Now().Add(conntest.Timeout)
			for status(t, g.URL+"/readyz") != http.StatusServiceUnavailable {
				if time.Now().After(deadline) {
					t.Fatal("/readyz still answers 200 after the shutdown began")
				}
				time.Sleep(5 * time.Millisecond)
			}
			if a := conntest.Upgrade(t, g.URL, "", nil); a.Status != 503 || a.Error == nil || a.Error.Code != protocol.CodeUnavailable {
				t.Errorf("an upgrade while draining answered %d %+v, want 503 unavailable", a.Status, a.Error)
			}
			stopped := len(frames)
			var end error
			for {
				f, err := c.ReadErr()
				if err != nil {
					end = err
					break
				}
				frames = append(frames, f)
			}
			if websocket.CloseStatus(end) != websocket.StatusGoingAway {
				t.Errorf("the connection ended with %v, want close 1001", end)
			}
			var last protocol.ServerFrame
			deltasAfter := 0
			for i, f := range frames {
				if f.Type == protocol.EventTurnEnd {
					last = f
				}
				if i >= stopped && f.Type == protocol.EventDelta {
					deltasAfter++
				}
			}
			if last.StopReason != tt.stop {
				t.Fatalf("the turn ended %q, want %q", last.StopReason, tt.stop)
			}
			if deltasAfter == 0 {
				t.Error("no delta streamed after the shutdown began")
			}
			g.Stop(t)

			g = startRun(t, env, "-addr", "127.0.0.1:0")
			if got := status(t, g.URL+"/readyz"); got != 200 {
				t.Errorf("/readyz after restart: %d", got)
			}
			var evs []protocol.ServerFrame
			get(t, g.URL+"/v1/conversations/"+last.Conversation+"/events", &evs)
			if e := evs[len(evs)-1]; e.Type != protocol.EventTurnEnd || e.Seq != last.Seq || e.StopReason != tt.stop {
				t.Errorf("stored last event %s seq %d %q, want the turn_end the client saw (seq %d)", e.Type, e.Seq, e.StopReason, last.Seq)
			}
		})
	}
}

// mainEnv makes the test binary run main() instead of the tests, so that
// TestSignals can start the real program and signal it.
const mainEnv = "GATEWAY_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(mainEnv) == "1" {
		main()
		os.Exit(0)
	}
	if slices.Contains(os.Args[1:], mcpStdioFlag) {
		serveStdioMCP()
	}
	for k, v := range fakeAWSEnv {
		os.Setenv(k, v)
	}
	code := m.Run()
	if gatewayBinary.dir != "" {
		_ = os.RemoveAll(gatewayBinary.dir)
	}
	os.Exit(code)
}

// TestSignals sends SIGTERM to the real program while a turn streams: it
// drains (/readyz 503, the turn finishes, close 1001, exit status 0). A
// second SIGTERM during the drain stops it at once, and the cut turn is
// stored interrupted.
func TestSignals(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		twice bool
		stop  string
	}{
		{"drain", false, protocol.StopEndTurn},
		{"second signal", true, protocol.StopInterrupted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db := filepath.Join(t.TempDir(), "gateway.db")
			cmd := exec.Command(os.Args[0], "-addr", "127.0.0.1:0", "-db", db, "-demo-word-delay", "40ms", "-drain-timeout", "1m")
			cmd.Env = append(os.Environ(), mainEnv+"=1")
			cmd.Stderr = os.Stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill() })
			log := scanLog(t, out)
			url := log.listening(t)

			c := conntest.Dial(t, url, "/v1/ws")
			c.Request(&protocol.Send{Text: "tell me a long story please"})
			frames := c.ReadUntil(conntest.IsType(protocol.EventDelta))
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(conntest.Timeout)
			for status(t, url+"/readyz") != http.StatusServiceUnavailable {
				if time.Now().After(deadline) {
					t.Fatal("/readyz still answers 200 after SIGTERM")
				}
				time.Sleep(5 * time.Millisecond)
			}
			if tt.twice {
				if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
					t.Fatal(err)
				}
			}
			more, end := c.ReadUntilErr(func(*protocol.ServerFrame) bool { return false })
			frames = append(frames, more...)
			<-log.done // read the whole log before Wait closes the pipe
			exit := cmd.Wait()
			if tt.twice {
				var ee *exec.ExitError
				if !errors.As(exit, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGTERM {
					t.Errorf("after a second SIGTERM the process ended with %v, want killed by SIGTERM", exit)
				}
			} else {
				if exit != nil {
					t.Errorf("the process ended with %v, want status 0", exit)
				}
				if websocket.CloseStatus(end) != websocket.StatusGoingAway {
					t.Errorf("the connection ended with %v, want close 1001", end)
				}
				if last := frames[len(frames)-1]; last.Type != protocol.EventTurnEnd || last.StopReason != protocol.StopEndTurn {
					t.Errorf("last frame %s %q, want turn_end end_turn", last.Type, last.StopReason)
				}
			}

			g := startRun(t, map[string]string{"GATEWAY_DB": db}, "-addr", "127.0.0.1:0")
			var evs []protocol.ServerFrame
			get(t, g.URL+"/v1/conversations/"+frames[0].Conversation+"/events", &evs)
			if e := evs[len(evs)-1]; e.Type != protocol.EventTurnEnd || e.StopReason != tt.stop {
				t.Errorf("stored last event %s %q, want turn_end %q", e.Type, e.StopReason, tt.stop)
			}
		})
	}
}
