package bedrock_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/chatgateway/gateway/internal/bedrock"
	"github.com/chatgateway/gateway/internal/bedrock/fakebedrock"
	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

func TestModelCallSpan(t *testing.T) {
	throttled := fakebedrock.HTTPError{Status: 429, Type: "ThrottlingException", Message: "Too many requests"}
	srv := startFake(t, fakebedrock.FailFirst(1, throttled, fakebedrock.Reply{
		Chunks: []string{"Hel", "lo"}, StopReason: "max_tokens", Usage: fakebedrock.Usage{InputTokens: 12, OutputTokens: 2}}))
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	c := newClient(t, srv, bedrock.Options{TracerProvider: tp})

	ctx, parent := tp.Tracer("test").Start(context.Background(), "turn")
	req := ask("hi")
	maxTokens := int32(64)
	req.MaxTokens = &maxTokens
	if _, err := c.Stream(ctx, req, func(convo.Chunk) {}); err != nil {
		t.Fatal(err)
	}
	parent.End()

	spans := rec.Ended()
	if len(spans) != 2 {
		t.Fatalf("%d spans ended, want the model call's and its parent's", len(spans))
	}
	call := spans[0]
	if call.Name() != "chat "+testModel || call.SpanKind() != trace.SpanKindClient || call.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("model call span %q, kind %v, parent %v; want \"chat %s\", client, the turn", call.Name(), call.SpanKind(), call.Parent().SpanID(), testModel)
	}
	want := map[attribute.Key]attribute.Value{
		"gen_ai.operation.name":          attribute.StringValue("chat"),
		"gen_ai.system":                  attribute.StringValue("aws.bedrock"),
		"gen_ai.request.model":           attribute.StringValue(testModel),
		"gen_ai.request.max_tokens":      attribute.IntValue(64),
		"gen_ai.usage.input_tokens":      attribute.IntValue(12),
		"gen_ai.usage.output_tokens":     attribute.IntValue(2),
		"gen_ai.response.finish_reasons": attribute.StringSliceValue([]string{protocol.StopMaxTokens}),
	}
	got := map[attribute.Key]attribute.Value{}
	for _, kv := range call.Attributes() {
		got[kv.Key] = kv.Value
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("attribute %s = %v, want %v", k, got[k].String(), v.String())
		}
	}
	var events []string
	for _, e := range call.Events() {
		events = append(events, e.Name)
	}
	if len(events) != 2 || events[0] != "retry" || events[1] != "first chunk" {
		t.Errorf("events %v, want [retry first chunk]", events)
	}
}

func TestModelCallSpanError(t *testing.T) {
	srv := startFake(t, fakebedrock.Always(fakebedrock.Reply{Error: &fakebedrock.HTTPError{Status: 403, Type: "AccessDeniedException", Message: "no"}}))
	rec := tracetest.NewSpanRecorder()
	c := newClient(t, srv, bedrock.Options{TracerProvider: sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))})
	if _, _, err := stream(t, c, ask("hi")); err == nil {
		t.Fatal("the call succeeded")
	}
	spans := rec.Ended()
	if len(spans) != 1 || spans[0].Status().Code != codes.Error {
		t.Fatalf("spans %v, want one with an error status", spans)
	}
}
