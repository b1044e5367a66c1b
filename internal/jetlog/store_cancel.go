package jetlog

import (
	"context"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/chatgateway/gateway/internal/convo"
)

var _ convo.Canceller = (*Store)(nil)

// cancelSubject is the core NATS subject (not in the stream) on which a
// cancel of conversation id's turn goes to every gateway, or with id "*"
// the wildcard that every gateway subscribes to.
func (s *Store) cancelSubject(id string) string {
	return s.log.stream + ".cancel." + id
}

// OnCancel implements convo.Canceller: one subscription per gateway to the
// cancels of every conversation. fn gets each on the connection's
// delivery goroutine.
func (s *Store) OnCancel(fn func(conversation, turn string)) error {
	prefix := s.cancelSubject("")
	_, err := s.nc.Subscribe(s.cancelSubject("*"), func(msg *nats.Msg) {
		fn(untoken(strings.TrimPrefix(msg.Subject, prefix)), string(msg.Data))
	})
	if err != nil {
		return fmt.Errorf("jetlog: subscribe to cancels: %w", err)
	}
	return nil
}

// Cancel implements convo.Canceller: it publishes the cancel and waits
// until the NATS server has it (a round trip), which then passes it on to
// every gateway connected. Core NATS delivers it at most once: a gateway
// cut off meanwhile does not get it, and loses its lease.
func (s *Store) Cancel(ctx context.Context, conversation, turn string) error {
	if err := s.nc.Publish(s.cancelSubject(token(conversation)), []byte(turn)); err != nil {
		return unavailable(err)
	}
	ctx, cancel := s.log.reqCtx(ctx)
	defer cancel()
	if err := s.nc.FlushWithContext(ctx); err != nil {
		return unavailable(err)
	}
	return nil
}
