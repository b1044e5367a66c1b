package readlimit_test

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/chatgateway/gateway/internal/readlimit"
)

var errTooLarge = errors.New("too large")

// TestReadCloser reads bodies of the limit and of one byte more, whole
// and a byte at a time: the first yields everything, the second fails
// with the caller's error and never yields the byte past the limit; no
// more than one byte past it is taken from the source.
func TestReadCloser(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		oneByte    bool
		err        error
	}{
		{"at the limit", "abcd", false, nil},
		{"at the limit, a byte at a time", "abcd", true, nil},
		{"one past", "abcde", false, errTooLarge},
		{"one past, a byte at a time", "abcde", true, errTooLarge},
		{"far past", strings.Repeat("x", 1000), false, errTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := &counter{r: strings.NewReader(tc.body)}
			var r io.Reader = src
			if tc.oneByte {
				r = iotest.OneByteReader(r)
			}
			got, err := io.ReadAll(readlimit.ReadCloser(io.NopCloser(r), 4, errTooLarge))
			if !errors.Is(err, tc.err) {
				t.Fatalf("ReadAll: %v, want %v", err, tc.err)
			}
			if want := tc.body[:min(len(tc.body), 4)]; string(got) != want {
				t.Fatalf("read %q, want %q", got, want)
			}
			if src.n > 5 {
				t.Fatalf("took %d bytes from the source, want at most the limit and one", src.n)
			}
		})
	}
}

// counter counts the bytes read from r.
type counter struct {
	r io.Reader
	n int
}

func (c *counter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}
