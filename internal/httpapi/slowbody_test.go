package httpapi_test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chatgateway/gateway/internal/conn/conntest"
	"github.com/chatgateway/gateway/internal/httpapi"
)

// TestSlowBody sends the headers of a create and part of its body, then
// nothing: the gateway answers 400 once BodyTimeout has passed instead of
// holding the request open, and a request on a new connection that sends
// its body at once is served.
func TestSlowBody(t *testing.T) {
	t.Parallel()
	s := start(t, httpapi.Options{BodyTimeout: 50 * time.Millisecond})
	resp, _ := stall(t, s, "POST /v1/conversations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"title\":")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "body: not received within 50ms") {
		t.Fatalf("stalled body: %d %s, want 400 with body: not received within 50ms", resp.StatusCode, body)
	}
	if status, b := conntest.Do(t, "POST", s.URL+"/v1/conversations", `{"title":"quick"}`); status != http.StatusCreated {
		t.Fatalf("a body sent at once: %d %s", status, b)
	}
}

// TestSlowBodyRefused sends, for each way the gateway refuses a request
// before it reads the body (no token, a wrong method, a wrong Content-
// Type, a foreign Origin, a path no route serves), the headers and part
// of a body, then nothing. net/http reads up to 256 KiB of an unread
// body before it answers, so without a deadline it would wait for the
// rest as long as the client likes, holding the connection: the gateway
// answers the refusal once BodyTimeout has passed, and closes the
// connection, whose rest of a body is not a next request.
func TestSlowBodyRefused(t *testing.T) {
	t.Parallel()
	s := startJWT(t, httpapi.Options{BodyTimeout: 50 * time.Millisecond})
	for _, tt := range []struct {
		name, method, path, headers string
		status                      int
	}{
		{"no token", "POST", "/v1/conversations", "Content-Type: application/json\r\n", http.StatusUnauthorized},
		{"wrong method", "POST", "/healthz", "Content-Type: application/json\r\n", http.StatusMethodNotAllowed},
		{"not JSON", "POST", "/v1/conversations", "Content-Type: text/plain\r\n", http.StatusUnsupportedMediaType},
		{"foreign origin", "DELETE", "/v1/conversations/c1", "Content-Type: application/json\r\nOrigin: http://evil.example\r\n", http.StatusForbidden},
		{"no route", "PUT", "/nowhere", "", http.StatusNotFound},
		{"chunked", "POST", "/v1/conversations", "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n", http.StatusUnauthorized},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body := "Content-Length: 100\r\n\r\n{\"title\":"
			if strings.Contains(tt.headers, "chunked") {
				body = "\r\n64\r\n{\"title\":"
			}
			resp, r := stall(t, s, tt.method+" "+tt.path+" HTTP/1.1\r\nHost: 127.0.0.1\r\n"+tt.headers+body)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("refused request with a stalled body: %d %s, want %d", resp.StatusCode, b, tt.status)
			}
			if n, err := r.Read(make([]byte, 1)); err != io.EOF {
				t.Fatalf("after the answer: read %d bytes, %v; want the connection closed", n, err)
			}
		})
	}
}

// stall sends req, a request whose body stops short, on a new connection
// to s, and returns the answer and the reader of the connection.
func stall(t *testing.T, s *conntest.Server, req string) (*http.Response, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	// The test's own bound on a gateway that would wait forever.
	if err := c.SetDeadline(time.Now().Add(conntest.Timeout)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("no answer to a request with a stalled body: %v", err)
	}
	return resp, r
}
