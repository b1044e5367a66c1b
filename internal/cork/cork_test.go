package cork_test

import (
	"errors"
	"io"
	"net"
	"testing"

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
