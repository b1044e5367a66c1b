package bedrock

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"testing"
)

// FuzzObject checks object, which turns tool inputs, outputs and schemas
// into the documents the SDK sends, on any input: the document always
// encodes, as a JSON object; a JSON object without empty keys comes out
// as the same value, every number exact; anything else as the fallback.
func FuzzObject(f *testing.F) {
	for _, seed := range []string{
		`{}`, `{"a":1}`, ` {"n":12345678901234567890123,"f":1.5e300,"neg":-0,"e":1E-7}`, `{"a":[1,{"b":null}],"s":"\u00e9\ud83d\ude00"}`,
		`{"":1}`, `{"a":[{"b":{"":null}}]}`, `[1,2]`, `"text"`, `42`, `null`, ``, `{"a":1} {"b":2}`, `{}]`, `{} `, `{"a":1,"a":2}`, `{"a":`, "{\"a\":\"\xff\"}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		out, err := object(raw, `{"fallback":true}`).MarshalSmithyDocument()
		if err != nil {
			t.Fatalf("%q: the document does not encode: %v", raw, err)
		}
		got, err := decodeNumbers(out)
		if err != nil {
			t.Fatalf("%q: the document encodes as %q: %v", raw, out, err)
		}
		if _, ok := got.(map[string]any); !ok {
			t.Fatalf("%q: the document is %q, not an object", raw, out)
		}
		want, err := decodeNumbers(raw)
		if _, ok := want.(map[string]any); err != nil || !ok || hasEmptyKey(want) {
			want, _ = decodeNumbers([]byte(`{"fallback":true}`))
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%q became %q", raw, out)
		}
	})
}

// decodeNumbers decodes data, one JSON value and nothing after it, with
// its numbers as json.Numbers.
func decodeNumbers(data []byte) (any, error) {
	if !json.Valid(data) {
		return nil, errors.New("not one JSON value")
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	var v any
	err := d.Decode(&v)
	return v, err
}

// hasEmptyKey reports whether v, decoded JSON, has an empty object key.
func hasEmptyKey(v any) bool {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if k == "" || hasEmptyKey(e) {
				return true
			}
		}
	case []any:
		return slices.ContainsFunc(v, hasEmptyKey)
	}
	return false
}
