package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chatgateway/gateway/protocol"
)

// fuzzBodyLimit is the body limit of FuzzDecodeBody's API: small, so that
// the fuzzer reaches it too.
const fuzzBodyLimit = 512

// FuzzDecodeBody feeds any body to the decoders of the HTTP API's writes:
// create, send, approval and tool output (decodeRequest) and actions
// (decodeAction). Each must not panic, must fail with a *protocol.Error
// of code bad_request or too_large (too_large exactly when the body is
// over the limit), and on success return the request the route asked for,
// with the path's conversation and call and no request id, or an action
// with a name and valid JSON input and output.
func FuzzDecodeBody(f *testing.F) {
	for _, seed := range []string{
		``, ` `, `{}`, `[]`, `null`, `"text"`, `{"text":"hello"}`, `{"conversation":"trip","title":"Trip"}`,
		`{"text":"hi","client_msg_id":"k1","id":"r1","type":"cancel"}`, `{"text":5}`, `{"text":"a"} {"text":"b"}`,
		`{"approved":true}`, `{"approved":"yes"}`, `{"output":{"ok":1},"is_error":false}`,
		`{"name":"pick","input":{"a":[1,2]},"output":"x","turn":"t_1"}`, `{"name":""}`, `{"name":7}`,
		`{"name":"n","turn":null}`, "{\"text\":\"\xff\"}", `{"text":"\u0000"}`,
	} {
		f.Add([]byte(seed))
	}
	// A body right at the limit, and one byte over it.
	atLimit := `{"text":"` + strings.Repeat("a", fuzzBodyLimit-len(`{"text":""}`)) + `"}`
	f.Add([]byte(atLimit))
	f.Add([]byte(atLimit + " "))
	a := &api{opts: Options{MaxBodyBytes: fuzzBodyLimit, BodyTimeout: time.Minute}}
	routes := []struct {
		typ, conversation string
		set               []string
	}{
		{protocol.TypeCreate, "", nil},
		{protocol.TypeSend, "c_fuzz", nil},
		{protocol.TypeApprove, "c_fuzz", []string{"call", "k_fuzz"}},
		{protocol.TypeToolOutput, "c_fuzz", []string{"call", "k_fuzz"}},
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		tooLarge := len(body) > fuzzBodyLimit
		for _, rt := range routes {
			req, err := a.decodeRequest(httptest.NewRequest("POST", "/", bytes.NewReader(body)), rt.typ, rt.conversation, rt.set...)
			if checkBodyError(t, rt.typ, err, tooLarge) {
				continue
			}
			if req.Type() != rt.typ || req.RequestID() != "" {
				t.Fatalf("%s: decoded a %s with id %q", rt.typ, req.Type(), req.RequestID())
			}
			frame, err := protocol.EncodeRequest(req)
			if err != nil {
				t.Fatalf("%s: EncodeRequest: %v", rt.typ, err)
			}
			var fields map[string]any
			if err := json.Unmarshal(frame, &fields); err != nil {
				t.Fatalf("%s: %v", rt.typ, err)
			}
			if rt.conversation != "" && fields["conversation"] != rt.conversation {
				t.Fatalf("%s: conversation %v, not the path's", rt.typ, fields["conversation"])
			}
			if rt.set != nil && fields["call"] != rt.set[1] {
				t.Fatalf("%s: call %v, not the path's", rt.typ, fields["call"])
			}
		}
		act, err := a.decodeAction(httptest.NewRequest("POST", "/", bytes.NewReader(body)))
		if checkBodyError(t, "action", err, tooLarge) {
			return
		}
		if act.Name == "" {
			t.Fatal("action: decoded without a name")
		}
		for _, raw := range [][]byte{act.Input, act.Output} {
			if raw != nil && !json.Valid(raw) {
				t.Fatalf("action: invalid JSON %q", raw)
			}
		}
	})
}

// checkBodyError fails the test unless err, a decoder's for route, is
// nil or a *protocol.Error of code too_large when tooLarge and
// bad_request otherwise. It reports whether err is an error.
func checkBodyError(t *testing.T, route string, err error, tooLarge bool) bool {
	t.Helper()
	want := protocol.CodeBadRequest
	if tooLarge {
		want = protocol.CodeTooLarge
	}
	var perr *protocol.Error
	switch {
	case err == nil && tooLarge:
		t.Fatalf("%s: a body over the limit decoded", route)
	case err == nil:
		return false
	case !errors.As(err, &perr):
		t.Fatalf("%s: error %v is a %T, not a *protocol.Error", route, err, err)
	case perr.Code != want || perr.Message == "":
		t.Fatalf("%s: error %q: %q, want code %s", route, perr.Code, perr.Message, want)
	}
	return true
}
