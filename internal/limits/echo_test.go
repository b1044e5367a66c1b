package limits_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/chatgateway/gateway/internal/limits"
)

func TestEcho(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", limits.MaxEchoBytes+1)
	// é is two bytes: one starting at MaxEchoBytes-1 would be split.
	split := strings.Repeat("a", limits.MaxEchoBytes-1) + strings.Repeat("é", 10)
	for _, tc := range []struct {
		name, in, echo, quote string
	}{
		{"short", "/v1/x", "/v1/x", `"/v1/x"`},
		{"at the bound", long[1:], long[1:], `"` + long[1:] + `"`},
		{"one over", long, long[1:] + "…(cut from 257 bytes)", `"` + long[1:] + `"…(cut from 257 bytes)`},
		{"not splitting a rune", split, split[:limits.MaxEchoBytes-1] + "…(cut from 275 bytes)", `"` + split[:limits.MaxEchoBytes-1] + `"…(cut from 275 bytes)`},
		{"control bytes quoted", "a\nb", "a\nb", `"a\nb"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := limits.Echo(tc.in); got != tc.echo {
				t.Errorf("Echo = %q, want %q", got, tc.echo)
			}
			if got := limits.Quote(tc.in); got != tc.quote {
				t.Errorf("Quote = %q, want %q", got, tc.quote)
			}
		})
	}
	// A megabyte header comes back as a few hundred bytes, valid UTF-8.
	huge := strings.Repeat("é", 1<<19)
	if got := limits.Quote(huge); len(got) > limits.MaxEchoBytes+40 || !utf8.ValidString(got) {
		t.Errorf("Quote of 1 MiB: %d bytes, valid UTF-8 %v", len(got), utf8.ValidString(got))
	}
}

// TestEchoWriter writes values around the bound, whole and a byte at a
// time: String is Echo of what was written, the cut and its marker alike.
func TestEchoWriter(t *testing.T) {
	t.Parallel()
	split := strings.Repeat("a", limits.MaxEchoBytes-1) + strings.Repeat("é", 10)
	for _, s := range []string{"", "a\nb", strings.Repeat("a", limits.MaxEchoBytes), strings.Repeat("a", limits.MaxEchoBytes+1),
		split, strings.Repeat("é", 1<<19)} {
		var whole, bytewise limits.EchoWriter
		_, _ = whole.Write([]byte(s))
		for i := range len(s) {
			_, _ = bytewise.Write([]byte{s[i]})
		}
		want := limits.Echo(s)
		if got := whole.String(); got != want {
			t.Errorf("written whole, %d bytes: %.300q, want %.300q", len(s), got, want)
		}
		if got := bytewise.String(); got != want {
			t.Errorf("written a byte at a time, %d bytes: %.300q, want %.300q", len(s), got, want)
		}
	}
}
