package httpapi_test

import (
	"fmt"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"

	"github.com/chatgateway/gateway/internal/httpapi"
)

// TestBodyUnknownFieldsCostNoMore posts bodies of about 1 MiB made
// mostly of unknown fields, which are ignored, to each route that decodes
// a body; the last field is bad, so that each request is refused once the
// whole body is decoded. Ignored fields must cost no memory either:
// serving such a request allocates a few copies of the body
// (docs/SECURITY.md, Memory: about 4 MiB in all), not a map entry per
// field and a re-encoding of them all, which made a body of 100,000
// fields cost 25 to 40 times its size. Not parallel: it counts the
// process's allocations, those of the client and of the test server's
// recording and checking of the exchange included, which make about 8
// to 11 copies in all now (with -race).
func TestBodyUnknownFieldsCostNoMore(t *testing.T) {
	s := start(t, httpapi.Options{})
	base := s.URL + "/v1/conversations"
	if status, b := call(t, "POST", base, `{"conversation":"c1"}`); status != http.StatusCreated {
		t.Fatalf("create: %d %s", status, b)
	}
	for _, tt := range []struct{ name, path, last, field string }{
		{"create", "", `"title":5`, "title"},
		{"send", "/c1/messages", `"text":5`, "text"},
		{"action", "/c1/actions", `"name":5`, "name"},
		{"approval", "/c1/calls/call_1/approval", `"approved":true,"reason":5`, "reason"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var b strings.Builder
			b.WriteString("{")
			for i := 0; b.Len() < httpapi.MaxBodyBytes-32; i++ {
				fmt.Fprintf(&b, `"%x":0,`, i)
			}
			b.WriteString(tt.last + "}")
			body := b.String()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			resp, err := http.Post(base+tt.path, "application/json", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			answer, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			runtime.ReadMemStats(&after)
			if want := tt.field + ": must be a string"; resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(answer), want) {
				t.Fatalf("%d %s, want 400 %s", resp.StatusCode, answer, want)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16*uint64(len(body)) {
				t.Errorf("a request with a body of %d bytes allocated %d bytes, more than 16 copies of it", len(body), alloc)
			}
		})
	}
}
