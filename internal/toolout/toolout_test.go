package toolout

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCap(t *testing.T) {
	t.Parallel()
	const max = MinBytes
	for _, tc := range []struct{ name, in string }{
		{"fits", `{"a": 1}`},
		{"plain", `"` + strings.Repeat("a", 3*max) + `"`},
		{"escapes", strings.Repeat("\x01\"\\<>&", max)},
		{"multibyte", strings.Repeat("é€😀", max)},
	} {
		out := Cap(json.RawMessage(tc.in), max)
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
	if got := CapText("short", 10); got != "short" {
		t.Errorf("CapText of a short text = %q", got)
	}
	got := CapText(strings.Repeat("é", 100), 50)
	if len(got) > 50 || !strings.HasSuffix(got, "…(cut)") || !utf8.ValidString(got) {
		t.Errorf("CapText = %q (%d bytes)", got, len(got))
	}
}

func TestLimit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ configured, want int }{
		{0, DefaultMaxBytes}, {1, MinBytes}, {MinBytes + 1, MinBytes + 1}, {4 << 20, 4 << 20},
	} {
		if got := Limit(tc.configured); got != tc.want {
			t.Errorf("Limit(%d) = %d, want %d", tc.configured, got, tc.want)
		}
	}
}
