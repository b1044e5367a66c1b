// Package jsonobj picks the members a decoder wants out of a JSON object
// without spending memory on the others: a client may send as many
// unknown fields as its frame or body has room for, and they are ignored.
package jsonobj

import (
	"encoding/json"
	"unicode/utf8"

	"github.com/tidwall/gjson"
)

// Fields returns the members of obj, one valid JSON object (check it
// first, with json.Valid, say), whose names, unescaped, are in names,
// their values as they are in obj; a member overrides an earlier one of
// the same name, as encoding/json does. It holds nothing for the other
// members, however many obj holds: gjson walks the object in place.
func Fields(obj []byte, names map[string]struct{}) map[string]json.RawMessage {
	fields := map[string]json.RawMessage{}
	Each(obj, func(name, value string) {
		if _, ok := names[name]; ok {
			fields[name] = json.RawMessage(value)
		}
	})
	return fields
}

// Each calls f with each member of obj, one valid JSON object, in order:
// its name, unescaped, and its value as it is in obj. It does not check
// obj: on anything else it may stop early or call f with what it makes of
// it. The strings share one copy of obj, made once for the walk.
func Each(obj []byte, f func(name, value string)) {
	gjson.ParseBytes(obj).ForEach(func(name, value gjson.Result) bool {
		f(name.Str, value.Raw)
		return true
	})
}

// String decodes raw, a JSON string with its quotes, as encoding/json
// does, or fails as it does; a string that needs no unescaping (most
// do) is returned as a part of raw, without a copy.
func String(raw string) (string, error) {
	if len(raw) >= 2 && raw[0] == '"' && raw[len(raw)-1] == '"' {
		s := raw[1 : len(raw)-1]
		plain := utf8.ValidString(s)
		for i := 0; plain && i < len(s); i++ {
			plain = s[i] >= ' ' && s[i] != '"' && s[i] != '\\'
		}
		if plain {
			return s, nil
		}
	}
	var s string
	err := json.Unmarshal([]byte(raw), &s)
	return s, err
}
