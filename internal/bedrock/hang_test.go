package bedrock_test

import (
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/chatgateway/gateway/internal/bedrock"
)

// silentEndpoint accepts connections and never answers. It counts the
// connections it accepted, and open waits for each until the client
// closes it.
type silentEndpoint struct {
	url      string
	mu       sync.Mutex
	accepted int
	open     sync.WaitGroup
}

func startSilent(t *testing.T) *silentEndpoint {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	s := &silentEndpoint{url: "http://" + ln.Addr().String()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.accepted++
			s.mu.Unlock()
			s.open.Go(func() {
				// Read the request and whatever follows, answer nothing;
				// the read ends when the client closes the connection.
				_, _ = io.Copy(io.Discard, c)
				_ = c.Close()
			})
		}
	}()
	return s
}

// TestEndpointHangsBeforeHeaders calls an endpoint that accepts and never
// answers: each attempt fails after HeaderTimeout, the turn ends with a
// model_error, and every connection the client opened is closed again,
// with no goroutine left behind.
func TestEndpointHangsBeforeHeaders(t *testing.T) {
	silent := startSilent(t)
	c := newClient(t, nil, bedrock.Options{Endpoint: silent.url, MaxAttempts: 3, HeaderTimeout: 50 * time.Millisecond})
	before := runtime.NumGoroutine()
	for range 2 {
		_, _, err := stream(t, c, ask("hi"))
		containsAll(t, modelError(t, err), "cannot call Bedrock", "timeout awaiting response headers")
	}
	// The wait ends only when the client has closed every connection:
	// none is kept in the pool or leaked.
	silent.open.Wait()
	silent.mu.Lock()
	defer silent.mu.Unlock()
	if silent.accepted != 6 {
		t.Errorf("%d connections for 2 turns of 3 attempts, want 6", silent.accepted)
	}
	noLeak(t, before)
}
