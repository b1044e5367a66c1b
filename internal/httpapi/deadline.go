package httpapi

import (
	"net/http"
	"time"
)

// WriteTimeout is the default time each part of an answer has to reach
// the client.
const WriteTimeout = 10 * time.Second

// writePart is the most of an answer written under one deadline, so that
// a long answer to a client that reads is not cut for its length.
const writePart = 64 << 10

// writeDeadline gives each part of an answer WriteTimeout to reach the
// client. net/http sets no write deadline of its own: a client that stops
// reading a history page or an event stream would otherwise hold the
// handler, and what it holds, for ever. net/http clears the deadline
// when a request ends or its connection is hijacked, so a WebSocket,
// which bounds its own writes, starts without one.
func (a *api) writeDeadline(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(&deadlineWriter{ResponseWriter: w, rc: http.NewResponseController(w), timeout: a.opts.WriteTimeout}, r)
	})
}

// deadlineWriter sets the write deadline before each part it writes. A
// write that misses it fails, and net/http closes the connection.
type deadlineWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		_ = w.rc.SetWriteDeadline(time.Now().Add(w.timeout))
		m, err := w.ResponseWriter.Write(p[n:min(len(p), n+writePart)])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
