package conn_test

import (
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/chatgateway/gateway/internal/conn"
	"github.com/chatgateway/gateway/internal/conn/conntest"
	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

// attrs maps a span's attributes by key.
func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

// eventNames lists a span's events.
func eventNames(s sdktrace.ReadOnlySpan) []string {
	var names []string
	for _, e := range s.Events() {
		names = append(names, e.Name)
	}
	return names
}

func TestSendSpan(t *testing.T) {
	t.Parallel()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	s := conntest.Start(t, conntest.Config{Convo: convo.Config{MaxTextBytes: 8}, Conn: conn.Options{TracerProvider: tp}})
	c := s.Dial(t, "")
	ack := c.Call(&protocol.Send{ID: "s1", Text: "hello"})
	tooLarge := c.Call(&protocol.Send{ID: "s2", Text: "far too long a message"})
	if ack.Type != protocol.ReplyAck || tooLarge.Type != protocol.ReplyError {
		t.Fatalf("replies %s, %s; want an ack and an error", ack.Type, tooLarge.Type)
	}
	// The reader serves one request at a time: once the pong is read,
	// both sends' spans have ended.
	c.Call(&protocol.Ping{ID: "p"})

	var sends []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == "send" {
			sends = append(sends, s)
		}
	}
	if len(sends) != 2 {
		t.Fatalf("%d send spans ended, want 2", len(sends))
	}
	ok, failed := sends[0], sends[1]
	if ok.SpanKind() != trace.SpanKindServer || ok.Status().Code != codes.Unset {
		t.Errorf("send span: kind %v, status %v; want server, unset", ok.SpanKind(), ok.Status())
	}
	if got := eventNames(ok); len(got) != 2 || got[0] != "decoded" || got[1] != "durable" {
		t.Errorf("send span events %v, want [decoded durable]", got)
	}
	a := attrs(ok)
	if a["gateway.conversation.id"].AsString() != ack.Conversation || a["gateway.message.seq"].AsInt64() != 1 ||
		a["gateway.message.text_bytes"].AsInt64() != 5 {
		t.Errorf("send span attributes %v, want conversation %s, seq 1, 5 bytes", a, ack.Conversation)
	}
	if failed.Status().Code != codes.Error || attrs(failed)["gateway.error.code"].AsString() != protocol.CodeTooLarge {
		t.Errorf("failed send span: status %v, attributes %v; want an error with code %s", failed.Status(), attrs(failed), protocol.CodeTooLarge)
	}
	if got := eventNames(failed); len(got) != 1 {
		t.Errorf("failed send span events %v, want only decoded", got)
	}
}
