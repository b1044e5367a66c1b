package jsonobj

import (
	"bytes"
	"encoding/json"
	"maps"
	"testing"
)

// names are the members FuzzFields picks: some a client frame has, and
// a long one.
var names = map[string]struct{}{
	"id": {}, "type": {}, "text": {}, "client_msg_id": {}, "limit": {}, "approved": {},
	"output": {}, "error": {}, "created_at": {}, "abcdefghijklmnopqrstuvwxyz_01234": {},
}

// FuzzFields checks Fields (gjson, as we use it) against encoding/json: for any JSON object, it
// finds the same members of names, with the same values, as decoding the
// object into a map does. The seeds are below and in testdata/fuzz.
func FuzzFields(f *testing.F) {
	for _, seed := range []string{
		`{}`,
		`{ "type" : "send" , "text" : "a\"}b" } `,
		`{"\u0074ype":"ping","typ\u0065":"list","x":{"id":[1,"]",{"}":null}]},"id":"2"}`,
		`{"text":"\\","limit":-1.5e3,"approved":true,"output":[],"error":null}`,
		`{"TEXT":"a","client_msg_id\u0000":1,"\ud800":2,"\u00e9":3,"abcdefghijklmnopqrstuvwxyz_012345":4}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var all map[string]json.RawMessage
		if len(data) == 0 || data[0] != '{' || json.Unmarshal(data, &all) != nil {
			return // not one object: Fields's callers refuse it first
		}
		want := map[string]json.RawMessage{}
		for name, v := range all {
			if _, ok := names[name]; ok {
				want[name] = v
			}
		}
		got := Fields(data, names)
		if !maps.EqualFunc(got, want, func(a, b json.RawMessage) bool { return bytes.Equal(a, b) }) {
			t.Fatalf("Fields(%q) = %q, want %q", data, got, want)
		}
	})
}

// FuzzString checks String against encoding/json: the same string for
// any JSON string, an error where encoding/json fails.
func FuzzString(f *testing.F) {
	for _, seed := range []string{`""`, `"plain text"`, `"a\"b\\c\n\u00e9\ud83d\ude00"`, `"\ud800"`, "\"\xff\"", "\"tab\there\"", `"<&>"`, `"`, `"a"b"`, `a`, `null`, `1`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		var want string
		wantErr := json.Unmarshal([]byte(raw), &want)
		got, err := String(raw)
		if (err != nil) != (wantErr != nil) || err == nil && got != want {
			t.Fatalf("String(%q) = %q, %v; encoding/json: %q, %v", raw, got, err, want, wantErr)
		}
	})
}
