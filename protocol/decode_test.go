package protocol_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/chatgateway/gateway/protocol"
)

// decodeCase is one client frame and what DecodeClientFrame must make of it:
// either want (the request) or code and msg (the error), and always id.
type decodeCase struct {
	name string
	in   string
	want protocol.Request
	code string
	// msg is a part of the error message: "field: " for an error about a
	// field, so the test checks that the message names it.
	msg string
	id  string
}

var (
	id64    = strings.Repeat("i", protocol.MaxRequestIDLen)
	id65    = strings.Repeat("i", protocol.MaxRequestIDLen+1)
	conv128 = strings.Repeat("c", protocol.MaxConversationIDLen)
	conv129 = strings.Repeat("c", protocol.MaxConversationIDLen+1)
	huge    = strings.Repeat("x", 1<<20)
	// nested100k is 100,000 nested arrays, beyond encoding/json's depth
	// limit of 10,000, which it reports as a syntax error.
	nested100k = strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000)
	nested1k   = strings.Repeat("[", 1000) + strings.Repeat("]", 1000)
)

var decodeCases = []decodeCase{
	// Every request type, with and without its optional fields.
	{name: "send minimal", in: `{"type":"send","text":"hello"}`,
		want: &protocol.Send{Text: "hello"}},
	{name: "send every field", in: `{"type":"send","id":"r1","conversation":"c-1","text":"hi","client_msg_id":"m1"}`,
		want: &protocol.Send{ID: "r1", Conversation: "c-1", Text: "hi", ClientMsgID: "m1"}, id: "r1"},
	{name: "send escapes and non-ASCII text", in: `{"type":"send","text":"line\nbreak \u00e9 😀 \"q\""}`,
		want: &protocol.Send{Text: "line\nbreak é 😀 \"q\""}},
	{name: "send lone surrogate becomes U+FFFD", in: `{"type":"send","text":"\ud800"}`,
		want: &protocol.Send{Text: "\uFFFD"}},
	{name: "send 1 MiB text", in: `{"type":"send","text":"` + huge + `"}`,
		want: &protocol.Send{Text: huge}},
	{name: "subscribe minimal", in: `{"type":"subscribe","conversation":"c1"}`,
		want: &protocol.Subscribe{Conversation: "c1"}},
	{name: "subscribe after", in: `{"type":"subscribe","id":"s","conversation":"c1","after":42}`,
		want: &protocol.Subscribe{ID: "s", Conversation: "c1", After: 42}, id: "s"},
	{name: "subscribe after max uint64", in: `{"type":"subscribe","conversation":"c1","after":18446744073709551615}`,
		want: &protocol.Subscribe{Conversation: "c1", After: 1<<64 - 1}},
	{name: "subscribe created_at", in: `{"type":"subscribe","conversation":"c1","after":5,"created_at":"2026-11-26T09:30:00.123456789Z"}`,
		want: &protocol.Subscribe{Conversation: "c1", After: 5, CreatedAt: time.Date(2026, 11, 26, 9, 30, 0, 123456789, time.UTC)}},
	{name: "subscribe created_at without fraction", in: `{"type":"subscribe","conversation":"c1","created_at":"2026-11-26T09:30:00Z"}`,
		want: &protocol.Subscribe{Conversation: "c1", CreatedAt: time.Date(2026, 11, 26, 9, 30, 0, 0, time.UTC)}},
	{name: "subscribe created_at with an offset is taken in UTC", in: `{"type":"subscribe","conversation":"c1","created_at":"2026-11-26T10:30:00.1+01:00"}`,
		want: &protocol.Subscribe{Conversation: "c1", CreatedAt: time.Date(2026, 11, 26, 9, 30, 0, 100000000, time.UTC)}},
	{name: "subscribe created_at null counts as absent", in: `{"type":"subscribe","conversation":"c1","created_at":null}`,
		want: &protocol.Subscribe{Conversation: "c1"}},
	{name: "subscribe created_at empty counts as absent", in: `{"type":"subscribe","conversation":"c1","created_at":""}`,
		want: &protocol.Subscribe{Conversation: "c1"}},
	{name: "unsubscribe", in: `{"type":"unsubscribe","id":"u","conversation":"c1"}`,
		want: &protocol.Unsubscribe{ID: "u", Conversation: "c1"}, id: "u"},
	{name: "cancel", in: `{"type":"cancel","conversation":"c1"}`,
		want: &protocol.Cancel{Conversation: "c1"}},
	{name: "history minimal gets the default limit", in: `{"type":"history","conversation":"c1"}`,
		want: &protocol.History{Conversation: "c1", Limit: protocol.DefaultHistoryLimit}},
	{name: "history every field", in: `{"type":"history","id":"h","conversation":"c1","before":10,"limit":20}`,
		want: &protocol.History{ID: "h", Conversation: "c1", Before: 10, Limit: 20}, id: "h"},
	{name: "history limit 0 means default", in: `{"type":"history","conversation":"c1","limit":0}`,
		want: &protocol.History{Conversation: "c1", Limit: protocol.DefaultHistoryLimit}},
	{name: "history limit 500", in: `{"type":"history","conversation":"c1","limit":500}`,
		want: &protocol.History{Conversation: "c1", Limit: 500}},
	{name: "history limit 501 clamped", in: `{"type":"history","conversation":"c1","limit":501}`,
		want: &protocol.History{Conversation: "c1", Limit: protocol.MaxHistoryLimit}},
	{name: "history limit huge clamped", in: `{"type":"history","conversation":"c1","limit":1000000}`,
		want: &protocol.History{Conversation: "c1", Limit: protocol.MaxHistoryLimit}},
	{name: "history limit beyond int64 clamped", in: `{"type":"history","conversation":"c1","limit":100000000000000000000000000000}`,
		want: &protocol.History{Conversation: "c1", Limit: protocol.MaxHistoryLimit}},
	{name: "list", in: `{"type":"list"}`, want: &protocol.List{Limit: protocol.DefaultListLimit}},
	{name: "list with id", in: `{"type":"list","id":"l"}`, want: &protocol.List{ID: "l", Limit: protocol.DefaultListLimit}, id: "l"},
	{name: "list page", in: `{"type":"list","before":"c","limit":7}`, want: &protocol.List{Before: "c", Limit: 7}},
	{name: "list limit above the max", in: `{"type":"list","limit":1e3}`, code: protocol.CodeBadRequest, msg: "limit"},
	{name: "list limit far above the max", in: `{"type":"list","limit":99999999999999999999}`, want: &protocol.List{Limit: protocol.MaxListLimit}},
	{name: "list cursor too long", in: `{"type":"list","before":"` + strings.Repeat("c", protocol.MaxCursorLen+1) + `"}`, code: protocol.CodeBadRequest, msg: "before"},
	{name: "create empty", in: `{"type":"create"}`, want: &protocol.Create{}},
	{name: "create every field", in: `{"type":"create","id":"c","conversation":"my.chat_1","title":"T","system":"Be brief.","model":"m","max_tokens":1024,"temperature":0.5}`,
		want: &protocol.Create{ID: "c", Conversation: "my.chat_1", Title: "T", System: "Be brief.", Model: "m",
			MaxTokens: new(int32(1024)), Temperature: new(float32(0.5))}, id: "c"},
	{name: "create temperature bounds", in: `{"type":"create","max_tokens":1,"temperature":1}`,
		want: &protocol.Create{MaxTokens: new(int32(1)), Temperature: new(float32(1))}},
	{name: "delete", in: `{"type":"delete","id":"d","conversation":"c1"}`,
		want: &protocol.Delete{ID: "d", Conversation: "c1"}, id: "d"},
	{name: "create with an agent", in: `{"type":"create","id":"c","title":"Orders","agent":"support","max_tokens":64}`,
		want: &protocol.Create{ID: "c", Title: "Orders", Agent: "support", MaxTokens: new(int32(64))}, id: "c"},
	{name: "create empty agent is absent", in: `{"type":"create","agent":"","model":"m"}`,
		want: &protocol.Create{Model: "m"}},
	{name: "agents", in: `{"type":"agents","id":"a"}`, want: &protocol.Agents{ID: "a"}, id: "a"},
	{name: "approve", in: `{"type":"approve","id":"p","conversation":"c1","call":"tooluse_1","approved":true}`,
		want: &protocol.Approve{ID: "p", Conversation: "c1", Call: "tooluse_1", Approved: true}, id: "p"},
	{name: "approve a call numbered by its model", in: `{"type":"approve","conversation":"c1","call":"functions.refund:0","approved":true}`,
		want: &protocol.Approve{Conversation: "c1", Call: "functions.refund:0", Approved: true}},
	{name: "approve denied with a reason", in: `{"type":"approve","conversation":"c1","call":"t-2","approved":false,"reason":"not now"}`,
		want: &protocol.Approve{Conversation: "c1", Call: "t-2", Reason: "not now"}},
	{name: "tool_output object", in: `{"type":"tool_output","id":"o","conversation":"c1","call":"t1","output":{ "ok" : true }}`,
		want: &protocol.ToolOutput{ID: "o", Conversation: "c1", Call: "t1", Output: json.RawMessage(`{"ok":true}`)}, id: "o"},
	{name: "tool_output any JSON, HTML escaped", in: `{"type":"tool_output","conversation":"c1","call":"t1","output":"<b>"}`,
		want: &protocol.ToolOutput{Conversation: "c1", Call: "t1", Output: json.RawMessage(`"\u003cb\u003e"`)}},
	{name: "tool_output false", in: `{"type":"tool_output","conversation":"c1","call":"t1","output":false}`,
		want: &protocol.ToolOutput{Conversation: "c1", Call: "t1", Output: json.RawMessage(`false`)}},
	{name: "tool_output error", in: `{"type":"tool_output","conversation":"c1","call":"t1","error":"no such file","output":null}`,
		want: &protocol.ToolOutput{Conversation: "c1", Call: "t1", Error: "no such file"}},
	{name: "ping", in: `{"type":"ping"}`, want: &protocol.Ping{}},
	{name: "ping with id", in: `{"type":"ping","id":"p"}`, want: &protocol.Ping{ID: "p"}, id: "p"},

	// Edges that are accepted.
	{name: "id of 64 bytes", in: `{"type":"ping","id":"` + id64 + `"}`, want: &protocol.Ping{ID: id64}, id: id64},
	{name: "conversation of 128 bytes", in: `{"type":"cancel","conversation":"` + conv128 + `"}`,
		want: &protocol.Cancel{Conversation: conv128}},
	{name: "JSON whitespace around the object", in: " \t\r\n{\"type\":\"ping\"} \n", want: &protocol.Ping{}},
	{name: "null fields are absent", in: `{"type":"send","id":null,"conversation":null,"text":"x","client_msg_id":null}`,
		want: &protocol.Send{Text: "x"}},
	{name: "null limit is the default", in: `{"type":"history","conversation":"c1","before":null,"limit":null}`,
		want: &protocol.History{Conversation: "c1", Limit: protocol.DefaultHistoryLimit}},
	{name: "null create fields are absent", in: `{"type":"create","title":null,"max_tokens":null,"temperature":null}`,
		want: &protocol.Create{}},
	{name: "unknown fields ignored", in: `{"type":"ping","extra":{"a":[1,2,{"b":null}]},"version":2}`,
		want: &protocol.Ping{}},
	{name: "fields of other types ignored", in: `{"type":"list","text":5,"conversation":"not valid!","after":-1}`,
		want: &protocol.List{Limit: protocol.DefaultListLimit}},
	{name: "field names are case-sensitive", in: `{"type":"send","text":"a","TEXT":"b","Conversation":"x y"}`,
		want: &protocol.Send{Text: "a"}},
	{name: "duplicate type: the last wins", in: `{"type":"ping","type":"list"}`, want: &protocol.List{Limit: protocol.DefaultListLimit}},
	{name: "duplicate text: the last wins", in: `{"type":"send","text":"a","text":"b"}`, want: &protocol.Send{Text: "b"}},
	{name: "escaped key", in: `{"t\u0079pe":"ping"}`, want: &protocol.Ping{}},
	{name: "1000 nested arrays in an unknown field", in: `{"type":"ping","x":` + nested1k + `}`, want: &protocol.Ping{}},

	// Frames that are not one JSON object.
	{name: "empty frame", in: ``, code: protocol.CodeBadRequest, msg: "JSON object"},
	{name: "whitespace only", in: " \t\r\n ", code: protocol.CodeBadRequest, msg: "JSON object"},
	{name: "array", in: `[{"type":"ping"}]`, code: protocol.CodeBadRequest, msg: "JSON object"},
	{name: "string", in: `"ping"`, code: protocol.CodeBadRequest, msg: "JSON object"},
	{name: "number", in: `42`, code: protocol.CodeBadRequest, msg: "JSON object"},
	{name: "null", in: `null`, code: protocol.CodeBadRequest, msg: "JSON object"},
	{name: "Unicode space before the object", in: "\u00a0{\"type\":\"ping\"}", code: protocol.CodeBadRequest, msg: "JSON object"},
	{name: "truncated JSON", in: `{"type":"ping","id":"r1"`, code: protocol.CodeBadRequest, msg: "invalid JSON"},
	{name: "trailing garbage", in: `{"type":"ping"} x`, code: protocol.CodeBadRequest, msg: "invalid JSON"},
	{name: "two objects", in: `{"type":"ping"}{"type":"ping"}`, code: protocol.CodeBadRequest, msg: "invalid JSON"},
	{name: "single quotes", in: `{'type':'ping'}`, code: protocol.CodeBadRequest, msg: "invalid JSON"},
	{name: "raw control character in a string", in: "{\"type\":\"send\",\"text\":\"a\x01b\"}", code: protocol.CodeBadRequest, msg: "invalid JSON"},
	{name: "invalid UTF-8", in: "{\"type\":\"send\",\"text\":\"\xff\xfe\"}", code: protocol.CodeBadRequest, msg: "UTF-8"},
	{name: "100k nested arrays in an unknown field", in: `{"id":"r1","type":"ping","x":` + nested100k + `}`,
		code: protocol.CodeBadRequest, msg: "exceeded max depth"},

	// type and id.
	{name: "missing type", in: `{"id":"r1"}`, code: protocol.CodeBadRequest, msg: "type: required", id: "r1"},
	{name: "null type", in: `{"type":null,"id":"r1"}`, code: protocol.CodeBadRequest, msg: "type: required", id: "r1"},
	{name: "type in capitals is another field", in: `{"TYPE":"ping"}`, code: protocol.CodeBadRequest, msg: "type: required"},
	{name: "type not a string", in: `{"type":1,"id":"r1"}`, code: protocol.CodeBadRequest, msg: "type: must be a string", id: "r1"},
	{name: "type an object", in: `{"type":{"name":"ping"}}`, code: protocol.CodeBadRequest, msg: "type: must be a string"},
	{name: "unknown type", in: `{"type":"subscribe_all","id":"r1"}`, code: protocol.CodeUnknownType, msg: `"subscribe_all"`, id: "r1"},
	{name: "type is case-sensitive", in: `{"type":"PING"}`, code: protocol.CodeUnknownType, msg: `"PING"`},
	{name: "empty type", in: `{"type":""}`, code: protocol.CodeUnknownType, msg: "type"},
	{name: "1 MiB unknown type", in: `{"type":"` + huge + `","id":"r1"}`, code: protocol.CodeUnknownType, msg: "type", id: "r1"},
	{name: "id not a string", in: `{"type":"ping","id":7}`, code: protocol.CodeBadRequest, msg: "id: must be a string"},
	{name: "id of 65 bytes is not echoed", in: `{"type":"ping","id":"` + id65 + `"}`, code: protocol.CodeBadRequest, msg: "id: longer than 64"},
	{name: "id of 1 MiB", in: `{"type":"ping","id":"` + huge + `"}`, code: protocol.CodeBadRequest, msg: "id: longer than 64"},
	{name: "id checked before type", in: `{"type":"nope","id":"` + id65 + `"}`, code: protocol.CodeBadRequest, msg: "id: "},

	// send's fields.
	{name: "send missing text", in: `{"type":"send","id":"r1","conversation":"c1"}`, code: protocol.CodeBadRequest, msg: "text: required", id: "r1"},
	{name: "send null text", in: `{"type":"send","text":null}`, code: protocol.CodeBadRequest, msg: "text: required"},
	{name: "send empty text", in: `{"type":"send","id":"r1","text":""}`, code: protocol.CodeBadRequest, msg: "text: must not be empty", id: "r1"},
	{name: "send white-space text", in: `{"type":"send","id":"r1","text":" \n\t\u00a0\u3000"}`, code: protocol.CodeBadRequest, msg: "only white space", id: "r1"},
	{name: "send text a number", in: `{"type":"send","text":5}`, code: protocol.CodeBadRequest, msg: "text: must be a string"},
	{name: "send text an array", in: `{"type":"send","text":["a"]}`, code: protocol.CodeBadRequest, msg: "text: must be a string"},
	{name: "send client_msg_id a number", in: `{"type":"send","text":"a","client_msg_id":1}`, code: protocol.CodeBadRequest, msg: "client_msg_id: must be a string"},
	{name: "send client_msg_id of 65 bytes", in: `{"type":"send","text":"a","client_msg_id":"` + id65 + `"}`, code: protocol.CodeBadRequest, msg: "client_msg_id: longer than 64"},
	{name: "send conversation a number", in: `{"type":"send","text":"a","conversation":12}`, code: protocol.CodeBadRequest, msg: "conversation: must be a string"},
	{name: "send conversation with a space", in: `{"type":"send","text":"a","conversation":"a b"}`, code: protocol.CodeBadRequest, msg: "conversation: must be"},

	// The conversation every other request needs.
	{name: "subscribe missing conversation", in: `{"type":"subscribe","id":"r1"}`, code: protocol.CodeBadRequest, msg: "conversation: required", id: "r1"},
	{name: "unsubscribe missing conversation", in: `{"type":"unsubscribe"}`, code: protocol.CodeBadRequest, msg: "conversation: required"},
	{name: "cancel missing conversation", in: `{"type":"cancel","id":"r1"}`, code: protocol.CodeBadRequest, msg: "conversation: required", id: "r1"},
	{name: "history missing conversation", in: `{"type":"history"}`, code: protocol.CodeBadRequest, msg: "conversation: required"},
	{name: "delete missing conversation", in: `{"type":"delete"}`, code: protocol.CodeBadRequest, msg: "conversation: required"},
	{name: "subscribe empty conversation", in: `{"type":"subscribe","conversation":""}`, code: protocol.CodeBadRequest, msg: "conversation: required"},
	{name: "subscribe null conversation", in: `{"type":"subscribe","conversation":null}`, code: protocol.CodeBadRequest, msg: "conversation: required"},
	{name: "conversation with a slash", in: `{"type":"subscribe","conversation":"a/b"}`, code: protocol.CodeBadRequest, msg: "conversation: must be"},
	{name: "conversation of 129 bytes", in: `{"type":"history","conversation":"` + conv129 + `"}`, code: protocol.CodeBadRequest, msg: "conversation: must be"},
	{name: "conversation of 1 MiB", in: `{"type":"delete","conversation":"` + huge + `"}`, code: protocol.CodeBadRequest, msg: "conversation: must be"},
	{name: "conversation with a control character", in: `{"type":"cancel","conversation":"a\u0001b"}`, code: protocol.CodeBadRequest, msg: "conversation: must be"},
	{name: "conversation with a NUL", in: `{"type":"cancel","conversation":"a\u0000"}`, code: protocol.CodeBadRequest, msg: "conversation: must be"},
	{name: "conversation with a newline", in: `{"type":"unsubscribe","conversation":"a\nb"}`, code: protocol.CodeBadRequest, msg: "conversation: must be"},
	{name: "conversation not ASCII", in: `{"type":"subscribe","conversation":"café"}`, code: protocol.CodeBadRequest, msg: "conversation: must be"},
	{name: "conversation dot-dot", in: `{"type":"subscribe","conversation":".."}`, code: protocol.CodeBadRequest, msg: "conversation: must be"},
	{name: "create conversation with bad characters", in: `{"type":"create","conversation":"a:b"}`, code: protocol.CodeBadRequest, msg: "conversation: must be"},

	// Numbers.
	{name: "created_at a number", in: `{"type":"subscribe","conversation":"c1","created_at":1796389200}`, code: protocol.CodeBadRequest, msg: "created_at: must be a string"},
	{name: "created_at not RFC 3339", in: `{"type":"subscribe","id":"r1","conversation":"c1","created_at":"2026-11-26 09:30:00"}`, code: protocol.CodeBadRequest, msg: "created_at: must be an RFC 3339 time", id: "r1"},
	{name: "created_at without a zone", in: `{"type":"subscribe","conversation":"c1","created_at":"2026-11-26T09:30:00"}`, code: protocol.CodeBadRequest, msg: "created_at: must be an RFC 3339 time"},
	{name: "created_at before year 0 in UTC", in: `{"type":"subscribe","conversation":"c1","created_at":"0000-01-01T00:00:00+01:00"}`, code: protocol.CodeBadRequest, msg: "created_at: must be a time from year 0000"},
	{name: "created_at after year 9999 in UTC", in: `{"type":"subscribe","conversation":"c1","created_at":"9999-12-31T23:30:00-01:00"}`, code: protocol.CodeBadRequest, msg: "created_at: must be a time from year 0000"},
	{name: "after a string", in: `{"type":"subscribe","conversation":"c1","after":"5"}`, code: protocol.CodeBadRequest, msg: "after: must be a non-negative integer"},
	{name: "after negative", in: `{"type":"subscribe","id":"r1","conversation":"c1","after":-1}`, code: protocol.CodeBadRequest, msg: "after: ", id: "r1"},
	{name: "after a fraction", in: `{"type":"subscribe","conversation":"c1","after":1.5}`, code: protocol.CodeBadRequest, msg: "after: "},
	{name: "after an exponent", in: `{"type":"subscribe","conversation":"c1","after":1e3}`, code: protocol.CodeBadRequest, msg: "after: "},
	{name: "after beyond uint64", in: `{"type":"subscribe","conversation":"c1","after":18446744073709551616}`, code: protocol.CodeBadRequest, msg: "after: "},
	{name: "before negative", in: `{"type":"history","conversation":"c1","before":-5}`, code: protocol.CodeBadRequest, msg: "before: "},
	{name: "limit negative", in: `{"type":"history","id":"r1","conversation":"c1","limit":-1}`, code: protocol.CodeBadRequest, msg: "limit: ", id: "r1"},
	{name: "limit far below int64", in: `{"type":"history","conversation":"c1","limit":-100000000000000000000000000000}`, code: protocol.CodeBadRequest, msg: "limit: "},
	{name: "limit a fraction", in: `{"type":"history","conversation":"c1","limit":2.5}`, code: protocol.CodeBadRequest, msg: "limit: "},
	{name: "limit a string", in: `{"type":"history","conversation":"c1","limit":"10"}`, code: protocol.CodeBadRequest, msg: "limit: "},
	{name: "max_tokens 0", in: `{"type":"create","max_tokens":0}`, code: protocol.CodeBadRequest, msg: "max_tokens: must be an integer from 1 to 2147483647"},
	{name: "max_tokens negative", in: `{"type":"create","max_tokens":-3}`, code: protocol.CodeBadRequest, msg: "max_tokens: "},
	{name: "max_tokens a fraction", in: `{"type":"create","max_tokens":10.5}`, code: protocol.CodeBadRequest, msg: "max_tokens: "},
	{name: "max_tokens beyond int32", in: `{"type":"create","max_tokens":2147483648}`, code: protocol.CodeBadRequest, msg: "max_tokens: must be an integer from 1 to 2147483647"},
	{name: "temperature 2", in: `{"type":"create","id":"r1","temperature":2}`, code: protocol.CodeBadRequest, msg: "temperature: must be a number from 0 to 1", id: "r1"},
	{name: "temperature negative", in: `{"type":"create","temperature":-0.1}`, code: protocol.CodeBadRequest, msg: "temperature: "},
	{name: "temperature a string", in: `{"type":"create","temperature":"0.5"}`, code: protocol.CodeBadRequest, msg: "temperature: "},
	{name: "temperature beyond float32", in: `{"type":"create","temperature":1e40}`, code: protocol.CodeBadRequest, msg: "temperature: "},
	{name: "title a number", in: `{"type":"create","title":1}`, code: protocol.CodeBadRequest, msg: "title: must be a string"},
	{name: "system a boolean", in: `{"type":"create","system":true}`, code: protocol.CodeBadRequest, msg: "system: must be a string"},
	{name: "model an array", in: `{"type":"create","model":["m"]}`, code: protocol.CodeBadRequest, msg: "model: must be a string"},

	// Agents (v1.1).
	{name: "create agent with model", in: `{"type":"create","id":"r1","agent":"support","model":"m"}`, code: protocol.CodeBadRequest, msg: "model: not allowed with agent", id: "r1"},
	{name: "create agent with system", in: `{"type":"create","agent":"support","system":"Be brief."}`, code: protocol.CodeBadRequest, msg: "system: not allowed with agent"},
	{name: "create agent a number", in: `{"type":"create","agent":7}`, code: protocol.CodeBadRequest, msg: "agent: must be a string"},
	{name: "create agent with a space", in: `{"type":"create","agent":"my agent"}`, code: protocol.CodeBadRequest, msg: "agent: must be 1 to 64"},
	{name: "create agent of 1 MiB", in: `{"type":"create","agent":"` + huge + `"}`, code: protocol.CodeBadRequest, msg: "agent: must be 1 to 64"},
	{name: "approve missing conversation", in: `{"type":"approve","call":"t1","approved":true}`, code: protocol.CodeBadRequest, msg: "conversation: required"},
	{name: "approve missing call", in: `{"type":"approve","id":"r1","conversation":"c1","approved":true}`, code: protocol.CodeBadRequest, msg: "call: required", id: "r1"},
	{name: "approve empty call", in: `{"type":"approve","conversation":"c1","call":"","approved":true}`, code: protocol.CodeBadRequest, msg: "call: required"},
	{name: "approve call with a slash", in: `{"type":"approve","conversation":"c1","call":"a/b","approved":true}`, code: protocol.CodeBadRequest, msg: "call: must be 1 to 64"},
	{name: "approve call that is a dot segment", in: `{"type":"approve","conversation":"c1","call":"..","approved":true}`, code: protocol.CodeBadRequest, msg: "call: must be 1 to 64"},
	{name: "approve call of 65 bytes", in: `{"type":"approve","conversation":"c1","call":"` + id65 + `","approved":true}`, code: protocol.CodeBadRequest, msg: "call: must be 1 to 64"},
	{name: "approve missing approved", in: `{"type":"approve","conversation":"c1","call":"t1"}`, code: protocol.CodeBadRequest, msg: "approved: required"},
	{name: "approve null approved", in: `{"type":"approve","conversation":"c1","call":"t1","approved":null}`, code: protocol.CodeBadRequest, msg: "approved: required"},
	{name: "approve approved a string", in: `{"type":"approve","conversation":"c1","call":"t1","approved":"yes"}`, code: protocol.CodeBadRequest, msg: "approved: must be true or false"},
	{name: "approve approved a number", in: `{"type":"approve","conversation":"c1","call":"t1","approved":1}`, code: protocol.CodeBadRequest, msg: "approved: must be true or false"},
	{name: "approve reason a number", in: `{"type":"approve","conversation":"c1","call":"t1","approved":false,"reason":1}`, code: protocol.CodeBadRequest, msg: "reason: must be a string"},
	{name: "approve reason too long", in: `{"type":"approve","conversation":"c1","call":"t1","approved":false,"reason":"` + strings.Repeat("r", protocol.MaxReasonLen+1) + `"}`, code: protocol.CodeBadRequest, msg: "reason: longer than 1024"},
	{name: "tool_output missing call", in: `{"type":"tool_output","conversation":"c1","output":1}`, code: protocol.CodeBadRequest, msg: "call: required"},
	{name: "tool_output neither output nor error", in: `{"type":"tool_output","id":"r1","conversation":"c1","call":"t1"}`, code: protocol.CodeBadRequest, msg: "output: required", id: "r1"},
	{name: "tool_output null output", in: `{"type":"tool_output","conversation":"c1","call":"t1","output":null}`, code: protocol.CodeBadRequest, msg: "output: required"},
	{name: "tool_output both", in: `{"type":"tool_output","conversation":"c1","call":"t1","output":{},"error":"x"}`, code: protocol.CodeBadRequest, msg: "error: not allowed with output"},
	{name: "tool_output empty error", in: `{"type":"tool_output","conversation":"c1","call":"t1","error":""}`, code: protocol.CodeBadRequest, msg: "error: must not be empty"},
	{name: "tool_output error an object", in: `{"type":"tool_output","conversation":"c1","call":"t1","error":{"message":"x"}}`, code: protocol.CodeBadRequest, msg: "error: must be a string"},
}

func TestDecodeClientFrame(t *testing.T) {
	t.Parallel()
	for _, tc := range decodeCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, id, err := protocol.DecodeClientFrame([]byte(tc.in))
			if id != tc.id {
				t.Errorf("id = %.80q, want %.80q", id, tc.id)
			}
			if tc.want != nil {
				if err != nil {
					t.Fatalf("error %v, want %T", err, tc.want)
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Errorf("got %.200v, want %.200v", describe(got), describe(tc.want))
				}
				if got.RequestID() != id {
					t.Errorf("RequestID() = %q, but the id returned is %q", got.RequestID(), id)
				}
				return
			}
			if got != nil {
				t.Errorf("got request %T with error %v", got, err)
			}
			var perr *protocol.Error
			if !errors.As(err, &perr) {
				t.Fatalf("error %v (%T), want a *protocol.Error", err, err)
			}
			if perr.Code != tc.code {
				t.Errorf("code = %q (%s), want %q", perr.Code, perr.Message, tc.code)
			}
			if !strings.Contains(perr.Message, tc.msg) {
				t.Errorf("message %q does not contain %q", perr.Message, tc.msg)
			}
			// The message is shown to users: it never echoes a huge input.
			if len(perr.Message) > 200 {
				t.Errorf("message is %d bytes long: %.100q…", len(perr.Message), perr.Message)
			}
		})
	}
}

// describe prints a request with its type and fields for failure messages.
func describe(r protocol.Request) string {
	if r == nil {
		return "<nil>"
	}
	b, err := protocol.EncodeRequest(r)
	if err != nil {
		return err.Error()
	}
	return string(b)
}

func TestValidConversationID(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		id   string
		want bool
	}{
		{"c", true},
		{"Az09-_.x", true},
		{"...", true},
		{conv128, true},
		{"", false},
		{".", false},
		{"..", false},
		{conv129, false},
		{"a b", false},
		{"a/b", false},
		{"a%2F", false},
		{"é", false},
	} {
		t.Run(tc.id, func(t *testing.T) {
			if got := protocol.ValidConversationID(tc.id); got != tc.want {
				t.Errorf("ValidConversationID(%q) = %v, want %v", tc.id, got, tc.want)
			}
		})
	}
}

func TestValidCallID(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		id   string
		want bool
	}{
		{"tooluse_AbC-09", true},
		{"functions.lookup_order:0", true},
		{".a", true},
		{id64, true},
		{"", false},
		{id65, false},
		{".", false},
		{"..", false},
		{"a b", false},
		{"a/b", false},
		{"a%2Fb", false},
		{"é", false},
	} {
		if got := protocol.ValidCallID(tc.id); got != tc.want {
			t.Errorf("ValidCallID(%q) = %v, want %v", tc.id, got, tc.want)
		}
	}
}

func TestValidName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		want bool
	}{
		{"support", true},
		{"tooluse_AbC-09", true},
		{id64, true},
		{"", false},
		{id65, false},
		{"a.b", false},
		{"a b", false},
		{"a/b", false},
		{"é", false},
	} {
		if got := protocol.ValidName(tc.name); got != tc.want {
			t.Errorf("ValidName(%q) = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestDecodeUnknownFieldsCostNoMore decodes frames of 1 MiB made mostly of
// unknown fields, which the contract says are ignored: many small ones,
// ones with escaped names, and ones with nested values. Ignored, they
// must cost no memory either: decoding allocates at most a few copies of
// the frame (docs/SECURITY.md, Memory), as a frame of one long text
// does, not a map entry per field, which made a frame of 100,000 fields
// cost 17 times its size. Not parallel: it counts the process's
// allocations.
func TestDecodeUnknownFieldsCostNoMore(t *testing.T) {
	for _, tt := range []struct{ name, field string }{
		{"small fields", `,"%x":0`},
		{"escaped names", `,"\u0066%x":"v"`},
		{"nested values", `,"%x":{"a":[1,{"b":null}]}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			b.WriteString(`{"type":"send","text":"hi"`)
			for i := 0; b.Len() < 1<<20; i++ {
				fmt.Fprintf(&b, tt.field, i)
			}
			b.WriteString("}")
			frame := []byte(b.String())
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			req, _, err := protocol.DecodeClientFrame(frame)
			runtime.ReadMemStats(&after)
			if err != nil || !reflect.DeepEqual(req, &protocol.Send{Text: "hi"}) {
				t.Fatalf("decoded %#v, %v; want the send", req, err)
			}
			// An escaped name is unescaped, and dropped, one at a time:
			// garbage about as large as the frame, never held at once.
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4*uint64(len(frame)) {
				t.Errorf("decoding a frame of %d bytes allocated %d bytes, more than 4 copies of it", len(frame), alloc)
			}
		})
	}
}
