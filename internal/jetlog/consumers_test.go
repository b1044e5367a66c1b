package jetlog_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/chatgateway/gateway/internal/jetlog"
	"github.com/chatgateway/gateway/internal/jetlog/natstest"
)

// TestListingBeyondTheServersDefaultConsumers lists a user's
// conversations while as many other listings (consumers of the metadata
// bucket's stream) are open as the server allows a stream that sets no
// limit of its own: nats-server's default is 1,000 (here 10, reached
// sooner), which a thousand users' lists at once across a cluster would
// reach, and the next listing would fail. Every bucket is set up alike
// (Open); this one is what users wait on.
func TestListingBeyondTheServersDefaultConsumers(t *testing.T) {
	const limit = 10
	srv := natstest.StartWith(t, func(o *server.Options) { o.JetStreamLimits.DefaultMaxConsumers = limit })
	l := connect(t, srv.URL(), jetlog.Options{})
	js := rawJetStream(t, srv)
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, jetlog.DefaultStream+"_meta")
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Name)
	if err != nil {
		t.Fatal(err)
	}
	for i := range limit {
		// Each outlives the test: an idle one would go after five seconds.
		if _, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{InactiveThreshold: time.Hour}); err != nil {
			t.Fatalf("consumer %d: %v", i+1, err)
		}
	}
	if _, err := l.Owned(ctx, "alice"); err != nil {
		t.Fatalf("list alice's conversations: %v", err)
	}
}
