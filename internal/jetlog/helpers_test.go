package jetlog_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chatgateway/gateway/internal/jetlog"
	"github.com/chatgateway/gateway/internal/jetlog/natstest"
)

// open starts a JetStream server and opens a Log on it.
func open(t *testing.T, opts jetlog.Options) (*jetlog.Log, *natstest.Server) {
	t.Helper()
	srv := natstest.Start(t)
	return connect(t, srv.URL(), opts), srv
}

// connect opens a Log on the servers at urls, with a connection of its own.
func connect(t *testing.T, urls string, opts jetlog.Options) *jetlog.Log {
	t.Helper()
	nc, err := nats.Connect(urls, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	l, err := jetlog.Open(context.Background(), nc, opts)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// rec is a record of frames from seq on.
func rec(seq uint64, frames ...string) *jetlog.Record {
	r := &jetlog.Record{Seq: seq}
	for _, f := range frames {
		r.Frames = append(r.Frames, []byte(f))
	}
	return r
}

// rawJetStream connects to srv (with opts) with a JetStream client of
// the test's own, to look at or set up what jetlog keeps there.
func rawJetStream(t *testing.T, srv *natstest.Server, opts ...nats.Option) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(srv.URL(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// leaseBucket opens, with a connection of the test's own, the bucket on
// srv that holds the turn leases and the claims of node names.
func leaseBucket(t *testing.T, srv *natstest.Server) jetstream.KeyValue {
	t.Helper()
	kv, err := rawJetStream(t, srv).KeyValue(context.Background(), jetlog.DefaultStream+"_leases")
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

// expire ends key (a turn lease, or a node's claim) on srv, as the
// bucket's TTL ends the keys of a gateway that died: another gateway may
// take the lease, or the name.
func expire(t *testing.T, srv *natstest.Server, key string) {
	t.Helper()
	if err := leaseBucket(t, srv).Purge(context.Background(), key); err != nil {
		t.Fatal(err)
	}
}

// blockFollowers fills srv's stream up to a limit of one consumer, so that
// the followers a gateway starts (see Store.Follow) keep trying and
// report nothing, until unblockFollowers.
func blockFollowers(t *testing.T, srv *natstest.Server) {
	t.Helper()
	st := setMaxConsumers(t, srv, 1)
	if _, err := st.CreateConsumer(context.Background(), jetstream.ConsumerConfig{InactiveThreshold: time.Hour}); err != nil {
		t.Fatal(err)
	}
}

// unblockFollowers lifts blockFollowers' limit: the followers start.
func unblockFollowers(t *testing.T, srv *natstest.Server) {
	t.Helper()
	setMaxConsumers(t, srv, -1)
}

// setMaxConsumers sets the consumer limit of srv's stream to n.
func setMaxConsumers(t *testing.T, srv *natstest.Server, n int) jetstream.Stream {
	t.Helper()
	ctx := context.Background()
	js := rawJetStream(t, srv)
	st, err := js.Stream(ctx, jetlog.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	cfg.MaxConsumers = n
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	return st
}

// watch subscribes a connection of the test's own to subjects on srv,
// all into one channel, in the order the server sends them: the server
// hands it a copy of each message on those subjects, JetStream API
// requests included.
func watch(t *testing.T, srv *natstest.Server, subjects ...string) <-chan *nats.Msg {
	t.Helper()
	nc, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	seen := make(chan *nats.Msg, 1024)
	for _, subj := range subjects {
		if _, err := nc.ChanSubscribe(subj, seen); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return seen
}
