// Package loadtest is the gateway's load generator: it starts the gateway
// in-process (or targets a running one), drives it over loopback WebSockets
// with a fake model whose chunk count, size and rate are set, and reports
// latency percentiles, throughput and memory as Markdown tables, next to
// limits measured on the same machine in the same run (bare bbolt commits,
// a bare coder/websocket server, a direct SDK call to a fake Bedrock).
//
// Every scenario is bounded in count (turns, commits, calls) and in time
// (Config.Duration per step); a step cut by the time cap says so in its
// table. cmd/loadgen is the command that runs it.
package loadtest
