package main

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/chatgateway/gateway/internal/conn/conntest"
	"github.com/chatgateway/gateway/internal/jetlog/natstest"
	"github.com/chatgateway/gateway/protocol"
)

// TestClusterMode runs two gateways on one JetStream: a conversation
// started on one streams live to a client of the other, /readyz follows
// NATS's reachability, and sends without NATS get unavailable.
func TestClusterMode(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	env := map[string]string{"GATEWAY_NATS": srv.URL(), "GATEWAY_DEMO_WORD_DELAY": "-1ns", "GATEWAY_NATS_LEASE": "1s"}
	a := startRun(t, env, "-addr", "127.0.0.1:0", "-node", "a")
	b := startRun(t, env, "-addr", "127.0.0.1:0", "-node", "b")

	onA := conntest.Dial(t, a.URL, "/v1/ws")
	created := onA.Call(&protocol.Create{ID: "c"})
	id := created.Info.ID
	onB := conntest.Dial(t, b.URL, "/v1/ws")
	onB.Call(&protocol.Subscribe{ID: "s", Conversation: id})
	onA.Request(&protocol.Send{ID: "m", Conversation: id, Text: "hello"})
	fromA := onA.ReadUntil(conntest.IsType(protocol.EventTurnEnd))
	fromB := onB.ReadUntil(conntest.IsType(protocol.EventTurnEnd))
	endA, endB := fromA[len(fromA)-1], fromB[len(fromB)-1]
	if endA.Seq != endB.Seq || endA.StoredMessage().Text != endB.StoredMessage().Text {
		t.Fatalf("a's turn_end %+v, b's %+v", endA, endB)
	}
	for _, g := range []*gateway{a, b} {
		if code := status(t, g.URL+"/readyz"); code != http.StatusOK {
			t.Fatalf("/readyz with NATS up: %d", code)
		}
	}
	// The HTTP API of the other node serves the same log.
	code, body := conntest.Do(t, http.MethodGet, b.URL+"/v1/conversations/"+id+"/events", "")
	if code != http.StatusOK || !strings.Contains(string(body), `"turn_end"`) {
		t.Fatalf("GET events on b: %d %s", code, body)
	}
	// a measured its publishes; the node that ran the turn, its lease (a
	// as a rule, but b's look for unowned work may take the turn between
	// the send's commit and a's lease).
	_, metricsA := conntest.Do(t, http.MethodGet, a.URL+"/metrics", "")
	_, metricsB := conntest.Do(t, http.MethodGet, b.URL+"/metrics", "")
	if !strings.Contains(string(metricsA), "gateway_jetstream_publish_seconds_count") {
		t.Error("a's /metrics has no gateway_jetstream_publish_seconds_count")
	}
	const leased = `gateway_turn_lease_changes_total{change="acquired"}`
	if !strings.Contains(string(metricsA), leased) && !strings.Contains(string(metricsB), leased) {
		t.Errorf("neither node's /metrics has %s", leased)
	}

	lost := a.log.watch(regexp.MustCompile("NATS is unreachable"))
	srv.Stop()
	<-lost
	if code := status(t, a.URL+"/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz without NATS: %d", code)
	}
	e := onA.Call(&protocol.Send{ID: "m2", Conversation: id, Text: "lost?"})
	if e.Type != protocol.ReplyError || e.Code != protocol.CodeUnavailable {
		t.Fatalf("a send without NATS got %+v, want unavailable", e)
	}
	back := a.log.watch(regexp.MustCompile("NATS is reachable again"))
	srv.Restart()
	<-back
	if code := status(t, a.URL+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz with NATS back: %d", code)
	}
}

// TestClusterModeNodeTaken starts a second gateway under the node name of
// a running one: it does not start, and says which flag to change.
func TestClusterModeNodeTaken(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	env := map[string]string{"GATEWAY_NATS": srv.URL(), "GATEWAY_NATS_LEASE": "1s"}
	startRun(t, env, "-addr", "127.0.0.1:0", "-node", "a")
	err := run(context.Background(), []string{"-addr", "127.0.0.1:0", "-node", "a"}, func(k string) string { return env[k] }, io.Discard)
	if err == nil || !strings.Contains(err.Error(), `another gateway runs as node "a"`) || !strings.Contains(err.Error(), "give each its own -node") {
		t.Fatalf("a second gateway named a: run returned %v, want a refusal naming the node and -node", err)
	}
}

// TestClusterModeCreds runs a gateway on a NATS server that lets in only
// the user of a credentials file: with -nats-creds it works, without it
// it does not start.
func TestClusterModeCreds(t *testing.T) {
	t.Parallel()
	srv, creds := natstest.StartWithCreds(t)
	env := map[string]string{"GATEWAY_NATS": srv.URL(), "GATEWAY_DEMO_WORD_DELAY": "-1ns"}
	err := run(context.Background(), []string{"-addr", "127.0.0.1:0"}, func(k string) string { return env[k] }, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "Authorization Violation") {
		t.Fatalf("without credentials, run returned %v, want an authorization violation", err)
	}

	g := startRun(t, env, "-addr", "127.0.0.1:0", "-nats-creds", creds)
	c := conntest.Dial(t, g.URL, "/v1/ws")
	id := c.Call(&protocol.Create{ID: "c"}).Info.ID
	c.Request(&protocol.Send{ID: "m", Conversation: id, Text: "hello"})
	if end := c.ReadUntil(conntest.IsType(protocol.EventTurnEnd)); end[len(end)-1].StopReason != protocol.StopEndTurn {
		t.Fatalf("the turn ended %+v", end[len(end)-1])
	}
}
