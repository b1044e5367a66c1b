package loadtest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/chatgateway/gateway/internal/conn"
	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/convo/boltlog"
	"github.com/chatgateway/gateway/internal/httpapi"
	"github.com/chatgateway/gateway/internal/metrics"
)

// target is the gateway a scenario step drives: one started in-process
// (then its metrics are read directly) or a running one at a URL.
type target struct {
	// wsURL is the WebSocket endpoint, ws://host:port/v1/ws.
	wsURL string
	// gather reads the gateway's metrics.
	gather func(ctx context.Context) (map[string]float64, error)
	// inProcess says the gateway runs in this process, so that its CPU
	// and memory are this process's.
	inProcess bool
	close     func() error
}

// dbCount numbers the database files of the in-process gateways.
var dbCount atomic.Int64

// startGateway starts the gateway in-process on 127.0.0.1:0 with a fresh
// bbolt file in dir, answering with model.
func startGateway(dir string, model convo.Model, log *slog.Logger) (*target, error) {
	m := metrics.New()
	path := filepath.Join(dir, fmt.Sprintf("gateway-%d.db", dbCount.Add(1)))
	svc, err := boltlog.OpenService(path, boltlog.Options{}, model, gatewayConfig(log, m))
	if err != nil {
		return nil, fmt.Errorf("loadtest: open the gateway: %w", err)
	}
	return serveGateway(svc, m, log)
}

// gatewayConfig is the configuration of the in-process gateways, which
// log to log and record into m. Its MaxModelCalls is 0, no bound, where
// cmd/gateway's -max-model-calls is 512 by default: the steps run up to
// thousands of conversations' turns at once (the streams scenario's
// largest C), and the figures in PERFORMANCE.md measure the gateway's
// own work on all of them, as before the bound existed, not turns
// waiting for their model call.
func gatewayConfig(log *slog.Logger, m *metrics.Metrics) convo.Config {
	return convo.Config{DefaultModel: "loadtest", Logger: log, Metrics: m, MaxModelCalls: 0}
}

// serveGateway serves svc, which records into m, on 127.0.0.1:0.
func serveGateway(svc *convo.Service, m *metrics.Metrics, log *slog.Logger) (*target, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = svc.Close(context.Background())
		return nil, fmt.Errorf("loadtest: listen: %w", err)
	}
	ws := conn.NewHandler(svc, conn.Options{Logger: log, Metrics: m})
	srv := &http.Server{
		Handler:           httpapi.New(svc, httpapi.Options{Logger: log, WebSocket: ws, Metrics: m}),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() { _ = srv.Serve(ln) }()
	return &target{
		wsURL:     "ws://" + ln.Addr().String() + "/v1/ws",
		gather:    func(context.Context) (map[string]float64, error) { return m.Gather() },
		inProcess: true,
		close: func() error {
			// The order of cmd/gateway: stop accepting, end the turns, then
			// close the WebSockets.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := srv.Shutdown(ctx)
			err = errors.Join(err, svc.Close(ctx), ws.Shutdown(ctx))
			if err != nil {
				return fmt.Errorf("loadtest: stop the gateway: %w", err)
			}
			return nil
		},
	}, nil
}

// remoteTarget is the running gateway whose WebSocket endpoint is wsURL;
// its metrics are scraped from /metrics on the same host.
func remoteTarget(wsURL string) (*target, error) {
	host, ok := strings.CutPrefix(wsURL, "ws://")
	if !ok {
		return nil, fmt.Errorf("loadtest: -url %q: want ws://host:port/v1/ws (loopback only, no TLS)", wsURL)
	}
	host, _, _ = strings.Cut(host, "/")
	metricsURL := "http://" + host + "/metrics"
	return &target{
		wsURL:  wsURL,
		gather: func(ctx context.Context) (map[string]float64, error) { return scrape(ctx, metricsURL) },
		close:  func() error { return nil },
	}, nil
}

// scrape reads a Prometheus text exposition at url into the shape of
// metrics.Gather: each name summed over its labels (a labelled
// histogram's buckets by their bound).
func scrape(ctx context.Context, url string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("loadtest: scrape: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("loadtest: scrape: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("loadtest: scrape %s: %s", url, resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("loadtest: scrape %s: %w", url, err)
	}
	list := make([]*dto.MetricFamily, 0, len(families))
	for _, f := range families {
		list = append(list, f)
	}
	return metrics.Flatten(list), nil
}
