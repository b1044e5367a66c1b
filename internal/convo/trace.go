package convo

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/chatgateway/gateway/protocol"
)

// Attributes of a turn's span.
const (
	attrConversation = attribute.Key("gateway.conversation.id")
	attrTurn         = attribute.Key("gateway.turn.id")
	attrModel        = attribute.Key("gateway.turn.model")
	attrStopReason   = attribute.Key("gateway.turn.stop_reason")
)

// startTurnSpan starts the span of turn turnID of conversation id, once
// it is open: it lasts until the turn_end is stored, and the model's
// calls are its children.
func (s *Service) startTurnSpan(ctx context.Context, id, turnID, model string) (context.Context, trace.Span) {
	ctx, span := s.tracer.Start(ctx, "turn")
	if span.IsRecording() {
		span.SetAttributes(attrConversation.String(id), attrTurn.String(turnID), attrModel.String(model))
	}
	return ctx, span
}

// turnEnded records on ctx's span how the turn ended.
func turnEnded(ctx context.Context, end *protocol.Event) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(attrStopReason.String(end.StopReason))
	if end.Error != nil {
		span.SetStatus(codes.Error, end.Error.Code)
	}
}
