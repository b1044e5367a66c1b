package tracing

import (
	"context"
	"testing"

	"github.com/chatgateway/gateway/internal/tracing/otlptest"
)

func TestSetupExportsToEndpoint(t *testing.T) {
	col := otlptest.Start(t)
	tp, stop, err := Setup(t.Context(), Config{Endpoint: col.URL, ServiceName: "gateway"})
	if err != nil {
		t.Fatal(err)
	}
	_, span := tp.Tracer("test").Start(t.Context(), "hello")
	span.End()
	if err := stop(context.Background()); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if names := col.Names(); len(names) != 1 || names[0] != "hello" {
		t.Fatalf("exported %v, want [hello]", names)
	}
}

func TestSetupFromStandardEnvironment(t *testing.T) {
	col := otlptest.Start(t)
	// The exporter reads the standard variables itself.
	t.Setenv(EnvEndpoint, col.URL)
	env := map[string]string{EnvEndpoint: col.URL}
	tp, stop, err := Setup(t.Context(), Config{Getenv: func(k string) string { return env[k] }})
	if err != nil {
		t.Fatal(err)
	}
	_, span := tp.Tracer("test").Start(t.Context(), "from env")
	span.End()
	if err := stop(context.Background()); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if names := col.Names(); len(names) != 1 || names[0] != "from env" {
		t.Fatalf("exported %v, want [from env]", names)
	}
}

func TestOffByDefault(t *testing.T) {
	tp, stop, err := Setup(t.Context(), Config{Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	defer stop(context.Background())
	if tp != nil {
		t.Fatalf("tracing is off, but Setup returned the provider %T: the packages would make spans", tp)
	}
}

func TestBadEndpoint(t *testing.T) {
	for _, endpoint := range []string{"localhost:4318", "ftp://collector", "http://", "://x"} {
		t.Run(endpoint, func(t *testing.T) {
			if _, _, err := Setup(t.Context(), Config{Endpoint: endpoint}); err == nil {
				t.Fatalf("Setup accepted the endpoint %q", endpoint)
			}
		})
	}
}

func TestTracesURL(t *testing.T) {
	for in, want := range map[string]string{
		"http://localhost:4318":       "http://localhost:4318/v1/traces",
		"https://collector/":          "https://collector/v1/traces",
		"http://collector:4318/otlp":  "http://collector:4318/otlp/v1/traces",
		"http://collector:4318/otlp/": "http://collector:4318/otlp/v1/traces",
	} {
		if got, err := tracesURL(in); err != nil || got != want {
			t.Errorf("tracesURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
