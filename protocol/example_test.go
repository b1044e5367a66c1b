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

// A client answers an agent's tool calls: it approves a call that awaits
// approval, and gives a client tool's output. The gateway replies
// "accepted", then the call's tool_approval and tool_result events follow.
func ExampleEncodeRequest_agent() {
	frame, _ := protocol.EncodeRequest(&protocol.Approve{ID: "a1", Conversation: "conv-3", Call: "tooluse_2", Approved: true})
	fmt.Println(string(frame))
	frame, _ = protocol.EncodeRequest(&protocol.ToolOutput{ID: "a2", Conversation: "conv-3", Call: "tooluse_4",
		Output: json.RawMessage(`{"confirmed":true}`)})
	fmt.Println(string(frame))
	// Output:
	// {"type":"approve","id":"a1","conversation":"conv-3","call":"tooluse_2","approved":true}
	// {"type":"tool_output","id":"a2","conversation":"conv-3","call":"tooluse_4","output":{"confirmed":true}}
}

// A Go client follows an agent's turn: each tool_call is answered by
// exactly one tool_result, before the turn_end.
func ExampleServerFrame_agent() {
	frames := []string{
		`{"type":"turn_start","conversation":"conv-3","seq":2,"ts":"2026-11-26T09:30:00Z","turn":"t1","model":"demo","agent":"support"}`,
		`{"type":"tool_call","conversation":"conv-3","seq":3,"ts":"2026-11-26T09:30:00Z","turn":"t1","call":"c1","name":"lookup_order","input":{"id":"1234"},"step":1,"status":"running"}`,
		`{"type":"tool_call","conversation":"conv-3","seq":4,"ts":"2026-11-26T09:30:00Z","turn":"t1","call":"c2","name":"refund","input":{},"step":1,"status":"awaiting_approval"}`,
		`{"type":"tool_progress","conversation":"conv-3","seq":5,"ts":"2026-11-26T09:30:00Z","turn":"t1","call":"c1","progress":1,"total":2,"message":"halfway"}`,
		`{"type":"tool_result","conversation":"conv-3","seq":6,"ts":"2026-11-26T09:30:01Z","turn":"t1","call":"c1","name":"lookup_order","status":"ok","output":{"status":"shipped"},"duration_ms":40}`,
		`{"type":"tool_approval","conversation":"conv-3","seq":7,"ts":"2026-11-26T09:30:02Z","turn":"t1","call":"c2","approved":false,"by":"user-7"}`,
		`{"type":"tool_result","conversation":"conv-3","seq":8,"ts":"2026-11-26T09:30:02Z","turn":"t1","call":"c2","name":"refund","status":"denied","error":"denied by the user","duration_ms":0}`,
		`{"type":"turn_end","conversation":"conv-3","seq":9,"ts":"2026-11-26T09:30:03Z","turn":"t1","stop_reason":"end_turn","steps":2,` +
			`"message":{"id":"m2","seq":9,"role":"assistant","text":"Shipped.","turn":"t1","created_at":"2026-11-26T09:30:03Z"},"usage":{"input_tokens":90,"output_tokens":12}}`,
	}
	for _, line := range frames {
		var f protocol.ServerFrame
		if err := json.Unmarshal([]byte(line), &f); err != nil {
			panic(err)
		}
		switch f.Type {
		case protocol.EventTurnStart:
			fmt.Printf("agent %s on %s\n", f.Agent, f.Model)
		case protocol.EventToolCall:
			fmt.Printf("step %d: %s %s %s\n", f.Step, f.Name, f.Input, f.Status)
		case protocol.EventToolProgress:
			fmt.Printf("%s: %v of %v, %s\n", f.Call, *f.Progress, *f.Total, f.ProgressMessage())
		case protocol.EventToolApproval:
			fmt.Printf("%s approved: %v by %s\n", f.Call, *f.Approved, f.By)
		case protocol.EventToolResult:
			fmt.Printf("%s %s: %s%s\n", f.Name, f.Status, f.Output, f.ToolError)
		case protocol.EventTurnEnd:
			fmt.Printf("%s after %d steps: %q\n", f.StopReason, f.Steps, f.StoredMessage().Text)
		}
	}
	// Output:
	// agent support on demo
	// step 1: lookup_order {"id":"1234"} running
	// step 1: refund {} awaiting_approval
	// c1: 1 of 2, halfway
	// lookup_order ok: {"status":"shipped"}
	// c2 approved: false by user-7
	// refund denied: denied by the user
	// end_turn after 2 steps: "Shipped."
}
