// Package toolout bounds a tool call's output before it reaches the model
// and the conversation's log: an output over the cap is cut and says so,
// whoever produced it (an HTTP tool, an MCP server or a client's
// tool_output).
package toolout

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// DefaultMaxBytes is the default cap on one call's output.
const DefaultMaxBytes = 256 << 10

// MinBytes is the least cap: room for Cap's note.
const MinBytes = 1 << 10

// Limit is the cap that a configured value means: DefaultMaxBytes for 0,
// else the value, raised to MinBytes.
func Limit(configured int) int {
	if configured == 0 {
		return DefaultMaxBytes
	}
	return max(configured, MinBytes)
}

// Cap returns out if it is at most max bytes; otherwise an object that
// says the output was cut and holds as much of its start as fits in max
// bytes: {"truncated": true, "note": …, "text": …}, which is valid JSON
// of at most max bytes when max is at least MinBytes.
func Cap(out json.RawMessage, max int) json.RawMessage {
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
	empty := len(wrap(""))
	text := cutUTF8(string(out), max)
	for {
		b := wrap(text)
		if len(b) <= max || text == "" {
			return b
		}
		// Escapes made it longer: keep the share of the text that would
		// fit if they were spread evenly, and try again. (Cutting only
		// the excess would leave nothing of a text whose escapes more
		// than double it.) An escape is at most 6 bytes, so at least a
		// sixth of the room is kept.
		keep := len(text) * (max - empty) / (len(b) - empty)
		text = cutUTF8(text, min(keep, len(text)-1))
	}
}

// CapText cuts s to at most max bytes (at a rune boundary), saying so.
func CapText(s string, max int) string {
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
