package loadtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chatgateway/gateway/protocol"
)

// goldenFrames returns the server frames of the protocol's golden files:
// every frame shape the gateway writes.
func goldenFrames(t testing.TB) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob("../../protocol/testdata/golden/*.json")
	if err != nil {
		t.Fatal(err)
	}
	frames := make(map[string][]byte)
	for _, p := range paths {
		name := filepath.Base(p)
		if strings.HasPrefix(name, "request_") {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		frames[name] = data
	}
	if len(frames) == 0 {
		t.Fatal("no golden server frames")
	}
	return frames
}

// fromServerFrame is what decodeFrame should return for data, according
// to encoding/json.
func fromServerFrame(t testing.TB, data []byte) frame {
	t.Helper()
	var sf protocol.ServerFrame
	if err := json.Unmarshal(data, &sf); err != nil {
		t.Fatal(err)
	}
	f := frame{typ: sf.Type, conversation: sf.Conversation, text: sf.Text, stopReason: sf.StopReason, code: sf.Code, err: sf.Error}
	// A string message: an error reply's, or a tool_progress's.
	f.message = sf.ErrorMessage()
	return f
}

func sameFrame(a, b frame) bool {
	aErr, bErr := a.err, b.err
	a.err, b.err = nil, nil
	return a == b && (aErr == nil) == (bErr == nil) && (aErr == nil || *aErr == *bErr)
}

// TestDecodeFrameGolden decodes every frame shape of the protocol, compact
// as the gateway writes it and indented, as encoding/json does.
func TestDecodeFrameGolden(t *testing.T) {
	t.Parallel()
	for name, data := range goldenFrames(t) {
		want := fromServerFrame(t, data)
		var compact bytes.Buffer
		if err := json.Compact(&compact, data); err != nil {
			t.Fatal(err)
		}
		for _, in := range [][]byte{data, compact.Bytes()} {
			var got frame
			if err := decodeFrame(in, &got); err != nil {
				t.Errorf("%s: decodeFrame(%s): %v", name, in, err)
			} else if !sameFrame(got, want) {
				t.Errorf("%s: decodeFrame(%s) = %+v, want %+v", name, in, got, want)
			}
		}
	}
}

func TestDecodeFrame(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		in   string
		want frame
		err  error
	}{
		{name: "empty object", in: ` {} `},
		{name: "escaped text", in: `{"type":"delta","text":"a\"b\\c\u00e9\n"}`, want: frame{typ: "delta", text: "a\"b\\cé\n"}},
		{name: "brackets and quotes in skipped values", in: `{"usage":{"a":[1,"]}\"",{}]},"type":"turn_end","stop_reason":"end_turn"}`, want: frame{typ: "turn_end", stopReason: "end_turn"}},
		{name: "event message object", in: `{"type":"message","message":{"text":"hi","role":"user"}}`, want: frame{typ: "message"}},
		{name: "null leaves a field", in: `{"type":"delta","type":null,"error":null}`, want: frame{typ: "delta"}},
		{name: "turn error", in: `{"type":"turn_end","error":{"code":"model_error","message":"m"}}`, want: frame{typ: "turn_end", err: &protocol.Error{Code: "model_error", Message: "m"}}},
		{name: "not an object", in: `["type"]`, err: errFrameSyntax},
		{name: "empty", in: ``, err: errFrameSyntax},
		{name: "unterminated string", in: `{"type":"delta`, err: errFrameSyntax},
		{name: "unterminated object", in: `{"type":"delta"`, err: errFrameSyntax},
		{name: "unterminated value", in: `{"usage":{"a":1}`, err: errFrameSyntax},
		{name: "missing colon", in: `{"type" "delta"}`, err: errFrameSyntax},
		{name: "missing value", in: `{"type":}`, err: errFrameSyntax},
		{name: "trailing data", in: `{"type":"delta"} x`, err: errFrameSyntax},
		{name: "number for a string", in: `{"type":5}`, err: errNotString},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got frame
			err := decodeFrame([]byte(tc.in), &got)
			if !errors.Is(err, tc.err) {
				t.Fatalf("decodeFrame(%s) = %v, want %v", tc.in, err, tc.err)
			}
			if err == nil && !sameFrame(got, tc.want) {
				t.Errorf("decodeFrame(%s) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

// FuzzDecodeFrame checks decodeFrame against encoding/json: any JSON
// object is accepted as far as its structure goes, and where both decode
// it they agree. Keys that differ from the gateway's only by case or by
// escapes are left out of the comparison: decodeFrame matches keys as the
// gateway writes them.
func FuzzDecodeFrame(f *testing.F) {
	for _, data := range goldenFrames(f) {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var got frame
		err := decodeFrame(data, &got)
		valid := json.Valid(data) && bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte("{"))
		if valid && errors.Is(err, errFrameSyntax) {
			t.Fatalf("decodeFrame(%q) = %v for a JSON object", data, err)
		}
		var want struct {
			Type         string `json:"type"`
			Conversation string `json:"conversation"`
			Text         string `json:"text"`
			StopReason   string `json:"stop_reason"`
			Code         string `json:"code"`
		}
		if err != nil || json.Unmarshal(data, &want) != nil || bytes.IndexByte(data, '\\') >= 0 || bytes.ContainsFunc(data, isUpper) {
			return
		}
		if got.typ != want.Type || got.conversation != want.Conversation || got.text != want.Text ||
			got.stopReason != want.StopReason || got.code != want.Code {
			t.Fatalf("decodeFrame(%q) = %+v, encoding/json: %+v", data, got, want)
		}
	})
}

func isUpper(r rune) bool { return r >= 'A' && r <= 'Z' }

// BenchmarkDecodeFrame compares the load generator's decoding of a delta
// with decoding it into a protocol.ServerFrame.
func BenchmarkDecodeFrame(b *testing.B) {
	delta := []byte(`{"type":"delta","conversation":"c_4sdjbxzk3m7hqa2pftvw","seq":1234,"ts":"2026-11-26T09:30:00.123456789Z",` +
		`"turn":"t_9xk2mrq5wd3hzc7ntbae","text":"` + stamp(time.Unix(0, 1764149400123456789), 12) + `"}`)
	b.Run("decodeFrame", func(b *testing.B) {
		b.ReportAllocs()
		var f frame
		for b.Loop() {
			if err := decodeFrame(delta, &f); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ServerFrame", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var f protocol.ServerFrame
			if err := json.Unmarshal(delta, &f); err != nil {
				b.Fatal(err)
			}
		}
	})
}
