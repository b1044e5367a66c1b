// Package jsonobj picks the members a decoder wants out of a JSON object
// without spending memory on the others: a client may send as many
// unknown fields as its frame or body has room for, and they are ignored.
package jsonobj

import (
	"encoding/json"

	"github.com/tidwall/gjson"
)

// Fields returns the members of obj, one valid JSON object (check it
// first, with json.Valid, say), whose names, unescaped, are in names,
// their values as they are in obj; a member overrides an earlier one of
// the same name, as encoding/json does. It holds nothing for the other
// members, however many obj holds: gjson walks the object in place.
func Fields(obj []byte, names map[string]struct{}) map[string]json.RawMessage {
	fields := map[string]json.RawMessage{}
	gjson.ParseBytes(obj).ForEach(func(name, value gjson.Result) bool {
		if _, ok := names[name.Str]; ok {
			fields[name.Str] = json.RawMessage(value.Raw)
		}
		return true
	})
	return fields
}
