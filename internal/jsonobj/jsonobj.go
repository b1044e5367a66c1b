// Package jsonobj picks the members a decoder wants out of a JSON object
// without spending memory on the others: a client may send as many
// unknown fields as its frame or body has room for, and they are ignored.
package jsonobj

import "encoding/json"

// MaxName is the longest member name Fields can pick.
const MaxName = 32

// Fields returns the members of obj, one valid JSON object with no white space before it (check it
// first, with json.Valid, say), whose names, unescaped, are in names,
// their values as they are in obj; a member overrides an earlier one of
// the same name, as encoding/json does. The names must be ASCII and at
// most MaxName bytes long. It allocates nothing for the other members,
// however many obj holds.
func Fields(obj []byte, names map[string]struct{}) map[string]json.RawMessage {
	fields := map[string]json.RawMessage{}
	i := skipSpace(obj, 1) // past '{'
	for obj[i] != '}' {
		end := valueEnd(obj, i)
		name, known := fieldName(obj[i+1:end-1], names)
		i = skipSpace(obj, skipSpace(obj, end)+1) // past ':'
		end = valueEnd(obj, i)
		if known {
			fields[name] = obj[i:end]
		}
		if i = skipSpace(obj, end); obj[i] == ',' {
			i = skipSpace(obj, i+1)
		}
	}
	return fields
}

// fieldName unescapes raw, the inside of a member name, and reports
// whether it is in names. Those are ASCII and at most MaxName bytes, so
// an escape other than \u00XX of an ASCII character, or a longer name,
// cannot be one.
func fieldName(raw []byte, names map[string]struct{}) (string, bool) {
	var buf [MaxName]byte
	n := 0
	for j := 0; j < len(raw); j++ {
		c := raw[j]
		if c == '\\' {
			if raw[j+1] != 'u' || raw[j+2] != '0' || raw[j+3] != '0' || raw[j+4] > '7' {
				return "", false
			}
			c = unhex(raw[j+4])<<4 | unhex(raw[j+5])
			j += 5
		}
		if n == len(buf) {
			return "", false
		}
		buf[n] = c
		n++
	}
	if _, ok := names[string(buf[:n])]; !ok {
		return "", false
	}
	return string(buf[:n]), true
}

// unhex is the value of the hexadecimal digit c.
func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

// valueEnd returns the index just past the JSON value that starts at
// obj[i], in valid JSON.
func valueEnd(obj []byte, i int) int {
	switch obj[i] {
	case '"':
		j := i + 1
		for obj[j] != '"' {
			if obj[j] == '\\' {
				j++
			}
			j++
		}
		return j + 1
	case '{', '[':
		depth := 0
		for j := i; ; j++ {
			switch obj[j] {
			case '"':
				j = valueEnd(obj, j) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return j + 1
				}
			}
		}
	}
	// A number, true, false or null.
	j := i
	for j < len(obj) && !isDelimiter(obj[j]) {
		j++
	}
	return j
}

// isDelimiter reports whether c ends a number or a literal.
func isDelimiter(c byte) bool {
	switch c {
	case ',', '}', ']', ' ', '\t', '\r', '\n':
		return true
	}
	return false
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON white space.
func skipSpace(obj []byte, i int) int {
	for i < len(obj) && (obj[i] == ' ' || obj[i] == '\t' || obj[i] == '\r' || obj[i] == '\n') {
		i++
	}
	return i
}
