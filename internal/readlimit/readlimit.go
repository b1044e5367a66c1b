// Package readlimit bounds the bytes a body may yield: a reader that
// fails, with the caller's error, once its source holds more than the
// limit, for bodies that a library reads whole (an HTTP answer that an
// SDK decodes), where io.LimitReader would cut them silently.
package readlimit

import "io"

// ReadCloser returns rc bounded to limit bytes: a read that would yield
// more fails with tooLarge, and the bytes past the limit are never
// yielded. Closing it closes rc.
func ReadCloser(rc io.ReadCloser, limit int64, tooLarge error) io.ReadCloser {
	return &bounded{ReadCloser: rc, left: limit, tooLarge: tooLarge}
}

type bounded struct {
	io.ReadCloser
	left     int64 // -1 once the limit was passed
	tooLarge error
}

func (b *bounded) Read(p []byte) (int, error) {
	if b.left < 0 {
		return 0, b.tooLarge
	}
	if int64(len(p)) > b.left+1 {
		p = p[:b.left+1] // one byte more tells a body of exactly the limit from a larger one
	}
	n, err := b.ReadCloser.Read(p)
	if int64(n) > b.left {
		n, b.left = int(b.left), -1
		return n, b.tooLarge
	}
	b.left -= int64(n)
	return n, err
}
