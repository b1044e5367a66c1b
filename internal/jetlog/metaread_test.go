package jetlog_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/jetlog"
	"github.com/chatgateway/gateway/internal/jetlog/natstest"
	"github.com/chatgateway/gateway/protocol"
)

// longRecord is the size of the reply in the tests' newest records.
const longRecord = 900 << 10

// longOpts are the options of the tests' stores: reading a record of
// 900 KiB under -race on a busy machine may take more than a second.
var longOpts = jetlog.Options{Timeout: 10 * time.Second}

// appendDelta appends a delta of text to conversation id on s, creating
// it for owner if owner is not empty.
func appendDelta(t *testing.T, s *jetlog.Store, id, owner, text string) {
	t.Helper()
	ap := &convo.Append{Conversation: id, Build: func(*convo.Meta) ([]convo.Draft, error) {
		return []convo.Draft{{Event: &protocol.Event{Type: protocol.EventDelta, Turn: "t1", Text: text}}}, nil
	}}
	if owner != "" {
		ap.New = &convo.Meta{Owner: owner, Conversation: protocol.Conversation{ID: id, Model: "m", System: "be brief"}}
	}
	if _, err := s.Append(context.Background(), ap); err != nil {
		t.Fatal(err)
	}
}

// TestMetaReadsNotTheNewestRecord reads the metadata of a conversation
// whose newest record holds a reply of 900 KiB, on the gateway that
// stored it and, after a first read, on another: each read takes in a
// few KiB, not the record (before, every read took it in whole, and a
// subscribe reads the metadata twice). The reads still see what other
// gateways do: a record appended, a delete, a conversation created
// again under the id by another owner.
func TestMetaReadsNotTheNewestRecord(t *testing.T) {
	ctx := context.Background()
	srv := natstest.Start(t)
	a, b := openStoreWith(t, srv.URL(), "a", longOpts), openStoreWith(t, srv.URL(), "b", longOpts)
	const id = "c1"
	meta := func(s *jetlog.Store) (*convo.Meta, uint64, error) {
		t.Helper()
		before := s.Conn().Stats().InBytes
		m, err := s.Meta(ctx, id)
		return m, s.Conn().Stats().InBytes - before, err
	}
	appendDelta(t, a, id, "u", strings.Repeat("a", longRecord))
	if _, _, err := meta(b); err != nil { // b reads the newest record once
		t.Fatal(err)
	}
	for _, s := range []*jetlog.Store{a, b, b} {
		m, in, err := meta(s)
		if err != nil {
			t.Fatal(err)
		}
		if in > 16<<10 {
			t.Fatalf("a read of the metadata took in %d bytes", in)
		}
		if m.Owner != "u" || m.LastSeq != 1 || m.System != "be brief" {
			t.Fatalf("the metadata read is %+v", m)
		}
	}
	appendDelta(t, a, id, "", "more")
	if m, _, err := meta(b); err != nil || m.LastSeq != 2 || m.System != "be brief" {
		t.Fatalf("after another record on a, b reads %+v, %v", m, err)
	}
	if _, err := a.Delete(ctx, id, "u"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := meta(b); !errors.Is(err, convo.ErrNotFound) {
		t.Fatalf("after a delete on a, b reads the metadata: %v", err)
	}
	appendDelta(t, a, id, "v", "again")
	if m, _, err := meta(b); err != nil || m.Owner != "v" || m.LastSeq != 1 {
		t.Fatalf("after a create again on a, b reads %+v, %v", m, err)
	}
}

// TestFollowStartReadsNotTheNewestRecord follows, on gateway b, a
// conversation whose newest record (a reply of 900 KiB) b has read the
// metadata of: the follow starts after that record without reading it
// again, and reports the record a appends next. Before, each follow
// start read the newest record whole, only for its position and seq.
func TestFollowStartReadsNotTheNewestRecord(t *testing.T) {
	ctx := context.Background()
	srv := natstest.Start(t)
	a, b := openStoreWith(t, srv.URL(), "a", longOpts), openStoreWith(t, srv.URL(), "b", longOpts)
	onB := collect(b)
	const id = "c1"
	appendDelta(t, a, id, "u", strings.Repeat("a", longRecord))
	m, err := b.Meta(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	creates := watch(t, srv, "$JS.API.CONSUMER.CREATE."+jetlog.DefaultStream+".>")
	before := b.Conn().Stats().InBytes
	stop := b.Follow(id, m.LastSeq, m.CreatedAt)
	defer stop()
	// The follower asks for its consumer once it knows where to start,
	// and then reports a's next record.
	<-creates
	appendDelta(t, a, id, "", "more")
	if got := onB.waitKey(t, "2:more"); !slices.Equal(got, []string{"2:more"}) {
		t.Fatalf("b reported %v, want 2:more", got)
	}
	if in := b.Conn().Stats().InBytes - before; in > 64<<10 {
		t.Fatalf("a follow from the newest record took in %d bytes", in)
	}
}
