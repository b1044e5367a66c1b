package protocol_test

import (
	"encoding/json"
	"testing"

	"github.com/chatgateway/gateway/protocol"
)

// BenchmarkDecodeClientFrame decodes a typical send frame.
func BenchmarkDecodeClientFrame(b *testing.B) {
	frame := []byte(`{"type":"send","id":"r-123","conversation":"conv-1","text":"What is the capital of France?","client_msg_id":"c-42"}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	for b.Loop() {
		if _, _, err := protocol.DecodeClientFrame(frame); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeEvent encodes a delta event, the most frequent frame.
func BenchmarkEncodeEvent(b *testing.B) {
	ev := &protocol.Event{Type: protocol.EventDelta, Conversation: "conv-1", Seq: 42, TS: t0,
		Turn: "turn-1", Text: "The capital of France is"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(ev); err != nil {
			b.Fatal(err)
		}
	}
}
