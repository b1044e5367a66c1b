package jetlog_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/chatgateway/gateway/internal/auth"
	"github.com/chatgateway/gateway/internal/conn/conntest"
	"github.com/chatgateway/gateway/internal/jetlog"
	"github.com/chatgateway/gateway/internal/jetlog/natstest"
	"github.com/chatgateway/gateway/protocol"
)

// TestEventsEndAtDeleteElsewhere: GET …/events on gateway a streams a
// conversation of three pages, and gateway b deletes it while a reads the
// second page: after a has found the page's records in the stream and
// before its read of them reaches NATS, which then has none. The answer
// must end its array cleanly after the first page (the conversation as
// it was before the delete), as it does in bbolt mode, not be cut short
// as if storage had failed.
func TestEventsEndAtDeleteElsewhere(t *testing.T) {
	srv := natstest.Start(t)
	gate := &readGate{}
	a := serve(t, "a", srv.URL(), nats.SetCustomDialer(gate))
	b := startNode(t, "b", srv.URL(), &words{n: 1}, 0)
	const id, events = "long", 20
	createAs(t, b, auth.LocalUser, id, events)

	// The records' reads of GET …/events: one for each page, each after
	// the page's look at the conversation's newest record.
	reached, release := gate.hold(2)
	got := conntest.GetLater(t, a.URL+"/v1/conversations/"+id+"/events")
	select {
	case <-reached:
	case ans := <-got:
		t.Fatalf("GET …/events answered %d %s (%v) without reading a second page", ans.Status, ans.Body, ans.Err)
	}
	if err := b.svc.Delete(context.Background(), auth.LocalUser, id); err != nil {
		t.Fatal(err)
	}
	close(release)

	ans := <-got
	if ans.Status != http.StatusOK || ans.Err != nil {
		t.Fatalf("GET …/events: %d, reading: %v", ans.Status, ans.Err)
	}
	var evs []protocol.Event
	if err := json.Unmarshal(ans.Body, &evs); err != nil {
		t.Fatalf("GET …/events cut short after %d bytes: %v", len(ans.Body), err)
	}
	if len(evs) == 0 || len(evs) >= events {
		t.Fatalf("GET …/events: %d events, want the first page's", len(evs))
	}
	for i, ev := range evs {
		if ev.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d", i, ev.Seq)
		}
	}
	if code, body := conntest.Do(t, http.MethodGet, a.URL+"/v1/conversations/"+id+"/events", ""); code != http.StatusNotFound {
		t.Fatalf("GET …/events again: %d %s, want 404", code, body)
	}
}

// readGate dials NATS for a gateway, and can hold one of the gateway's
// reads of the stream's records (a direct get) on its way to the server.
type readGate struct {
	mu      sync.Mutex
	count   int           // reads left until the held one; 0: none armed
	reached chan struct{} // closed when the held read is written
	release chan struct{} // closed by the test: write it
}

// hold arms g: the n-th read from now on waits, once it is about to be
// written, until release is closed; reached is closed then.
func (g *readGate) hold(n int) (reached, release chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.count, g.reached, g.release = n, make(chan struct{}), make(chan struct{})
	return g.reached, g.release
}

// Dial implements nats.CustomDialer.
func (g *readGate) Dial(network, address string) (net.Conn, error) {
	c, err := net.Dial(network, address)
	if err != nil {
		return nil, err
	}
	return gatedConn{Conn: c, gate: g}, nil
}

// readSubject starts the protocol line of a direct get of the records.
var readSubject = []byte("$JS.API.DIRECT.GET." + jetlog.DefaultStream + " ")

type gatedConn struct {
	net.Conn
	gate *readGate
}

func (c gatedConn) Write(p []byte) (int, error) {
	if bytes.Contains(p, readSubject) {
		g := c.gate
		g.mu.Lock()
		var release chan struct{}
		if g.count > 0 {
			if g.count--; g.count == 0 {
				close(g.reached)
				release = g.release
			}
		}
		g.mu.Unlock()
		if release != nil {
			<-release
		}
	}
	return c.Conn.Write(p)
}
