package conn

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/chatgateway/gateway/protocol"
)

// Span attributes of a send. The conversation is the one the ack names
// (a new one for a send that created it).
const (
	attrConversation = attribute.Key("gateway.conversation.id")
	attrMessageSeq   = attribute.Key("gateway.message.seq")
	attrTextBytes    = attribute.Key("gateway.message.text_bytes")
	attrErrorCode    = attribute.Key("gateway.error.code")
)

// noSpan is the span of a send while tracing is off: it records
// nothing, and returning it allocates nothing.
var noSpan trace.Span = noop.Span{}

// startSend starts the span of a send whose frame was read at read: it
// covers decoding, the commit that makes the message durable (linked from
// the commit's own span), and queueing the ack.
func (c *conn) startSend(ctx context.Context, r *protocol.Send, read time.Time) (context.Context, trace.Span) {
	if c.h.tracer == nil {
		return ctx, noSpan
	}
	ctx, span := c.h.tracer.Start(ctx, "send", trace.WithTimestamp(read), trace.WithSpanKind(trace.SpanKindServer))
	if span.IsRecording() {
		span.AddEvent("decoded")
		span.SetAttributes(attrTextBytes.Int(len(r.Text)))
		if r.Conversation != "" {
			span.SetAttributes(attrConversation.String(r.Conversation))
		}
	}
	return ctx, span
}

// sent records how a send ended: its message durable, or refused.
func sent(span trace.Span, ack *protocol.Ack, err error) {
	if !span.IsRecording() {
		return
	}
	if err != nil {
		code := protocol.AsError(err).Code
		span.SetAttributes(attrErrorCode.String(code))
		span.SetStatus(codes.Error, code)
		return
	}
	span.AddEvent("durable")
	span.SetAttributes(attrConversation.String(ack.Conversation))
	if ack.Message != nil {
		span.SetAttributes(attrMessageSeq.Int64(int64(ack.Message.Seq)))
	}
}
