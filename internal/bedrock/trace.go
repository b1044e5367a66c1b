package bedrock

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	semconv "go.opentelemetry.io/otel/semconv/v1.36.0"
	"go.opentelemetry.io/otel/trace"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

// Stream sends req to Bedrock with ConverseStream and emits the reply's
// text and reasoning as they arrive; the tool uses, assembled from their
// streamed fragments, come in the Result. Retryable failures
// before the first chunk are retried (see Options.MaxAttempts); any other
// failure is returned as a *protocol.Error with code model_error. When ctx
// is done, the HTTP stream is closed and the error wraps ctx.Err().
//
// The call is one span, a child of ctx's, with the OpenTelemetry GenAI
// attributes (system aws.bedrock, request model, tokens, finish reason),
// an event at the first chunk and one per retry.
func (c *Client) Stream(ctx context.Context, req convo.ModelRequest, emit func(convo.Chunk)) (convo.Result, error) {
	if c.tracer == nil {
		return c.stream(ctx, req, emit)
	}
	ctx, span := c.tracer.Start(ctx, "chat "+req.Model, trace.WithSpanKind(trace.SpanKindClient))
	defer span.End()
	if !span.IsRecording() {
		return c.stream(ctx, req, emit)
	}
	span.SetAttributes(semconv.GenAIOperationNameChat, semconv.GenAISystemAWSBedrock, semconv.GenAIRequestModel(req.Model))
	if req.MaxTokens != nil {
		span.SetAttributes(semconv.GenAIRequestMaxTokens(int(*req.MaxTokens)))
	}
	if req.Temperature != nil {
		span.SetAttributes(semconv.GenAIRequestTemperature(float64(*req.Temperature)))
	}
	first := true
	res, err := c.stream(ctx, req, func(ch convo.Chunk) {
		if first {
			first = false
			span.AddEvent("first chunk")
		}
		emit(ch)
	})
	if err != nil {
		code := protocol.AsError(err).Code
		if ctx.Err() != nil {
			code = "cancelled"
		}
		span.SetAttributes(semconv.ErrorTypeKey.String(code))
		span.SetStatus(codes.Error, err.Error())
		return res, err
	}
	span.SetAttributes(
		semconv.GenAIUsageInputTokens(int(res.Usage.InputTokens)),
		semconv.GenAIUsageOutputTokens(int(res.Usage.OutputTokens)),
		semconv.GenAIResponseFinishReasons(res.StopReason),
	)
	return res, nil
}

// retrying records on ctx's span that a failed attempt is retried after
// wait.
func retrying(ctx context.Context, attempt int, wait time.Duration, err error) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.AddEvent("retry", trace.WithAttributes(attribute.Int("attempt", attempt),
		attribute.Int64("wait_ms", wait.Milliseconds()), attribute.String("error", err.Error())))
}
