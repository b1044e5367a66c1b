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
	c, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The test's own bound on a gateway that would wait forever.
	if err := c.SetDeadline(time.Now().Add(conntest.Timeout)); err != nil {
		t.Fatal(err)
	}
	req := "POST /v1/conversations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"title\":"
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer to a stalled body: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "body: not received within 50ms") {
		t.Fatalf("stalled body: %d %s, want 400 with body: not received within 50ms", resp.StatusCode, body)
	}
	if status, b := conntest.Do(t, "POST", s.URL+"/v1/conversations", `{"title":"quick"}`); status != http.StatusCreated {
		t.Fatalf("a body sent at once: %d %s", status, b)
	}
}
