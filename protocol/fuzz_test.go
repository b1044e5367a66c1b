package protocol_test

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/chatgateway/gateway/protocol"
)

// maxSeedLen keeps the megabyte table cases out of the fuzz seeds: the
// fuzzer mutates small inputs far faster, and the table covers the big ones.
const maxSeedLen = 64 << 10

var knownCodes = map[string]bool{
	protocol.CodeBadRequest: true, protocol.CodeUnknownType: true, protocol.CodeTooLarge: true,
	protocol.CodeNotFound: true, protocol.CodeForbidden: true, protocol.CodeUnauthorized: true,
	protocol.CodeRateLimited: true, protocol.CodeBusy: true, protocol.CodeModelError: true,
	protocol.CodeUnavailable: true, protocol.CodeInternal: true,
}

// FuzzDecodeClientFrame checks, for any input, that DecodeClientFrame does
// not panic, that a request it returns is well-formed and survives
// EncodeRequest unchanged, and that its errors are *protocol.Error values
// with a known code. The seeds are the table cases and testdata/fuzz.
func FuzzDecodeClientFrame(f *testing.F) {
	for _, tc := range decodeCases {
		if len(tc.in) <= maxSeedLen {
			f.Add([]byte(tc.in))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		req, id, err := protocol.DecodeClientFrame(data)
		if len(id) > protocol.MaxRequestIDLen {
			t.Fatalf("id of %d bytes returned", len(id))
		}
		if err != nil {
			var perr *protocol.Error
			if !errors.As(err, &perr) {
				t.Fatalf("error %v is a %T, not a *protocol.Error", err, err)
			}
			if !knownCodes[perr.Code] {
				t.Fatalf("unknown error code %q", perr.Code)
			}
			if req != nil {
				t.Fatalf("request %T returned with error %v", req, err)
			}
			return
		}
		checkRequest(t, req, id)
		frame, err := protocol.EncodeRequest(req)
		if err != nil {
			t.Fatalf("EncodeRequest(%#v): %v", req, err)
		}
		again, againID, err := protocol.DecodeClientFrame(frame)
		if err != nil {
			t.Fatalf("re-decoding %s: %v", frame, err)
		}
		if againID != id || !reflect.DeepEqual(again, req) {
			t.Fatalf("round trip changed the request:\nfirst  %#v\nframe  %s\nsecond %#v", req, frame, again)
		}
	})
}

// checkRequest asserts what holds for every request DecodeClientFrame
// accepts: a known type, the id it returned, and valid conversation ids
// (required ones present, optional ones empty or valid).
func checkRequest(t *testing.T, req protocol.Request, id string) {
	t.Helper()
	if req == nil {
		t.Fatal("nil request without an error")
	}
	if req.RequestID() != id {
		t.Fatalf("RequestID() = %q, returned id %q", req.RequestID(), id)
	}
	var conv string
	required := true
	switch r := req.(type) {
	case *protocol.Send:
		conv, required = r.Conversation, false
		if r.Text == "" {
			t.Fatal("send with empty text")
		}
		if len(r.ClientMsgID) > protocol.MaxRequestIDLen {
			t.Fatalf("client_msg_id of %d bytes", len(r.ClientMsgID))
		}
	case *protocol.Create:
		conv, required = r.Conversation, false
		if r.MaxTokens != nil && *r.MaxTokens < 1 {
			t.Fatalf("max_tokens %d", *r.MaxTokens)
		}
		if r.Temperature != nil && (*r.Temperature < 0 || *r.Temperature > 1) {
			t.Fatalf("temperature %v", *r.Temperature)
		}
		if r.Agent != "" {
			checkName(t, r.Agent)
			if r.Model != "" || r.System != "" {
				t.Fatalf("create with agent %q and model %q or system %q", r.Agent, r.Model, r.System)
			}
		}
	case *protocol.Subscribe:
		conv = r.Conversation
		// In UTC, so that it compares and encodes as the gateway's own.
		if r.CreatedAt.Location() != time.UTC || r.CreatedAt.Year() < 0 || r.CreatedAt.Year() > 9999 {
			t.Fatalf("created_at %v", r.CreatedAt)
		}
	case *protocol.Unsubscribe:
		conv = r.Conversation
	case *protocol.Cancel:
		conv = r.Conversation
	case *protocol.Delete:
		conv = r.Conversation
	case *protocol.History:
		conv = r.Conversation
		if r.Limit < 1 || r.Limit > protocol.MaxHistoryLimit {
			t.Fatalf("history limit %d", r.Limit)
		}
	case *protocol.Approve:
		conv = r.Conversation
		checkCallID(t, r.Call)
		if len(r.Reason) > protocol.MaxReasonLen {
			t.Fatalf("reason of %d bytes", len(r.Reason))
		}
	case *protocol.ToolOutput:
		conv = r.Conversation
		checkCallID(t, r.Call)
		if (r.Output == nil) == (r.Error == "") {
			t.Fatalf("tool_output with output %q and error %q", r.Output, r.Error)
		}
	case *protocol.List, *protocol.Ping, *protocol.Agents:
		return
	default:
		t.Fatalf("unknown request type %T (Type() %q)", req, req.Type())
	}
	if (required || conv != "") && !protocol.ValidConversationID(conv) {
		t.Fatalf("%s request with conversation %q", req.Type(), conv)
	}
}

// checkName asserts that an accepted agent name is valid.
func checkName(t *testing.T, name string) {
	t.Helper()
	if !protocol.ValidName(name) {
		t.Fatalf("name %q accepted", name)
	}
}

// checkCallID asserts that an accepted call id is valid.
func checkCallID(t *testing.T, id string) {
	t.Helper()
	if !protocol.ValidCallID(id) {
		t.Fatalf("call id %q accepted", id)
	}
}
