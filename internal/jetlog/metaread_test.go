package jetlog_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/jetlog"
	"github.com/chatgateway/gateway/internal/jetlog/natstest"
	"github.com/chatgateway/gateway/protocol"
)

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
	open := func(node string) *jetlog.Store {
		s, err := jetlog.OpenStore(ctx, srv.URL(), jetlog.StoreOptions{Node: node, Logger: slog.New(slog.DiscardHandler),
			Options: jetlog.Options{Timeout: 10 * time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		s.Start(func([]convo.Committed) {})
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	a, b := open("a"), open("b")
	const id = "c1"
	appendDelta := func(owner, text string) {
		t.Helper()
		ap := &convo.Append{Conversation: id, Build: func(*convo.Meta) ([]convo.Draft, error) {
			return []convo.Draft{{Event: &protocol.Event{Type: protocol.EventDelta, Turn: "t1", Text: text}}}, nil
		}}
		if owner != "" {
			ap.New = &convo.Meta{Owner: owner, Conversation: protocol.Conversation{ID: id, Model: "m", System: "be brief"}}
		}
		if _, err := a.Append(ctx, ap); err != nil {
			t.Fatal(err)
		}
	}
	meta := func(s *jetlog.Store) (*convo.Meta, uint64, error) {
		t.Helper()
		before := s.Conn().Stats().InBytes
		m, err := s.Meta(ctx, id)
		return m, s.Conn().Stats().InBytes - before, err
	}
	const long = 900 << 10
	appendDelta("u", strings.Repeat("a", long))
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
	appendDelta("", "more")
	if m, _, err := meta(b); err != nil || m.LastSeq != 2 || m.System != "be brief" {
		t.Fatalf("after another record on a, b reads %+v, %v", m, err)
	}
	if _, err := a.Delete(ctx, id, "u"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := meta(b); !errors.Is(err, convo.ErrNotFound) {
		t.Fatalf("after a delete on a, b reads the metadata: %v", err)
	}
	appendDelta("v", "again")
	if m, _, err := meta(b); err != nil || m.Owner != "v" || m.LastSeq != 1 {
		t.Fatalf("after a create again on a, b reads %+v, %v", m, err)
	}
}
