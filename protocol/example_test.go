package protocol_test

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/chatgateway/gateway/protocol"
)

// A gateway decodes each text frame into a typed request and switches on
// its type.
func ExampleDecodeClientFrame() {
	frame := []byte(`{"type":"subscribe","id":"r1","conversation":"conv-1","after":7}`)
	req, id, err := protocol.DecodeClientFrame(frame)
	if err != nil {
		panic(err)
	}
	switch r := req.(type) {
	case *protocol.Subscribe:
		fmt.Printf("%s %s after %d (reply id %q)\n", r.Type(), r.Conversation, r.After, id)
	case *protocol.Send:
		fmt.Println("send", r.Text)
	}
	// Output:
	// subscribe conv-1 after 7 (reply id "r1")
}

// A bad frame gives a *protocol.Error naming the field at fault, and the
// request id when it could be read, which the error frame repeats.
func ExampleDecodeClientFrame_error() {
	_, id, err := protocol.DecodeClientFrame([]byte(`{"type":"send","id":"r2","text":42}`))
	reply, _ := json.Marshal(protocol.NewErrorReply(id, "", protocol.AsError(err)))
	fmt.Println(string(reply))

	_, id, err = protocol.DecodeClientFrame([]byte(`{"type":"shout","id":"r3"}`))
	fmt.Println(id, protocol.AsError(err).Code)
	// Output:
	// {"type":"error","id":"r2","code":"bad_request","message":"text: must be a string"}
	// r3 unknown_type
}

// A Go client builds requests as structs; EncodeRequest adds the "type".
func ExampleEncodeRequest() {
	frame, err := protocol.EncodeRequest(&protocol.Send{ID: "r1", Conversation: "conv-1", Text: "Hello!", ClientMsgID: "c-42"})
	if err != nil {
		panic(err)
	}
	fmt.Println(string(frame))

	frame, _ = protocol.EncodeRequest(&protocol.History{Conversation: "conv-1", Limit: 20})
	fmt.Println(string(frame))
	// Output:
	// {"type":"send","id":"r1","conversation":"conv-1","text":"Hello!","client_msg_id":"c-42"}
	// {"type":"history","conversation":"conv-1","limit":20}
}

// A Go client decodes every frame it receives, reply or event, into a
// ServerFrame and switches on Type.
func ExampleServerFrame() {
	frames := []string{
		`{"type":"ack","id":"r1","conversation":"conv-1","message":{"id":"m1","seq":1,"role":"user","text":"Hi","turn":"t1","created_at":"2026-11-26T09:30:00Z"}}`,
		`{"type":"turn_start","conversation":"conv-1","seq":2,"ts":"2026-11-26T09:30:00.1Z","turn":"t1","model":"demo"}`,
		`{"type":"delta","conversation":"conv-1","seq":3,"ts":"2026-11-26T09:30:00.2Z","turn":"t1","text":"Hello "}`,
		`{"type":"delta","conversation":"conv-1","seq":4,"ts":"2026-11-26T09:30:00.3Z","turn":"t1","text":"there."}`,
		`{"type":"turn_end","conversation":"conv-1","seq":5,"ts":"2026-11-26T09:30:00.4Z","turn":"t1","stop_reason":"end_turn",` +
			`"message":{"id":"m2","seq":5,"role":"assistant","text":"Hello there.","turn":"t1","created_at":"2026-11-26T09:30:00.4Z"},` +
			`"usage":{"input_tokens":9,"output_tokens":3},"latency_ms":120}`,
		`{"type":"error","id":"r2","code":"not_found","message":"conversation not found"}`,
	}
	var text strings.Builder
	for _, line := range frames {
		var f protocol.ServerFrame
		if err := json.Unmarshal([]byte(line), &f); err != nil {
			panic(err)
		}
		switch f.Type {
		case protocol.ReplyAck:
			fmt.Printf("ack %s: stored %q as seq %d\n", f.ID, f.StoredMessage().Text, f.StoredMessage().Seq)
		case protocol.EventDelta:
			text.WriteString(f.Text)
		case protocol.EventTurnEnd:
			m := f.StoredMessage()
			fmt.Printf("turn %s: %s, streamed %q, stored %q, first chunk after %d ms\n",
				f.Turn, f.StopReason, text.String(), m.Text, *f.LatencyMS)
		case protocol.ReplyError:
			fmt.Printf("error %s: %s: %s\n", f.ID, f.Code, f.ErrorMessage())
		default:
			fmt.Printf("%s seq %d\n", f.Type, f.Seq)
		}
	}
	// Output:
	// ack r1: stored "Hi" as seq 1
	// turn_start seq 2
	// turn t1: end_turn, streamed "Hello there.", stored "Hello there.", first chunk after 120 ms
	// error r2: not_found: conversation not found
}
