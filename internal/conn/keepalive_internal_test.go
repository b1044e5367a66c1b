package conn

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/coder/websocket"
)

// TestKeepalive pings two clients in a synctest bubble: the one that
// answers stays connected through many pings, the one that does not is
// disconnected exactly one WriteTimeout after the ping it did not answer.
// The bubble's clock moves only while every goroutine waits, so a loaded
// machine cannot delay an answer past the timeout.
func TestKeepalive(t *testing.T) {
	t.Parallel()
	opts := Options{PingInterval: 20 * time.Millisecond, WriteTimeout: time.Second}
	dial := func(t *testing.T, pong bool, pings chan<- struct{}) (*websocket.Conn, *conn) {
		return servePipe(t, opts, &websocket.DialOptions{
			OnPingReceived: func(context.Context, []byte) bool {
				select {
				case pings <- struct{}{}:
				default:
				}
				return pong
			},
		})
	}

	t.Run("silent client is disconnected", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			// It reads (so it sees the pings) but never answers.
			pinged := make(chan struct{}, 1)
			ws, c := dial(t, false, pinged)
			start := time.Now()
			if _, _, err := ws.Read(t.Context()); err == nil {
				t.Fatal("the silent client got a frame, want the connection dropped")
			}
			<-pinged
			if waited, want := time.Since(start), opts.PingInterval+opts.WriteTimeout; waited != want {
				t.Errorf("dropped after %v, want %v (a ping, then its timeout)", waited, want)
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.ended != endPingTimeout {
				t.Errorf("ended as %q, want %q", c.ended, endPingTimeout)
			}
		})
	})

	t.Run("answering client stays", func(t *testing.T) {
		t.Parallel()
		synctest.Test(t, func(t *testing.T) {
			pings := make(chan struct{}, 1)
			ws, c := dial(t, true, pings)
			read := make(chan error, 1)
			go func() {
				_, b, err := ws.Read(t.Context())
				if err == nil && !strings.Contains(string(b), `"pong"`) {
					err = fmt.Errorf("got %s, want a pong", b)
				}
				read <- err
			}()
			// Ten pings, each answered, over ten intervals.
			for range 10 {
				<-pings
			}
			if err := ws.Write(t.Context(), websocket.MessageText, []byte(`{"type":"ping","id":"p"}`)); err != nil {
				t.Fatal(err)
			}
			if err := <-read; err != nil {
				t.Fatalf("the answering client was disconnected: %v", err)
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.ended != "" {
				t.Errorf("ended as %q", c.ended)
			}
		})
	})
}

// TestKeepaliveStopsWithConnection checks that the ping timer of a
// connection that ended stays stopped. A ping answered just before the
// connection ends re-arms the timer once finish has stopped it; the test
// plays that ping's last step after the end, which must leave the timer
// stopped rather than keep the closed connection in memory one more
// interval.
func TestKeepaliveStopsWithConnection(t *testing.T) {
	t.Parallel()
	ws, c := serveOne(t, Options{PingInterval: time.Hour})
	if err := ws.Close(websocket.StatusNormalClosure, ""); err != nil {
		t.Fatal(err)
	}
	c.h.live.Wait() // finish has run
	c.nextPing()
	if c.ping.Stop() {
		t.Error("the ping timer of a closed connection is armed")
	}
}
