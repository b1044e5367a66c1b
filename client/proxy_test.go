package client_test

import (
	"io"
	"net"
	"strings"
	"sync"
	"testing"
)

// proxy forwards TCP connections to a gateway that can change, and cuts
// or silences them on demand: what a network, a load balancer or a
// restarted gateway does to a client.
type proxy struct {
	ln net.Listener

	mu      sync.Mutex
	backend string
	conns   map[*pair]struct{}
	// accepted counts connections made through the proxy.
	accepted int
	// watch is closed, and cleared, once the gateway sends watched.
	watched string
	watch   chan struct{}
}

// pair is one forwarded connection.
type pair struct {
	p              *proxy
	client, server net.Conn
	mu             sync.Mutex
	// silent drops what the gateway sends instead of forwarding it.
	silent bool
}

// newProxy forwards to the gateway at base (http://host:port) until the
// test ends.
func newProxy(t *testing.T, base string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, conns: map[*pair]struct{}{}}
	p.setBackend(base)
	t.Cleanup(func() {
		ln.Close()
		p.drop()
	})
	go p.accept()
	return p
}

// URL is the proxy's address as a gateway URL.
func (p *proxy) URL() string { return "ws://" + p.ln.Addr().String() }

// setBackend makes new connections go to the gateway at base.
func (p *proxy) setBackend(base string) {
	p.mu.Lock()
	p.backend = strings.TrimPrefix(base, "http://")
	p.mu.Unlock()
}

// drop cuts every open connection.
func (p *proxy) drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.client.Close()
		c.server.Close()
		delete(p.conns, c)
	}
}

// silence stops forwarding what the gateway sends on the open
// connections (new ones are not affected).
func (p *proxy) silence() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.mu.Lock()
		c.silent = true
		c.mu.Unlock()
	}
}

// sent returns a channel closed once the gateway sends a frame holding s
// (unmasked, as frames from a server are) on any connection.
func (p *proxy) sent(s string) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.watched, p.watch = s, make(chan struct{})
	return p.watch
}

// saw closes the watch channel if data, which the gateway sent, holds the
// watched string.
func (p *proxy) saw(data []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.watch != nil && strings.Contains(string(data), p.watched) {
		close(p.watch)
		p.watch = nil
	}
}

// connections returns how many connections the proxy has accepted.
func (p *proxy) connections() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.accepted
}

func (p *proxy) accept() {
	for {
		cc, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		backend := p.backend
		p.mu.Unlock()
		sc, err := net.Dial("tcp", backend)
		if err != nil {
			cc.Close()
			continue
		}
		c := &pair{p: p, client: cc, server: sc}
		p.mu.Lock()
		p.conns[c] = struct{}{}
		p.accepted++
		p.mu.Unlock()
		go func() {
			_, _ = io.Copy(sc, cc)
			sc.Close()
		}()
		go c.downstream()
	}
}

// downstream forwards what the gateway sends, unless the pair is silent.
func (c *pair) downstream() {
	defer c.client.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := c.server.Read(buf)
		c.mu.Lock()
		silent := c.silent
		c.mu.Unlock()
		c.p.saw(buf[:n])
		if n > 0 && !silent {
			if _, werr := c.client.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
