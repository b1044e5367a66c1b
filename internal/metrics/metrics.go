// Package metrics defines the gateway's Prometheus metrics in one place, so
// that every package records into the same registry and the names stay
// consistent. Each package gets the *Metrics it records into from main.
package metrics

import (
	dto "github.com/prometheus/client_model/go"
	"math"
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds every collector the gateway records into.
type Metrics struct {
	registry *prometheus.Registry

	// Connections is the number of open WebSocket connections.
	Connections prometheus.Gauge
	// Subscriptions is the number of live (conversation, connection) pairs.
	Subscriptions prometheus.Gauge
	// Hubs is the number of conversations with a live hub.
	Hubs prometheus.Gauge
	// Turns is the number of turns streaming now.
	Turns prometheus.Gauge
	// ModelCallsWaiting is the number of model calls waiting for one of
	// the calls in progress to end (-max-model-calls).
	ModelCallsWaiting prometheus.Gauge
	// ToolCallsWaiting is the number of agents' tool calls waiting for one
	// of the tool runs in progress to end (-max-tool-calls).
	ToolCallsWaiting prometheus.Gauge
	// Events counts stored events by type.
	Events *prometheus.CounterVec
	// CommitSeconds is the latency of one group commit (one fsync).
	CommitSeconds prometheus.Histogram
	// CommitOps is how many ops one commit carried.
	CommitOps prometheus.Histogram
	// CommitWaitSeconds is how long an append waited in the commit queue
	// until the commit that stores it started, by kind: "reply" (a reply's
	// chunks, which a busy commit loop may leave for later commits) or
	// "other".
	CommitWaitSeconds *prometheus.HistogramVec
	// AckSeconds is the time from a send request to its durable ack.
	AckSeconds prometheus.Histogram
	// RelaySeconds is the time from a model chunk's arrival to the write
	// of the delta that carries it to a client's socket.
	RelaySeconds prometheus.Histogram
	// DeliverySeconds is the time from an event's commit to its write to
	// a live subscriber's socket: the relay latency less storage.
	DeliverySeconds prometheus.Histogram
	// FirstTokenSeconds is each turn's time to the first model chunk, by
	// model (see ModelLabel).
	FirstTokenSeconds *prometheus.HistogramVec
	// Tokens counts model tokens by model (see ModelLabel) and direction
	// (in, out).
	Tokens *prometheus.CounterVec
	// TurnsEnded counts ended turns by stop reason.
	TurnsEnded *prometheus.CounterVec
	// SlowConsumers counts connections closed for not keeping up.
	SlowConsumers prometheus.Counter
	// ConnectionCloses counts ended WebSocket connections by why they
	// ended (see conn's close reasons; PROTOCOL.md lists them).
	ConnectionCloses *prometheus.CounterVec
	// Errors counts error frames and HTTP errors sent, by code.
	Errors *prometheus.CounterVec
	// RateLimited counts requests refused by a rate limit, by kind.
	RateLimited *prometheus.CounterVec
	// JetStreamPublishSeconds is the latency of one append to JetStream
	// in cluster mode, from publish to acknowledgement.
	JetStreamPublishSeconds prometheus.Histogram
	// FencedAppends counts cluster-mode appends refused because another
	// gateway appended to the conversation first.
	FencedAppends prometheus.Counter
	// LeaseChanges counts changes of turn leases in cluster mode, by
	// change (acquired, released, lost).
	LeaseChanges *prometheus.CounterVec
	// ToolCalls counts agents' tool calls by tool and status (ok, error,
	// timeout, cancelled, …).
	ToolCalls *prometheus.CounterVec
	// ToolCallSeconds is the duration of one tool call, by tool.
	ToolCallSeconds *prometheus.HistogramVec
	// TurnSteps is the number of model calls (steps) of one agent turn.
	TurnSteps prometheus.Histogram

	// models holds the values of the model label (see ModelLabel).
	models modelLabels
}

// latencyBuckets spans 50µs to about 10s.
var latencyBuckets = prometheus.ExponentialBuckets(50e-6, 2, 18)

// fineLatencyBuckets spans 20µs to about 1.4s in steps of 25%, for a
// latency whose target is a millisecond or two.
var fineLatencyBuckets = prometheus.ExponentialBuckets(20e-6, 1.25, 50)

// toolBuckets spans 1ms to about 17 minutes: a tool call may wait minutes
// for a person.
var toolBuckets = prometheus.ExponentialBuckets(1e-3, 2, 21)

// New creates the collectors and registers them, with the Go runtime and
// process collectors, in a fresh registry.
func New() *Metrics {
	m := &Metrics{
		registry: prometheus.NewRegistry(),
		Connections: prometheus.NewGauge(prometheus.GaugeOpts{Name: "gateway_connections_open",
			Help: "Open WebSocket connections."}),
		Subscriptions: prometheus.NewGauge(prometheus.GaugeOpts{Name: "gateway_subscriptions",
			Help: "Live subscriptions of connections to conversations."}),
		Hubs: prometheus.NewGauge(prometheus.GaugeOpts{Name: "gateway_hubs_active",
			Help: "Conversations with a live hub."}),
		Turns: prometheus.NewGauge(prometheus.GaugeOpts{Name: "gateway_turns_active",
			Help: "Turns streaming from a model now."}),
		ModelCallsWaiting: prometheus.NewGauge(prometheus.GaugeOpts{Name: "gateway_model_calls_waiting",
			Help: "Model calls waiting for a call in progress to end (-max-model-calls)."}),
		ToolCallsWaiting: prometheus.NewGauge(prometheus.GaugeOpts{Name: "gateway_tool_calls_waiting",
			Help: "Agents' tool calls waiting for a tool run in progress to end (-max-tool-calls)."}),
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gateway_events_appended_total",
			Help: "Events stored in conversation logs, by type."}, []string{"type"}),
		CommitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "gateway_commit_seconds",
			Help: "Latency of one group commit (one bbolt transaction and its fsync).", Buckets: fineLatencyBuckets}),
		CommitOps: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "gateway_commit_ops",
			Help: "Ops carried by one group commit.", Buckets: prometheus.ExponentialBuckets(1, 2, 12)}),
		CommitWaitSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gateway_commit_wait_seconds",
			Help:    "Time an append waits in the commit queue until the commit that stores it starts, by kind (reply: a reply's chunks; other).",
			Buckets: fineLatencyBuckets}, []string{"kind"}),
		AckSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "gateway_ack_seconds",
			Help: "Time from a send to its durable ack.", Buckets: latencyBuckets}),
		RelaySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "gateway_relay_seconds",
			Help: "Time from a model chunk's arrival to the socket write of its delta.", Buckets: latencyBuckets}),
		DeliverySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "gateway_delivery_seconds",
			Help: "Time from an event's commit to its socket write to a live subscriber.", Buckets: fineLatencyBuckets}),
		FirstTokenSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gateway_first_token_seconds",
			Help: "Time from the model call to its first chunk, by model (past 50 models: other).", Buckets: latencyBuckets}, []string{"model"}),
		Tokens: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gateway_model_tokens_total",
			Help: "Model tokens by model (past 50 models: other) and direction (in, out)."}, []string{"model", "direction"}),
		TurnsEnded: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gateway_turns_ended_total",
			Help: "Ended turns by stop reason."}, []string{"stop_reason"}),
		SlowConsumers: prometheus.NewCounter(prometheus.CounterOpts{Name: "gateway_slow_consumer_closes_total",
			Help: "Connections closed because they did not keep up."}),
		ConnectionCloses: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gateway_connection_closes_total",
			Help: "Ended WebSocket connections, by reason."}, []string{"reason"}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gateway_errors_total",
			Help: "Errors sent to clients, by code."}, []string{"code"}),
		JetStreamPublishSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "gateway_jetstream_publish_seconds",
			Help: "Cluster mode: latency of one append to JetStream, from publish to acknowledgement.", Buckets: fineLatencyBuckets}),
		FencedAppends: prometheus.NewCounter(prometheus.CounterOpts{Name: "gateway_jetstream_fenced_appends_total",
			Help: "Cluster mode: appends refused because another gateway appended to the conversation first."}),
		LeaseChanges: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gateway_turn_lease_changes_total",
			Help: "Cluster mode: turn lease changes, by change (acquired, released, lost)."}, []string{"change"}),
		RateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gateway_rate_limited_total",
			Help: "Requests refused by a rate limit, by kind."}, []string{"kind"}),
		ToolCalls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "gateway_tool_calls_total",
			Help: "Agents' tool calls, by tool and status."}, []string{"tool", "status"}),
		ToolCallSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "gateway_tool_call_seconds",
			Help: "Duration of one tool call, by tool.", Buckets: toolBuckets}, []string{"tool"}),
		TurnSteps: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "gateway_turn_steps",
			Help: "Model calls (steps) of one agent turn.", Buckets: prometheus.LinearBuckets(1, 1, 20)}),
	}
	m.registry.MustRegister(m.Connections, m.Subscriptions, m.Hubs, m.Turns, m.ModelCallsWaiting, m.ToolCallsWaiting, m.Events,
		m.CommitSeconds, m.CommitOps, m.CommitWaitSeconds, m.AckSeconds, m.RelaySeconds, m.DeliverySeconds, m.FirstTokenSeconds,
		m.Tokens, m.TurnsEnded, m.SlowConsumers, m.ConnectionCloses, m.Errors, m.RateLimited,
		m.ToolCalls, m.ToolCallSeconds, m.TurnSteps, m.JetStreamPublishSeconds, m.FencedAppends, m.LeaseChanges,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// Gather returns the current values, for tests and the load generator,
// each name summed over its labels; a histogram gives name_count,
// name_sum and, per bucket, BucketKey(name, upper bound).
func (m *Metrics) Gather() (map[string]float64, error) {
	families, err := m.registry.Gather()
	if err != nil {
		return nil, err
	}
	return Flatten(families), nil
}

// Flatten sums each metric family over its labels, in the shape Gather
// returns: counters and gauges under their names, histograms as _count,
// _sum and one BucketKey per bound.
func Flatten(families []*dto.MetricFamily) map[string]float64 {
	out := map[string]float64{}
	for _, f := range families {
		for _, metric := range f.GetMetric() {
			switch {
			case metric.GetCounter() != nil:
				out[f.GetName()] += metric.GetCounter().GetValue()
			case metric.GetGauge() != nil:
				out[f.GetName()] += metric.GetGauge().GetValue()
			case metric.GetHistogram() != nil:
				h := metric.GetHistogram()
				out[f.GetName()+"_count"] += float64(h.GetSampleCount())
				out[f.GetName()+"_sum"] += h.GetSampleSum()
				for _, b := range h.GetBucket() {
					// The text exposition lists the +Inf bucket, which
					// the count already is; the registry leaves it out.
					if !math.IsInf(b.GetUpperBound(), 1) {
						out[BucketKey(f.GetName(), b.GetUpperBound())] += float64(b.GetCumulativeCount())
					}
				}
			}
		}
	}
	return out
}

// BucketKey is the key under which Gather reports the cumulative count of
// histogram name's bucket with upper bound le: the series as the text
// exposition names it, e.g. gateway_ack_seconds_bucket{le="0.001"}.
func BucketKey(name string, le float64) string {
	return name + `_bucket{le="` + strconv.FormatFloat(le, 'g', -1, 64) + `"}`
}
