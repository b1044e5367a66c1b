package conntest

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/chatgateway/gateway/internal/spec"
)

// Do sends an HTTP request with method to url, with body as its JSON
// body when body is not empty, and returns the answer's status and body.
func Do(t testing.TB, method, url, body string) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(Deadline(t), method, url, r)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	if method != http.MethodGet && method != http.MethodHead {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return resp.StatusCode, CheckAnswer(t, method, url, body, resp)
}

// CheckAnswer reads and closes resp, the answer to a method request to url
// with body, checks the exchange against protocol/openapi.yaml, and
// returns the answer's body: for a test that makes its own request
// (Do's, which it uses too, cannot show the answer's headers).
func CheckAnswer(t testing.TB, method, url, body string, resp *http.Response) []byte {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, url, err)
	}
	CheckHTTP(t, spec.Exchange{Method: method, URL: url, RequestBody: []byte(body), Status: resp.StatusCode,
		ContentType: resp.Header.Get("Content-Type"), ResponseBody: b})
	return b
}

// maxChecked bounds the bytes of a body that the gateway's side keeps to
// check; a larger exchange is left unchecked.
const maxChecked = 4 << 20

// checkedHandler serves with h and records each HTTP exchange, for a
// check against protocol/openapi.yaml when the test gateway closes.
type checkedHandler struct {
	h   http.Handler
	rec *recording
}

func (c checkedHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	in := &cappedBuffer{}
	if r.Body != nil {
		r.Body = teeBody{ReadCloser: r.Body, to: in}
	}
	out := &exchangeWriter{ResponseWriter: w}
	c.h.ServeHTTP(out, r)
	// An answer cut short by a failed write (a client that did not
	// read it in time) is not one the spec describes.
	if out.hijacked || out.failed || in.over || out.body.over {
		return
	}
	status := out.status
	if status == 0 {
		status = http.StatusOK
	}
	c.rec.addExchange(spec.Exchange{Method: r.Method, URL: r.URL.String(), RequestBody: in.b, Status: status,
		ContentType: out.Header().Get("Content-Type"), ResponseBody: out.body.b})
}

// cappedBuffer keeps up to maxChecked bytes, and notes when there were more.
type cappedBuffer struct {
	b    []byte
	over bool
}

func (c *cappedBuffer) write(p []byte) {
	if len(c.b)+len(p) > maxChecked {
		c.over, c.b = true, nil
	}
	if !c.over {
		c.b = append(c.b, p...)
	}
}

type teeBody struct {
	io.ReadCloser
	to *cappedBuffer
}

func (t teeBody) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	t.to.write(p[:n])
	return n, err
}

// exchangeWriter notes the status and body of an answer.
type exchangeWriter struct {
	http.ResponseWriter
	status   int
	body     cappedBuffer
	hijacked bool
	failed   bool
}

func (w *exchangeWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *exchangeWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.body.write(p[:n])
	w.failed = w.failed || err != nil
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *exchangeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Hijack hands the connection to a WebSocket, whose frames the wiretap
// checks.
func (w *exchangeWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.hijacked = true
	}
	return conn, rw, err
}

// Streamed is what a client got for an answer streamed to it.
type Streamed struct {
	Status int
	Body   []byte
	Err    error // sending the request or reading the body
}

// GetLater sends GET url on a goroutine, on a connection of its own (the
// transport would send a GET cut off on a reused one again, and the
// caller would see that answer), and hands over the answer once its body
// is read. The request ends with t's Deadline.
func GetLater(t testing.TB, url string) <-chan Streamed {
	t.Helper()
	req, err := http.NewRequestWithContext(Deadline(t), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan Streamed, 1)
	go func() {
		resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Do(req)
		if err != nil {
			got <- Streamed{Err: err}
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		got <- Streamed{resp.StatusCode, body, err}
	}()
	return got
}
