package boltlog

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Attributes of a commit's span.
const (
	attrOps    = attribute.Key("gateway.commit.ops")
	attrEvents = attribute.Key("gateway.commit.events")
)

// noSpan is the span of a commit while tracing is off: it records
// nothing, and returning it allocates nothing.
var noSpan trace.Span = noop.Span{}

// startCommitSpan starts the span of a commit that carries ops, linked to
// the span of each op's caller (a send's, for one). The commit is a trace
// of its own: it serves many requests, and belongs to none of them.
func (l *Log) startCommitSpan(ops []*op) trace.Span {
	if l.tracer == nil {
		return noSpan
	}
	_, span := l.tracer.Start(context.Background(), "commit")
	if !span.IsRecording() {
		return span
	}
	span.SetAttributes(attrOps.Int(len(ops)))
	for _, o := range ops {
		if sc := trace.SpanContextFromContext(o.ctx); sc.IsValid() {
			span.AddLink(trace.Link{SpanContext: sc})
		}
	}
	return span
}

// endCommitSpan ends a commit's span: it stored events, or failed with
// err.
func endCommitSpan(span trace.Span, events int, err error) {
	if span.IsRecording() {
		if err != nil {
			span.SetStatus(codes.Error, err.Error())
		} else {
			span.SetAttributes(attrEvents.Int(events))
		}
	}
	span.End()
}
