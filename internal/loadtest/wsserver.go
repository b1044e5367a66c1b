package loadtest

import (
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/coder/websocket"

	"github.com/chatgateway/gateway/internal/cork"
)

// serveWebSockets serves WebSockets on 127.0.0.1:0, with none of the
// gateway's logic: handle gets each accepted connection, on the request's
// goroutine, with its socket, which the handler may cork as the
// gateway's writers do. It returns the server (Close stops it) and its
// ws:// URL. The baseline's bare servers are made with it.
func serveWebSockets(handle func(*websocket.Conn, *cork.Conn)) (*http.Server, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", fmt.Errorf("loadtest: listen: %w", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		cw := &cork.Response{ResponseWriter: w}
		ws, err := websocket.Accept(cw, req, nil)
		if err != nil {
			return
		}
		handle(ws, cw.Sock)
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return srv, "ws://" + ln.Addr().String() + "/", nil
}
