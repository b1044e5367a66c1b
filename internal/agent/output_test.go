package agent

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCapOutput(t *testing.T) {
	t.Parallel()
	const max = minOutputBytes
	for _, tc := range []struct{ name, in string }{
		{"fits", `{"a": 1}`},
		{"plain", `"` + strings.Repeat("a", 3*max) + `"`},
		{"escapes", strings.Repeat("\x01\"\\<>&", max)},
		{"multibyte", strings.Repeat("é€😀", max)},
	} {
		out := capOutput(json.RawMessage(tc.in), max)
		if len(out) > max || !json.Valid(out) {
			t.Errorf("%s: %d bytes, valid JSON %v", tc.name, len(out), json.Valid(out))
			continue
		}
		if len(tc.in) <= max {
			if string(out) != tc.in {
				t.Errorf("%s: changed an output that fits", tc.name)
			}
			continue
		}
		var v struct {
			Truncated bool
			Text      string
		}
		if json.Unmarshal(out, &v) != nil || !v.Truncated || !strings.HasPrefix(tc.in, v.Text) || !utf8.ValidString(v.Text) {
			t.Errorf("%s: %s", tc.name, out)
		}
	}
}

func TestCapText(t *testing.T) {
	t.Parallel()
	if got := capText("short", 10); got != "short" {
		t.Errorf("capText of a short text = %q", got)
	}
	got := capText(strings.Repeat("é", 100), 50)
	if len(got) > 50 || !strings.HasSuffix(got, "…(cut)") || !utf8.ValidString(got) {
		t.Errorf("capText = %q (%d bytes)", got, len(got))
	}
}
