package conntest

import (
	"io"
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
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the answer: %v", method, url, err)
	}
	CheckHTTP(t, spec.Exchange{Method: method, URL: url, RequestBody: []byte(body), Status: resp.StatusCode,
		ContentType: resp.Header.Get("Content-Type"), ResponseBody: b})
	return resp.StatusCode, b
}
