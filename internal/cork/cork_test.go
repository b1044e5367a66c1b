package cork_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/coder/websocket"

	"github.com/chatgateway/gateway/internal/cork"
)

// TestCorkConn checks that a corked socket writes nothing until Uncork,
// then everything at once, and reports a failed write.
func TestCorkConn(t *testing.T) {
	t.Parallel()
	server, client := net.Pipe()
	defer client.Close()
	sock := &cork.Conn{Conn: server}
	sock.Cork(6)
	for _, s := range []string{"a", "bc", "def"} {
		if _, err := sock.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan string, 1)
	go func() {
		b := make([]byte, 16)
		n, _ := client.Read(b) // a net.Pipe read returns one write
		got <- string(b[:n])
	}()
	if err := sock.Uncork(); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != "abcdef" {
		t.Errorf("one read got %q, want abcdef", s)
	}
	// Uncorked: a write goes straight through.
	go func() {
		b := make([]byte, 16)
		n, _ := client.Read(b)
		got <- string(b[:n])
	}()
	if _, err := sock.Write([]byte("g")); err != nil {
		t.Fatal(err)
	}
	if s := <-got; s != "g" {
		t.Errorf("after uncork a write reached the socket as %q, want g", s)
	}

	_ = server.Close()
	sock.Cork(1)
	if _, err := sock.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := sock.Uncork(); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("uncork on a closed socket: %v, want %v", err, io.ErrClosedPipe)
	}
}

// TestConcurrentCorks checks that Conns corked at the same time each
// write exactly what was written to them. Their buffers come from one
// pool: one given back before its write ended would carry another Conn's
// bytes (and -race would report it).
func TestConcurrentCorks(t *testing.T) {
	t.Parallel()
	const conns, rounds = 4, 200
	// message is what a Conn writes in a round, in three writes; its
	// length varies, so that a pooled buffer is sometimes too small.
	message := func(conn, round int) []byte {
		return bytes.Repeat(fmt.Appendf(nil, "%d/%d;", conn, round), round%40+1)
	}
	var wg sync.WaitGroup
	for conn := range conns {
		server, client := net.Pipe()
		sock := &cork.Conn{Conn: server}
		wg.Go(func() {
			defer client.Close() // a failed check ends the writer too
			for round := range rounds {
				want := message(conn, round)
				got := make([]byte, len(want))
				if _, err := io.ReadFull(client, got); err != nil {
					t.Errorf("conn %d, round %d: %v", conn, round, err)
					return
				}
				if !bytes.Equal(got, want) {
					t.Errorf("conn %d, round %d: got %.40q…, want %.40q…", conn, round, got, want)
					return
				}
			}
		})
		wg.Go(func() {
			defer server.Close() // a failed write ends the reader too
			for round := range rounds {
				msg := message(conn, round)
				third := len(msg) / 3
				sock.Cork(len(msg) / 2)
				for _, part := range [][]byte{msg[:third], msg[third : 2*third], msg[2*third:]} {
					if _, err := sock.Write(part); err != nil {
						t.Error(err)
						return
					}
				}
				if err := sock.Uncork(); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// serveOne returns a WebSocket client and the server's side of its
// connection with the server's socket, over loopback.
func serveOne(tb testing.TB) (client, server *websocket.Conn, sock *cork.Conn) {
	tb.Helper()
	type accepted struct {
		ws   *websocket.Conn
		sock *cork.Conn
	}
	got := make(chan accepted, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &cork.Response{ResponseWriter: w}
		ws, err := websocket.Accept(cw, r, nil)
		if err != nil {
			tb.Error(err)
			return
		}
		got <- accepted{ws, cw.Sock}
	}))
	tb.Cleanup(srv.Close)
	client, _, err := websocket.Dial(tb.Context(), "ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = client.CloseNow() })
	a := <-got
	tb.Cleanup(func() { _ = a.ws.CloseNow() })
	return client, a.ws, a.sock
}

// BenchmarkWrite measures Write of one message and of several corked
// together, each about a delta event's size, to a client over loopback
// that reads them without keeping them.
func BenchmarkWrite(b *testing.B) {
	msg := bytes.Repeat([]byte("x"), 200)
	for _, n := range []int{1, 16} {
		b.Run(fmt.Sprintf("msgs=%d", n), func(b *testing.B) {
			client, ws, sock := serveOne(b)
			msgs := make([][]byte, n)
			for i := range msgs {
				msgs[i] = msg
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := cork.Write(ws, sock, msgs, func(m []byte) []byte { return m }); err != nil {
					b.Fatal(err)
				}
				for range n {
					// A context that is never done arms no timer per read.
					_, r, err := client.Reader(context.Background())
					if err != nil {
						b.Fatal(err)
					}
					if _, err := io.Copy(io.Discard, r); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
