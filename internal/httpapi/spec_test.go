package httpapi_test

import (
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/chatgateway/gateway/internal/httpapi"
	"github.com/chatgateway/gateway/internal/metrics"
	"github.com/chatgateway/gateway/internal/spec"
)

// TestRoutesDocumented checks that protocol/openapi.yaml has an operation
// for every route the API serves, and none for a route it does not serve,
// and that PROTOCOL.md's table of the HTTP API has a row for each.
func TestRoutesDocumented(t *testing.T) {
	t.Parallel()
	h := httpapi.New(nil, httpapi.Options{WebSocket: http.NotFoundHandler(), Metrics: metrics.New(), Page: http.NotFoundHandler()})
	routes, ok := h.(chi.Routes)
	if !ok {
		t.Fatalf("httpapi.New returned a %T, not a chi router", h)
	}
	var served []string
	err := chi.Walk(routes, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if route != "/*" { // the page
			served = append(served, method+" "+strings.TrimSuffix(route, "/"))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(served)
	s, err := spec.Load()
	if err != nil {
		t.Fatal(err)
	}
	if documented := s.Operations(); !slices.Equal(served, documented) {
		t.Errorf("the API serves\n%s\nprotocol/openapi.yaml has\n%s", strings.Join(served, "\n"), strings.Join(documented, "\n"))
	}
	prose, err := os.ReadFile("../../PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, route := range served {
		// A row starts with the route in backquotes, with or without its
		// query parameters.
		if !regexp.MustCompile("(?m)^\\| `" + regexp.QuoteMeta(route) + "[?`]").Match(prose) {
			t.Errorf("PROTOCOL.md's HTTP table has no row for %s", route)
		}
	}
}
