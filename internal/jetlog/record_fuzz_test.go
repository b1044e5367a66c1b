package jetlog

import (
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// FuzzRecordOf feeds recordOf, the decoder of stored messages, what a
// message of the stream could hold: it must return a record whose events
// follow its headers, or an error, and never panic.
func FuzzRecordOf(f *testing.F) {
	for _, seed := range []struct {
		seq, count string
		data       string
	}{
		{"1", "", `{"type":"delta"}`},
		{"7", "2", `[{"type":"message"},{"type":"turn_start"}]`},
		{"0", "", `{}`},
		{"x", "", `{}`},
		{"3", "2", `[{}]`},
		{"3", "2", `not json`},
		{"18446744073709551615", "3", `[{},{},{}]`},
	} {
		f.Add(seed.seq, seed.count, []byte(seed.data))
	}
	f.Fuzz(func(t *testing.T, seq, count string, data []byte) {
		hdr := nats.Header{}
		hdr.Set(hdrSeq, seq)
		if count != "" {
			hdr.Set(hdrCount, count)
		}
		rec, err := recordOf(1, hdr, data, time.Time{})
		if err != nil {
			return
		}
		if rec.Seq == 0 || len(rec.Frames) == 0 {
			t.Fatalf("record %+v from seq %q, count %q", rec, seq, count)
		}
	})
}
