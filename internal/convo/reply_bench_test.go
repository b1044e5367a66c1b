package convo_test

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/convo/boltlog"
	"github.com/chatgateway/gateway/protocol"
)

// replyChunks and replyTurns shape BenchmarkReply's turns as the load
// generator's: 20 chunks a reply, 5 turns a conversation.
const (
	replyChunks = 20
	replyTurns  = 5
)

// pacedModel answers with replyChunks chunks, each emitted once the one
// before reached the subscriber as its own delta: a reply's chunks one
// commit each, as a gateway whose model is slower than its disk stores
// them.
type pacedModel struct {
	delivered chan struct{}
}

func (m *pacedModel) Stream(ctx context.Context, _ convo.ModelRequest, emit func(convo.Chunk)) (convo.Result, error) {
	for range replyChunks {
		emit(convo.Chunk{Kind: convo.ChunkText, Text: "@1733300000000000000#000001"})
		select {
		case <-m.delivered:
		case <-ctx.Done():
			return convo.Result{}, ctx.Err()
		}
	}
	return convo.Result{StopReason: protocol.StopEndTurn}, nil
}

// replySubscriber tells the model of each delta it is sent, and the
// benchmark of each turn_end.
type replySubscriber struct {
	delivered, ends chan struct{}
}

var deltaStart = []byte(`{"type":"` + protocol.EventDelta + `"`)

func (r *replySubscriber) Send(f convo.Frame) bool {
	switch {
	case bytes.HasPrefix(f.Data, deltaStart):
		r.delivered <- struct{}{}
	case bytes.Contains(f.Data, turnEndType):
		r.ends <- struct{}{}
	}
	return true
}

func (r *replySubscriber) SendWait(_ context.Context, f convo.Frame) error { r.Send(f); return nil }

func (*replySubscriber) Gone(string) {}

// BenchmarkReply measures one turn of a plain conversation on the bbolt
// log (fsync included), as its one subscriber, the sender, sees it: the
// send, and a reply of replyChunks chunks, one delta each, to its
// turn_end. Conversations take replyTurns turns each, so that a turn
// reads, and the hub keeps, a history as the load generator's do. Its
// allocations are the gateway's per turn, the Log's included.
func BenchmarkReply(b *testing.B) {
	sub := &replySubscriber{delivered: make(chan struct{}, 1), ends: make(chan struct{}, 1)}
	svc, err := boltlog.OpenService(filepath.Join(b.TempDir(), "db"), boltlog.Options{}, &pacedModel{delivered: sub.delivered},
		convo.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { svc.Close(context.Background()) })
	ctx := context.Background()
	id := ""
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i%replyTurns == 0 && id != "" {
			svc.Unsubscribe(id, sub)
			id = ""
		}
		ack, err := svc.Send(ctx, "u", &protocol.Send{Conversation: id, Text: "go on"}, sub)
		if err != nil {
			b.Fatal(err)
		}
		id = ack.Conversation
		<-sub.ends
		// The runner is done too: the next send opens its turn early,
		// as a send to an idle conversation does.
		if err := svc.WaitTurns(ctx); err != nil {
			b.Fatal(err)
		}
	}
}
