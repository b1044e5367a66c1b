package convo

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.36.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/chatgateway/gateway/protocol"
)

// Attributes of a turn's span.
const (
	attrConversation = attribute.Key("gateway.conversation.id")
	attrTurn         = attribute.Key("gateway.turn.id")
	attrModel        = attribute.Key("gateway.turn.model")
	attrStopReason   = attribute.Key("gateway.turn.stop_reason")
	// attrToolStatus is a call's status when it starts (running, or
	// awaiting an approval or a client), attrToolResult its result's.
	attrToolStatus = attribute.Key("gateway.tool.status")
	attrToolResult = attribute.Key("gateway.tool.result")
)

// noSpan is the span of a turn or a tool call while tracing is off: it
// records nothing, and returning it allocates nothing.
var noSpan trace.Span = noop.Span{}

// startTurnSpan starts the span of turn turnID of conversation id, once
// it is open (an early turn's as its send is being stored): it lasts
// until the turn_end is stored, and the model's calls are its children.
func (s *Service) startTurnSpan(ctx context.Context, id, turnID, model string) (context.Context, trace.Span) {
	if s.tracer == nil {
		return ctx, noSpan
	}
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

// turnNotOpened records on a turn's span that its send did not open it:
// its model call was cancelled and nothing of it stored (see earlyTurn).
func turnNotOpened(span trace.Span) {
	if span.IsRecording() {
		span.SetStatus(codes.Error, "not opened")
	}
}

// startToolSpan starts the span of tool call c, a child of the turn's:
// from the call stored to its result stored, waits for an approval or a
// client's output included. It has the GenAI semantic-convention
// attributes of a tool execution.
func (s *Service) startToolSpan(ctx context.Context, c *call) (context.Context, trace.Span) {
	if s.tracer == nil {
		return ctx, noSpan
	}
	ctx, span := s.tracer.Start(ctx, "execute_tool "+c.use.Name, trace.WithSpanKind(trace.SpanKindInternal))
	if span.IsRecording() {
		span.SetAttributes(semconv.GenAIOperationNameExecuteTool, semconv.GenAIToolName(c.use.Name),
			semconv.GenAIToolCallID(c.use.ID), semconv.GenAIToolType(c.tool.Kind), attrToolStatus.String(c.status))
	}
	return ctx, span
}

// endToolSpan ends a tool call's span with its outcome.
func endToolSpan(span trace.Span, out ToolOutcome) {
	if span.IsRecording() {
		span.SetAttributes(attrToolResult.String(out.Status))
		if out.Status != protocol.ResultOK {
			span.SetStatus(codes.Error, out.Status)
		}
	}
	span.End()
}
