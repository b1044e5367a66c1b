package protocol_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/chatgateway/gateway/protocol"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*.json from the frames the code makes")

const goldenDir = "testdata/golden"

// Fixed times, so the golden files do not change from run to run.
var (
	t0 = time.Date(2026, 11, 26, 9, 30, 0, 123456789, time.UTC)
	t1 = t0.Add(1500 * time.Millisecond)
)

var (
	userMsg = &protocol.Message{ID: "msg-u1", Seq: 1, Role: protocol.RoleUser,
		Text: "Hello!", Turn: "turn-1", CreatedAt: t0}
	assistantMsg = &protocol.Message{ID: "msg-a1", Seq: 5, Role: protocol.RoleAssistant,
		Text: "Hi there.", Turn: "turn-1", CreatedAt: t1}
	convInfo = protocol.Conversation{ID: "conv-1", Title: "Hello!", Model: "demo",
		CreatedAt: t0, UpdatedAt: t1, LastSeq: 5}
	convTuned = protocol.Conversation{ID: "conv-2", Title: "Haiku", System: "Answer in haiku.",
		Model: "anthropic.claude-3-haiku-20240307-v1:0", CreatedAt: t0, UpdatedAt: t0,
		MaxTokens: new(int32(256)), Temperature: new(float32(0.25))}
	convAgent = protocol.Conversation{ID: "conv-3", Title: "Order 1234", Agent: "support",
		Model: "anthropic.claude-3-5-haiku-20241022-v1:0", CreatedAt: t0, UpdatedAt: t1, LastSeq: 12}
	agentSupport = protocol.AgentInfo{Name: "support", Description: "Answers questions about orders",
		Model: "anthropic.claude-3-5-haiku-20241022-v1:0", Tools: []protocol.ToolInfo{
			{Name: "lookup_order", Description: "Look up an order by its id", Kind: protocol.ToolKindHTTP},
			{Name: "confirm", Description: "Ask the person to confirm", Kind: protocol.ToolKindClient},
			{Name: "files__read_file", Description: "Read a file", Kind: protocol.ToolKindMCP}}}
)

// serverFrames are every reply and event the gateway sends, by golden name.
var serverFrames = []struct {
	name  string
	frame any
}{
	{"reply_ack", &protocol.Ack{Type: protocol.ReplyAck, ID: "r1", Conversation: "conv-1", Message: userMsg}},
	{"reply_subscribed", &protocol.Subscribed{Type: protocol.ReplySubscribed, ID: "r2", Conversation: "conv-1", Seq: 5, CreatedAt: t0}},
	{"reply_history", &protocol.HistoryReply{Type: protocol.ReplyHistory, ID: "r3", Conversation: "conv-1",
		Messages: []protocol.Message{*userMsg, *assistantMsg}, HasMore: true}},
	{"reply_history_empty", &protocol.HistoryReply{Type: protocol.ReplyHistory, Conversation: "conv-1"}},
	{"reply_conversations", &protocol.ConversationsReply{Type: protocol.ReplyConversations, ID: "r4",
		Conversations: []protocol.Conversation{convInfo, convTuned}}},
	{"reply_conversations_empty", &protocol.ConversationsReply{Type: protocol.ReplyConversations}},
	{"reply_conversations_more", &protocol.ConversationsReply{Type: protocol.ReplyConversations, ID: "r7",
		Conversations: []protocol.Conversation{convInfo},
		Next:          "1764840600123456789.conv-9"}},
	{"reply_created", &protocol.Created{Type: protocol.ReplyCreated, ID: "r5", Conversation: "conv-2", Info: &convTuned}},
	{"reply_unsubscribed", &protocol.Done{Type: protocol.ReplyUnsubscribed, ID: "r6", Conversation: "conv-1"}},
	{"reply_cancelled", &protocol.Done{Type: protocol.ReplyCancelled, ID: "r7", Conversation: "conv-1"}},
	{"reply_deleted", &protocol.Done{Type: protocol.ReplyDeleted, ID: "r8", Conversation: "conv-1"}},
	{"reply_pong", &protocol.Done{Type: protocol.ReplyPong, ID: "r9"}},
	{"reply_error", protocol.NewErrorReply("r10", "conv-9", protocol.Errorf(protocol.CodeNotFound, "conversation not found"))},
	{"reply_error_rate_limited", protocol.NewErrorReply("r11", "", &protocol.Error{Code: protocol.CodeRateLimited,
		Message: "too many messages, slow down", RetryAfterMS: 1200})},
	{"event_message", &protocol.Event{Type: protocol.EventMessage, Conversation: "conv-1", Seq: 1, TS: t0, Message: userMsg}},
	{"event_turn_start", &protocol.Event{Type: protocol.EventTurnStart, Conversation: "conv-1", Seq: 2, TS: t0,
		Turn: "turn-1", Model: "demo"}},
	{"event_delta", &protocol.Event{Type: protocol.EventDelta, Conversation: "conv-1", Seq: 3, TS: t0, Turn: "turn-1", Text: "Hi "}},
	{"event_thinking", &protocol.Event{Type: protocol.EventThinking, Conversation: "conv-1", Seq: 3, TS: t0,
		Turn: "turn-1", Text: "The user greets me."}},
	{"event_action", &protocol.Event{Type: protocol.EventAction, Conversation: "conv-1", Seq: 4, TS: t0, Turn: "turn-1",
		Name: "search", Input: json.RawMessage(`{"query":"weather"}`), Output: json.RawMessage(`{"results":[]}`)}},
	{"event_turn_end", &protocol.Event{Type: protocol.EventTurnEnd, Conversation: "conv-1", Seq: 5, TS: t1, Turn: "turn-1",
		StopReason: protocol.StopEndTurn, Message: assistantMsg,
		Usage: &protocol.Usage{InputTokens: 12, OutputTokens: 3}, LatencyMS: new(int64(180))}},
	{"event_turn_end_cancelled", &protocol.Event{Type: protocol.EventTurnEnd, Conversation: "conv-1", Seq: 9, TS: t1, Turn: "turn-2",
		StopReason: protocol.StopCancelled, Usage: &protocol.Usage{InputTokens: 20, OutputTokens: 1}, LatencyMS: new(int64(95)),
		Message: &protocol.Message{ID: "msg-a2", Seq: 9, Role: protocol.RoleAssistant, Text: "Well", Turn: "turn-2", CreatedAt: t1}}},
	{"reply_agents", &protocol.AgentsReply{Type: protocol.ReplyAgents, ID: "r12", Agents: []protocol.AgentInfo{
		agentSupport, {Name: "plain", Model: "demo"}}}},
	{"reply_agents_empty", &protocol.AgentsReply{Type: protocol.ReplyAgents}},
	{"reply_accepted", &protocol.Accepted{Type: protocol.ReplyAccepted, ID: "r13", Conversation: "conv-3", Call: "tooluse_1"}},
	{"reply_created_agent", &protocol.Created{Type: protocol.ReplyCreated, ID: "r14", Conversation: "conv-3", Info: &convAgent}},
	{"event_turn_start_agent", &protocol.Event{Type: protocol.EventTurnStart, Conversation: "conv-3", Seq: 2, TS: t0,
		Turn: "turn-1", Model: "anthropic.claude-3-5-haiku-20241022-v1:0", Agent: "support"}},
	{"event_tool_call", &protocol.Event{Type: protocol.EventToolCall, Conversation: "conv-3", Seq: 4, TS: t0, Turn: "turn-1",
		Call: "tooluse_1", Name: "lookup_order", Input: json.RawMessage(`{"id":"1234"}`), Step: 1, Status: protocol.CallRunning}},
	{"event_tool_call_awaiting_approval", &protocol.Event{Type: protocol.EventToolCall, Conversation: "conv-3", Seq: 4, TS: t0,
		Turn: "turn-1", Call: "tooluse_2", Name: "refund", Input: json.RawMessage(`{}`), Step: 2, Status: protocol.CallAwaitingApproval}},
	{"event_tool_approval", &protocol.Event{Type: protocol.EventToolApproval, Conversation: "conv-3", Seq: 5, TS: t0, Turn: "turn-1",
		Call: "tooluse_2", Approved: new(false), By: "user-7", Reason: "not this one"}},
	{"event_tool_progress", &protocol.Event{Type: protocol.EventToolProgress, Conversation: "conv-3", Seq: 6, TS: t0, Turn: "turn-1",
		Call: "tooluse_3", Progress: new(0.0), Total: new(10.0), ProgressMessage: "starting"}},
	{"event_tool_result", &protocol.Event{Type: protocol.EventToolResult, Conversation: "conv-3", Seq: 7, TS: t1, Turn: "turn-1",
		Call: "tooluse_1", Name: "lookup_order", Status: protocol.ResultOK, Output: json.RawMessage(`{"status":"shipped"}`),
		DurationMS: new(int64(42))}},
	{"event_tool_result_error", &protocol.Event{Type: protocol.EventToolResult, Conversation: "conv-3", Seq: 8, TS: t1, Turn: "turn-1",
		Call: "tooluse_2", Name: "refund", Status: protocol.ResultDenied, ToolError: "denied by the user", DurationMS: new(int64(0))}},
	{"event_turn_end_max_steps", &protocol.Event{Type: protocol.EventTurnEnd, Conversation: "conv-3", Seq: 12, TS: t1, Turn: "turn-1",
		StopReason: protocol.StopMaxSteps, Steps: 10, Usage: &protocol.Usage{InputTokens: 900, OutputTokens: 120}, LatencyMS: new(int64(210)),
		Message: &protocol.Message{ID: "msg-a4", Seq: 12, Role: protocol.RoleAssistant, Text: "Let me look.", Turn: "turn-1", CreatedAt: t1}}},
	{"event_turn_end_error", &protocol.Event{Type: protocol.EventTurnEnd, Conversation: "conv-1", Seq: 12, TS: t1, Turn: "turn-3",
		StopReason: protocol.StopError, Usage: &protocol.Usage{},
		Message: &protocol.Message{ID: "msg-a3", Seq: 12, Role: protocol.RoleAssistant, Text: "", Turn: "turn-3", CreatedAt: t1},
		Error:   protocol.Errorf(protocol.CodeModelError, "the model is throttling requests")}},
}

// clientRequests are every request type as EncodeRequest writes it.
var clientRequests = []struct {
	name string
	req  protocol.Request
}{
	{"request_send", &protocol.Send{ID: "r1", Conversation: "conv-1", Text: "Hello!", ClientMsgID: "c-42"}},
	{"request_send_new_conversation", &protocol.Send{Text: "Hello!"}},
	{"request_subscribe", &protocol.Subscribe{ID: "r2", Conversation: "conv-1", After: 4}},
	{"request_subscribe_created_at", &protocol.Subscribe{ID: "r2", Conversation: "conv-1", After: 4, CreatedAt: t0}},
	{"request_unsubscribe", &protocol.Unsubscribe{Conversation: "conv-1"}},
	{"request_cancel", &protocol.Cancel{Conversation: "conv-1"}},
	{"request_history", &protocol.History{ID: "r3", Conversation: "conv-1", Before: 20, Limit: 10}},
	{"request_list", &protocol.List{Limit: protocol.DefaultListLimit}},
	{"request_list_page", &protocol.List{ID: "r7", Before: "1764840600123456789.conv-9", Limit: 20}},
	{"request_create", &protocol.Create{ID: "r4", Conversation: "conv-2", Title: "Haiku", System: "Answer in haiku.",
		Model: "anthropic.claude-3-haiku-20240307-v1:0", MaxTokens: new(int32(256)), Temperature: new(float32(0.25))}},
	{"request_delete", &protocol.Delete{Conversation: "conv-1"}},
	{"request_ping", &protocol.Ping{ID: "r5"}},
	{"request_create_agent", &protocol.Create{ID: "r6", Conversation: "conv-3", Title: "Order 1234", Agent: "support"}},
	{"request_agents", &protocol.Agents{ID: "r7"}},
	{"request_approve", &protocol.Approve{ID: "r8", Conversation: "conv-3", Call: "tooluse_2", Approved: true}},
	{"request_approve_denied", &protocol.Approve{Conversation: "conv-3", Call: "tooluse_2", Reason: "not this one"}},
	{"request_tool_output", &protocol.ToolOutput{ID: "r9", Conversation: "conv-3", Call: "tooluse_4", Output: json.RawMessage(`{"confirmed":true}`)}},
	{"request_tool_output_error", &protocol.ToolOutput{Conversation: "conv-3", Call: "tooluse_4", Error: "the person closed the dialog"}},
}

// TestGoldenServerFrames pins the JSON of every reply and event, and checks
// that ServerFrame reads each golden file back.
func TestGoldenServerFrames(t *testing.T) {
	for _, tc := range serverFrames {
		t.Run(tc.name, func(t *testing.T) {
			wire, err := json.Marshal(tc.frame)
			if err != nil {
				t.Fatal(err)
			}
			golden := checkGolden(t, tc.name, wire)

			var f protocol.ServerFrame
			if err := json.Unmarshal(golden, &f); err != nil {
				t.Fatalf("ServerFrame cannot decode the golden file: %v", err)
			}
			want := expectFrame(t, &f, tc.frame)
			f.Message = nil // checked by expectFrame through the helpers
			compactRaw(t, &f.Input)
			compactRaw(t, &f.Output)
			if !reflect.DeepEqual(f, want) {
				t.Errorf("ServerFrame decoded\n%+v\nwant\n%+v", f, want)
			}
		})
	}
}

// TestGoldenEventsRoundTrip checks that every golden event decodes into
// the Event it was made from: convo reads its log back this way.
func TestGoldenEventsRoundTrip(t *testing.T) {
	for _, tc := range serverFrames {
		want, ok := tc.frame.(*protocol.Event)
		if !ok {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			golden, err := os.ReadFile(filepath.Join(goldenDir, tc.name+".json"))
			if err != nil {
				t.Fatal(err)
			}
			var got protocol.Event
			if err := json.Unmarshal(golden, &got); err != nil {
				t.Fatalf("decode: %v", err)
			}
			compactRaw(t, &got.Input)
			compactRaw(t, &got.Output)
			if !reflect.DeepEqual(&got, want) {
				t.Errorf("decoded\n%+v\nwant\n%+v", got, *want)
			}
		})
	}
}

// expectFrame returns the ServerFrame that frame should decode to, with
// Message left out: it checks f.StoredMessage or f.ErrorMessage instead.
func expectFrame(t *testing.T, f *protocol.ServerFrame, frame any) protocol.ServerFrame {
	t.Helper()
	checkStored := func(want *protocol.Message) {
		t.Helper()
		if got := f.StoredMessage(); !reflect.DeepEqual(got, want) {
			t.Errorf("StoredMessage() = %+v, want %+v", got, want)
		}
	}
	switch v := frame.(type) {
	case *protocol.Ack:
		checkStored(v.Message)
		return protocol.ServerFrame{Type: v.Type, ID: v.ID, Conversation: v.Conversation}
	case *protocol.Subscribed:
		return protocol.ServerFrame{Type: v.Type, ID: v.ID, Conversation: v.Conversation, Seq: v.Seq, CreatedAt: v.CreatedAt}
	case *protocol.HistoryReply:
		// An empty history is [] on the wire, so it decodes to an empty,
		// non-nil slice.
		return protocol.ServerFrame{Type: v.Type, ID: v.ID, Conversation: v.Conversation,
			Messages: emptyIfNil(v.Messages), HasMore: v.HasMore}
	case *protocol.ConversationsReply:
		return protocol.ServerFrame{Type: v.Type, ID: v.ID, Conversations: emptyIfNil(v.Conversations), Next: v.Next}
	case *protocol.Created:
		return protocol.ServerFrame{Type: v.Type, ID: v.ID, Conversation: v.Conversation, Info: v.Info}
	case *protocol.Done:
		return protocol.ServerFrame{Type: v.Type, ID: v.ID, Conversation: v.Conversation}
	case *protocol.AgentsReply:
		agents := emptyIfNil(v.Agents)
		for i := range agents {
			agents[i].Tools = emptyIfNil(agents[i].Tools)
		}
		return protocol.ServerFrame{Type: v.Type, ID: v.ID, Agents: agents}
	case *protocol.Accepted:
		return protocol.ServerFrame{Type: v.Type, ID: v.ID, Conversation: v.Conversation, Call: v.Call}
	case *protocol.ErrorReply:
		if got := f.ErrorMessage(); got != v.Message {
			t.Errorf("ErrorMessage() = %q, want %q", got, v.Message)
		}
		checkStored(nil)
		return protocol.ServerFrame{Type: v.Type, ID: v.ID, Conversation: v.Conversation, Code: v.Code, RetryAfterMS: v.RetryAfterMS}
	case *protocol.Event:
		if v.Type == protocol.EventToolProgress {
			if got := f.ProgressMessage(); got != v.ProgressMessage {
				t.Errorf("ProgressMessage() = %q, want %q", got, v.ProgressMessage)
			}
		} else {
			checkStored(v.Message)
		}
		return protocol.ServerFrame{Type: v.Type, Conversation: v.Conversation, Seq: v.Seq, TS: v.TS,
			Turn: v.Turn, Model: v.Model, Text: v.Text, Name: v.Name, Input: v.Input, Output: v.Output,
			StopReason: v.StopReason, Usage: v.Usage, LatencyMS: v.LatencyMS, Error: v.Error,
			Agent: v.Agent, Steps: v.Steps, Call: v.Call, Step: v.Step, Status: v.Status, Approved: v.Approved,
			By: v.By, Reason: v.Reason, Progress: v.Progress, Total: v.Total, DurationMS: v.DurationMS,
			ToolError: v.ToolError}
	}
	t.Fatalf("no expectation for %T", frame)
	return protocol.ServerFrame{}
}

// TestGoldenRequests pins EncodeRequest's JSON for every request type and
// checks that DecodeClientFrame reads each golden file back.
func TestGoldenRequests(t *testing.T) {
	for _, tc := range clientRequests {
		t.Run(tc.name, func(t *testing.T) {
			wire, err := protocol.EncodeRequest(tc.req)
			if err != nil {
				t.Fatal(err)
			}
			golden := checkGolden(t, tc.name, wire)
			got, id, err := protocol.DecodeClientFrame(golden)
			if err != nil {
				t.Fatalf("DecodeClientFrame(golden): %v", err)
			}
			want := tc.req
			if h, ok := want.(*protocol.History); ok && h.Limit == 0 {
				want = &protocol.History{ID: h.ID, Conversation: h.Conversation, Before: h.Before, Limit: protocol.DefaultHistoryLimit}
			}
			if !reflect.DeepEqual(got, want) || id != want.RequestID() {
				t.Errorf("decoded %#v (id %q), want %#v", got, id, want)
			}
		})
	}
}

// TestGoldenFilesAreUsed fails on a golden file no test writes, such as
// one left behind by a renamed case.
func TestGoldenFilesAreUsed(t *testing.T) {
	names := map[string]bool{}
	for _, tc := range serverFrames {
		names[tc.name+".json"] = true
	}
	for _, tc := range clientRequests {
		names[tc.name+".json"] = true
	}
	files, err := os.ReadDir(goldenDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !names[f.Name()] {
			t.Errorf("%s/%s belongs to no test case", goldenDir, f.Name())
		}
	}
}

// checkGolden compares wire, indented for review, with the golden file
// name (rewriting it under -update) and returns the file's content.
func checkGolden(t *testing.T, name string, wire []byte) []byte {
	t.Helper()
	var indented bytes.Buffer
	if err := json.Indent(&indented, wire, "", "  "); err != nil {
		t.Fatalf("not JSON: %v: %s", err, wire)
	}
	indented.WriteByte('\n')
	path := filepath.Join(goldenDir, name+".json")
	if *update {
		if err := os.MkdirAll(goldenDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, indented.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	golden, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./protocol -run Golden -update)", err)
	}
	if !bytes.Equal(golden, indented.Bytes()) {
		t.Errorf("%s changed; the wire format is a contract. Got:\n%s\nwant:\n%s\n"+
			"If the change is intended, run go test ./protocol -run Golden -update and review the diff.",
			path, indented.Bytes(), golden)
	}
	return golden
}

// emptyIfNil is what the replies' MarshalJSON methods put on the wire for nil.
func emptyIfNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// compactRaw removes the indentation a golden file adds to a raw value.
func compactRaw(t *testing.T, raw *json.RawMessage) {
	t.Helper()
	if len(*raw) == 0 {
		return
	}
	var b bytes.Buffer
	if err := json.Compact(&b, *raw); err != nil {
		t.Fatal(err)
	}
	*raw = b.Bytes()
}
