// Package tracing sets up OpenTelemetry tracing for the gateway: spans go
// over OTLP/HTTP to a collector when an endpoint is configured, and
// nowhere otherwise. Off, the provider is nil, and the packages make no
// span at all: tracing that is off costs nothing.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.36.0"
	"go.opentelemetry.io/otel/trace"
)

// The standard variables that turn tracing on without -otel-endpoint.
const (
	EnvEndpoint       = "OTEL_EXPORTER_OTLP_ENDPOINT"
	EnvTracesEndpoint = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
)

// Config says where spans go and how the gateway names itself.
type Config struct {
	// Endpoint is the collector's OTLP/HTTP base URL, http(s)://host:port
	// with an optional path; spans are posted to its /v1/traces. Empty:
	// the exporter reads the standard OTEL_EXPORTER_OTLP_* variables, and
	// tracing is off unless EnvEndpoint or EnvTracesEndpoint is set.
	Endpoint string
	// Getenv reads the environment (default: tracing is off without
	// Endpoint).
	Getenv func(string) string
	// Logger receives the exporter's errors, such as a collector that
	// cannot be reached (default slog.Default()).
	Logger *slog.Logger
	// ServiceName and ServiceVersion name the gateway in every span's
	// resource; OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override
	// them.
	ServiceName, ServiceVersion string
}

// Enabled reports whether c turns tracing on.
func (c Config) Enabled() bool {
	if c.Endpoint != "" {
		return true
	}
	if c.Getenv == nil {
		return false
	}
	return c.Getenv(EnvEndpoint) != "" || c.Getenv(EnvTracesEndpoint) != ""
}

// Setup returns the tracer provider that c asks for and the function that
// flushes and stops it. With tracing on, it also becomes the global
// provider. Off, it is nil, which the gateway's packages take as no
// tracing at all, and stopping does nothing. The exporter batches spans in a bounded queue
// and drops them when the collector cannot keep up, so tracing never
// holds up a request.
func Setup(ctx context.Context, c Config) (trace.TracerProvider, func(context.Context) error, error) {
	if !c.Enabled() {
		return nil, func(context.Context) error { return nil }, nil
	}
	var opts []otlptracehttp.Option
	if c.Endpoint != "" {
		u, err := tracesURL(c.Endpoint)
		if err != nil {
			return nil, nil, err
		}
		opts = append(opts, otlptracehttp.WithEndpointURL(u))
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName(c.ServiceName), semconv.ServiceVersion(c.ServiceVersion)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(),
	)
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, nil, fmt.Errorf("tracing: resource: %w", err)
	}
	log := c.Logger
	if log == nil {
		log = slog.Default()
	}
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("tracing: spans not exported", "err", err) }))
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	return tp, tp.Shutdown, nil
}

// tracesURL is the URL spans go to for the base URL endpoint, as the
// exporter builds it from OTEL_EXPORTER_OTLP_ENDPOINT.
func tracesURL(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" || u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("tracing: endpoint %q: want an http:// or https:// URL with a host, such as http://localhost:4318", endpoint)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/v1/traces"
	return u.String(), nil
}
