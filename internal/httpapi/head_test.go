package httpapi_test

import (
	"io"
	"net/http"
	"testing"

	"github.com/chatgateway/gateway/internal/conn/conntest"
)

// TestHeadAnswersAsGet checks that every GET of the API also answers
// HEAD, as PROTOCOL.md says and the Allow of a 405 lists: the status and
// Content-Type of the GET, without a body. Under /v1/conversations too,
// whose routes are in a subrouter.
func TestHeadAnswersAsGet(t *testing.T) {
	t.Parallel()
	s := conntest.Start(t, conntest.Config{})
	if status, body := conntest.Do(t, http.MethodPost, s.URL+"/v1/conversations", `{"conversation":"c"}`); status != http.StatusCreated {
		t.Fatalf("create: %d %s", status, body)
	}
	for _, path := range []string{
		"/v1/agents",
		"/v1/conversations",
		"/v1/conversations/",
		"/v1/conversations/c",
		"/v1/conversations/c/messages",
		"/v1/conversations/c/events",
		"/v1/conversations/nope",
	} {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			get, err := http.Get(s.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			conntest.CheckAnswer(t, http.MethodGet, s.URL+path, "", get)
			head, err := http.Head(s.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(head.Body)
			head.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if head.StatusCode != get.StatusCode || head.Header.Get("Content-Type") != get.Header.Get("Content-Type") || len(body) != 0 {
				t.Errorf("HEAD answered %d %q with %d bytes; GET %d %q", head.StatusCode, head.Header.Get("Content-Type"), len(body), get.StatusCode, get.Header.Get("Content-Type"))
			}
		})
	}
}
