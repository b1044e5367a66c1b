package convo_test

import (
	"context"
	"path/filepath"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/convo/boltlog"
	"github.com/chatgateway/gateway/protocol"
)

// spanModel is scriptModel recording the span it is called under.
type spanModel struct {
	scriptModel
	called chan trace.SpanContext
}

func (m *spanModel) Stream(ctx context.Context, req convo.ModelRequest, emit func(convo.Chunk)) (convo.Result, error) {
	m.called <- trace.SpanContextFromContext(ctx)
	return m.scriptModel.Stream(ctx, req, emit)
}

// TestTraces sends a message under a span and checks the spans that
// follow: the commit that stored the message is linked to the send's
// span, and the turn's span names the turn, is the model call's parent
// and records the stop reason.
func TestTraces(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	model := &spanModel{called: make(chan trace.SpanContext, 1)}
	svc, err := boltlog.OpenService(filepath.Join(t.TempDir(), "gateway.db"), boltlog.Options{}, model,
		convo.Config{DefaultModel: "test-model", Logger: testLogger(t), TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	ctx, sendSpan := tp.Tracer("test").Start(context.Background(), "send")
	sub := newRecorder(64)
	ack := send(t, ctxSender{svc, ctx}, "", "hello", sub)
	sendSpan.End()
	sub.until(t, protocol.EventTurnEnd)
	modelParent := <-model.called
	if err := svc.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	var commitLinked, turn sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		switch s.Name() {
		case "commit":
			for _, l := range s.Links() {
				if l.SpanContext.SpanID() == sendSpan.SpanContext().SpanID() {
					commitLinked = s
				}
			}
		case "turn":
			turn = s
		}
	}
	if commitLinked == nil {
		t.Fatal("no commit span is linked to the send's span")
	}
	if commitLinked.Parent().IsValid() {
		t.Errorf("the commit span has a parent, %v; want a trace of its own", commitLinked.Parent())
	}
	if turn == nil {
		t.Fatal("no turn span")
	}
	if modelParent.SpanID() != turn.SpanContext().SpanID() {
		t.Errorf("the model was called under span %v, want the turn's %v", modelParent.SpanID(), turn.SpanContext().SpanID())
	}
	got := map[attribute.Key]string{}
	for _, kv := range turn.Attributes() {
		got[kv.Key] = kv.Value.String()
	}
	if got["gateway.conversation.id"] != ack.Conversation || got["gateway.turn.id"] != ack.Message.Turn ||
		got["gateway.turn.model"] != "test-model" || got["gateway.turn.stop_reason"] != protocol.StopEndTurn {
		t.Errorf("turn span attributes %v, want conversation %s, turn %s, model test-model, stop reason end_turn", got, ack.Conversation, ack.Message.Turn)
	}
}

// ctxSender sends with its own context.
type ctxSender struct {
	svc *convo.Service
	ctx context.Context
}

func (s ctxSender) Send(_ context.Context, user string, req *protocol.Send, sub convo.Subscriber) (*protocol.Ack, error) {
	return s.svc.Send(s.ctx, user, req, sub)
}
