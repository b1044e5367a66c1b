// Package otlptest is an OTLP/HTTP trace receiver on loopback for tests
// that check what a real exporter sends.
package otlptest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// Collector receives trace exports at URL/v1/traces until the test ends.
type Collector struct {
	// URL is the collector's base URL, for -otel-endpoint or
	// OTEL_EXPORTER_OTLP_ENDPOINT.
	URL string

	mu    sync.Mutex
	spans []*tracepb.Span
}

// Start starts a Collector; requests to another path than /v1/traces, or
// bodies that are not an ExportTraceServiceRequest, fail t.
func Start(t testing.TB) *Collector {
	t.Helper()
	c := &Collector{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("otlptest: read export: %v", err)
			return
		}
		if r.URL.Path != "/v1/traces" {
			t.Errorf("otlptest: export posted to %s, want /v1/traces", r.URL.Path)
		}
		var req coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(body, &req); err != nil {
			t.Errorf("otlptest: decode export: %v", err)
			return
		}
		c.mu.Lock()
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				c.spans = append(c.spans, ss.Spans...)
			}
		}
		c.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	t.Cleanup(srv.Close)
	c.URL = srv.URL
	return c
}

// Names returns the names of the spans received so far, in order.
func (c *Collector) Names() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	names := make([]string, len(c.spans))
	for i, s := range c.spans {
		names[i] = s.Name
	}
	return names
}

// Spans returns the spans received so far, in order.
func (c *Collector) Spans() []*tracepb.Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*tracepb.Span(nil), c.spans...)
}
