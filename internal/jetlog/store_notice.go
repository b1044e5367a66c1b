package jetlog

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/chatgateway/gateway/internal/convo"
)

var (
	_ convo.Canceller      = (*Store)(nil)
	_ convo.DeleteNotifier = (*Store)(nil)
)

// Kinds of notice, each a subject of its own.
const (
	noticeCancel = "cancel"
	noticeDelete = "delete"
)

// noticeSubject is the core NATS subject (not in the stream) on which a
// notice of kind about conversation id goes to every gateway, or with id
// "*" the wildcard that every gateway subscribes to.
func (s *Store) noticeSubject(kind, id string) string {
	return s.log.stream + "." + kind + "." + id
}

// onNotice subscribes, once per gateway, to the notices of kind about
// every conversation; fn gets each, with its data, one at a time on the
// subscription's own goroutine (nats.go runs one per subscription).
func (s *Store) onNotice(kind string, fn func(conversation string, data []byte)) error {
	prefix := s.noticeSubject(kind, "")
	_, err := s.nc.Subscribe(s.noticeSubject(kind, "*"), func(msg *nats.Msg) {
		fn(untoken(strings.TrimPrefix(msg.Subject, prefix)), msg.Data)
	})
	if err != nil {
		return fmt.Errorf("jetlog: subscribe to %s notices: %w", kind, err)
	}
	return nil
}

// notice publishes a notice of kind about conversation and waits until
// the NATS server has it (a round trip), which then passes it on to every
// gateway connected. Core NATS delivers it at most once: a gateway cut
// off meanwhile does not get it.
func (s *Store) notice(ctx context.Context, kind, conversation string, data []byte) error {
	if err := s.nc.Publish(s.noticeSubject(kind, token(conversation)), data); err != nil {
		return unavailable(err)
	}
	ctx, cancel := s.log.reqCtx(ctx)
	defer cancel()
	if err := s.nc.FlushWithContext(ctx); err != nil {
		return unavailable(err)
	}
	return nil
}

// OnCancel implements convo.Canceller.
func (s *Store) OnCancel(fn func(conversation, turn string)) error {
	return s.onNotice(noticeCancel, func(id string, data []byte) { fn(id, string(data)) })
}

// Cancel implements convo.Canceller: a gateway cut off from NATS when
// it is published does not get it, and loses its lease.
func (s *Store) Cancel(ctx context.Context, conversation, turn string) error {
	return s.notice(ctx, noticeCancel, conversation, []byte(turn))
}

// deleteNotice is the data of a delete notice. Gateways before it had
// data sent none and ignore any: a notice without created_at, or one
// that is not JSON, says only which id was deleted.
type deleteNotice struct {
	// CreatedAt is the deleted conversation's creation time, which tells
	// it from one created again under its id.
	CreatedAt time.Time `json:"created_at,omitzero"`
}

// OnDeleted implements convo.DeleteNotifier.
func (s *Store) OnDeleted(fn func(conversation string, created time.Time)) error {
	return s.onNotice(noticeDelete, func(id string, data []byte) {
		var n deleteNotice
		_ = json.Unmarshal(data, &n) // none, or not ours: the id alone
		fn(id, n.CreatedAt)
	})
}

// NotifyDeleted implements convo.DeleteNotifier.
func (s *Store) NotifyDeleted(ctx context.Context, conversation string, created time.Time) error {
	var data []byte
	if !created.IsZero() {
		data, _ = json.Marshal(deleteNotice{CreatedAt: created}) // a time always marshals
	}
	return s.notice(ctx, noticeDelete, conversation, data)
}
