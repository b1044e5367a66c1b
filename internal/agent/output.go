package agent

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// DefaultMaxOutputBytes is the default cap on one call's output.
const DefaultMaxOutputBytes = 256 << 10

// capOutput returns out if it is at most max bytes; otherwise an object
// that says the output was cut and holds as much of its start as fits in
// max bytes: {"truncated": true, "note": …, "text": …}. The result is
// always valid JSON (max is at least minOutputBytes).
func capOutput(out json.RawMessage, max int) json.RawMessage {
	if len(out) <= max {
		return out
	}
	note := fmt.Sprintf("the tool's output was longer than %d bytes and was cut; text is its start", max)
	wrap := func(prefix string) json.RawMessage {
		b, _ := json.Marshal(struct {
			Truncated bool   `json:"truncated"`
			Note      string `json:"note"`
			Text      string `json:"text"`
		}{true, note, prefix})
		return b
	}
	text := cutUTF8(string(out), max)
	for {
		b := wrap(text)
		if len(b) <= max || text == "" {
			return b
		}
		// Escapes made it longer: cut the excess and try again.
		text = cutUTF8(text, len(text)-(len(b)-max))
	}
}

// minOutputBytes is the least MaxOutputBytes: room for capOutput's note.
const minOutputBytes = 1 << 10

// capText cuts s to at most max bytes (at a rune boundary), saying so.
func capText(s string, max int) string {
	const mark = " …(cut)"
	if len(s) <= max {
		return s
	}
	return cutUTF8(s, max-len(mark)) + mark
}

// cutUTF8 is the longest prefix of s of at most n bytes that does not
// split a rune.
func cutUTF8(s string, n int) string {
	if n <= 0 {
		return ""
	}
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
