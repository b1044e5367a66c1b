package limits

import (
	"strings"
	"testing"
)

// TestEchoWriterHoldsLittle writes a megabyte, in one piece and in many:
// EchoWriter holds MaxEchoBytes+1 bytes of it, however it came.
func TestEchoWriterHoldsLittle(t *testing.T) {
	t.Parallel()
	big := []byte(strings.Repeat("x", 1<<20))
	var whole, pieces EchoWriter
	_, _ = whole.Write(big)
	for i := 0; i < len(big); i += 1000 {
		_, _ = pieces.Write(big[i:min(i+1000, len(big))])
	}
	for name, w := range map[string]*EchoWriter{"whole": &whole, "pieces": &pieces} {
		if n := cap(w.head); n > 2*MaxEchoBytes {
			t.Errorf("%s: holds %d bytes of a megabyte, want about %d", name, n, MaxEchoBytes+1)
		}
	}
}
