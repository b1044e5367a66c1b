package bedrock_test

import (
	"io"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/chatgateway/gateway/internal/bedrock"
)

// silentEndpoint accepts connections and never answers. Each connection
// sends on closed once the client has closed it.
type silentEndpoint struct {
	url    string
	closed chan struct{}
}

func startSilent(t *testing.T) *silentEndpoint {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	s := &silentEndpoint{url: "http://" + ln.Addr().String(), closed: make(chan struct{}, 16)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				// Read the request and whatever follows, answer nothing;
				// the read ends when the client closes the connection.
				_, _ = io.Copy(io.Discard, c)
				_ = c.Close()
				s.closed <- struct{}{}
			}()
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
	// The client closes every connection it opened, one per attempt:
	// none is kept in the pool or leaked (a leak blocks here).
	for range 6 {
		<-silent.closed
	}
	noLeak(t, before)
	select {
	case <-silent.closed:
		t.Error("more than 6 connections for 2 turns of 3 attempts")
	default:
	}
}
