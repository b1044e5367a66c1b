// Package pipenet is a net.Listener over net.Pipe, for tests that serve
// HTTP in a testing/synctest bubble, which cannot use real sockets: a
// pipe's write waits until its peer reads, with no socket buffer between
// them, and that wait is durable, so the bubble's clock moves on while a
// peer does not read.
package pipenet

import (
	"context"
	"net"
	"sync"
)

// Listener is a net.Listener whose connections are the server ends of the
// pipes that Dial makes. Make one with Listen.
type Listener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

var _ net.Listener = (*Listener)(nil)

// Listen returns a Listener.
func Listen() *Listener {
	return &Listener{conns: make(chan net.Conn), done: make(chan struct{})}
}

// Dial makes a pipe, hands its server end to Accept and returns the client
// end; network and address are ignored, so that Dial fits
// http.Transport.DialContext. It waits for Accept, and fails once l is
// closed or ctx is done.
func (l *Listener) Dial(ctx context.Context, _, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.done:
		return nil, net.ErrClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Accept returns the server end of the next pipe Dial makes, or
// net.ErrClosed once l is closed.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close stops Accept and Dial; pipes already made stay open.
func (l *Listener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// Addr returns the address "pipe".
func (l *Listener) Addr() net.Addr { return addr{} }

type addr struct{}

func (addr) Network() string { return "pipe" }
func (addr) String() string  { return "pipe" }
