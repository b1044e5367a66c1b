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
		{"markup", strings.Repeat("ab<", max)},
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
		if least := leastKept(out, v.Text, max); len(v.Text) < least {
			t.Errorf("%s: kept %d bytes of the output, want %d at least", tc.name, len(v.Text), least)
		}
	}
}

// leastKept is the least of a longer output's start that Cap, whose
// result out holds text, must keep within max bytes: a sixth of the room
// its note leaves (an escape is at most 6 bytes), less a rune that would
// not fit whole.
func leastKept(out json.RawMessage, text string, max int) int {
	enc, _ := json.Marshal(text)
	room := max - (len(out) - len(enc))
	return room/6 - utf8.UTFMax
}

// FuzzCap checks Cap and CapText on any output and cap from MinBytes to
// 5 KiB: an output that fits comes back as it is; a longer one is cut to
// the cap and keeps its start (Cap's as valid JSON that says it was cut,
// for UTF-8 at least leastKept of it).
func FuzzCap(f *testing.F) {
	for _, seed := range []string{`{"a": 1}`, strings.Repeat("a", 2000), strings.Repeat("ab<", 1000), strings.Repeat("é€😀", 500), "\xff\xfe" + strings.Repeat("\x01", 1500)} {
		f.Add([]byte(seed), uint16(0))
	}
	f.Fuzz(func(t *testing.T, in []byte, n uint16) {
		max := MinBytes + int(n)%(4<<10)
		if text := CapText(string(in), max); len(text) > max || utf8.Valid(in) && !utf8.ValidString(text) ||
			len(in) <= max && text != string(in) || len(in) > max && !strings.HasPrefix(string(in), strings.TrimSuffix(text, " …(cut)")) {
			t.Fatalf("CapText cut %d bytes to %d (cap %d): %q", len(in), len(text), max, text)
		}
		out := Cap(in, max)
		if len(in) <= max {
			if string(out) != string(in) {
				t.Fatalf("changed an output of %d bytes that fits in %d", len(in), max)
			}
			return
		}
		var v struct {
			Truncated bool
			Text      string
		}
		if len(out) > max || json.Unmarshal(out, &v) != nil || !v.Truncated {
			t.Fatalf("cut to %d bytes (cap %d): %s", len(out), max, out)
		}
		if utf8.Valid(in) && (!strings.HasPrefix(string(in), v.Text) || len(v.Text) < leastKept(out, v.Text, max)) {
			t.Fatalf("kept %d bytes, not a start of the output of at least %d: %q", len(v.Text), leastKept(out, v.Text, max), v.Text)
		}
	})
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
