package limits

import (
	"strconv"
	"unicode/utf8"
)

// MaxEchoBytes bounds how much of a value a client sent (a path, a method,
// a header, a token's header field) the gateway repeats in an error
// message or a log line: net/http takes headers up to 1 MiB, and one
// request must not write that much into the log.
const MaxEchoBytes = 256

// Echo returns s when it has at most MaxEchoBytes bytes; else its first
// MaxEchoBytes bytes at most (not splitting a UTF-8 sequence) followed by
// the marker "…(cut from N bytes)".
func Echo(s string) string {
	kept, cut := cutEcho(s)
	if !cut {
		return s
	}
	return kept + marker(len(s))
}

// Quote is Echo for a value quoted in a message: strconv.Quote of the
// bytes kept, the marker outside the quotes.
func Quote(s string) string {
	kept, cut := cutEcho(s)
	if !cut {
		return strconv.Quote(s)
	}
	return strconv.Quote(kept) + marker(len(s))
}

// cutEcho returns s's first MaxEchoBytes bytes at most, backing off to the
// start of a UTF-8 sequence, and whether anything was cut.
func cutEcho(s string) (string, bool) {
	if len(s) <= MaxEchoBytes {
		return s, false
	}
	n := MaxEchoBytes
	for i := 0; i < utf8.UTFMax-1 && n > 0 && !utf8.RuneStart(s[n]); i++ {
		n--
	}
	return s[:n], true
}

func marker(size int) string {
	return "…(cut from " + strconv.Itoa(size) + " bytes)"
}

// EchoWriter is an io.Writer whose String is Echo of all that was written
// to it, found without holding it all: it keeps the first MaxEchoBytes+1
// bytes (the one past the bound tells whether the cut splits a UTF-8
// sequence) and counts the rest. Its zero value is ready to use.
type EchoWriter struct {
	head []byte
	size int
}

// Write implements io.Writer; it never fails.
func (w *EchoWriter) Write(p []byte) (int, error) {
	if room := MaxEchoBytes + 1 - len(w.head); room > 0 {
		w.head = append(w.head, p[:min(room, len(p))]...)
	}
	w.size += len(p)
	return len(p), nil
}

// String returns Echo of the bytes written so far.
func (w *EchoWriter) String() string {
	kept, cut := cutEcho(string(w.head))
	if !cut {
		return kept
	}
	return kept + marker(w.size)
}
