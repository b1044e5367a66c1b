package loadtest

import (
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"
)

// The scenarios, in the order Run runs them.
const (
	ScenarioBaseline = "baseline"
	ScenarioStreams  = "streams"
	ScenarioFanout   = "fanout"
	ScenarioIdle     = "idle"
	ScenarioCluster  = "cluster"
)

// Scenarios lists every scenario in the order Run runs them.
var Scenarios = []string{ScenarioBaseline, ScenarioStreams, ScenarioFanout, ScenarioIdle, ScenarioCluster}

// Config says what Run measures. Zero values mean the documented
// defaults.
type Config struct {
	// Scenarios to run, from Scenarios (default all).
	Scenarios []string
	// URL is a running gateway's WebSocket endpoint (ws://host:port/v1/ws)
	// to drive; empty starts a fresh gateway in-process for each step, on
	// 127.0.0.1:0 with a fresh bbolt file. Against a URL, relay latencies
	// need a model that stamps its chunks (the in-process one does), CPU
	// and memory are the load generator's own, and idle is skipped.
	URL string
	// Dir is where the temporary directory of the database files goes
	// (default os.TempDir()).
	Dir string
	// Conversations is the streams scenario's list of concurrent
	// conversations (default 1, 10, 100, 1000).
	Conversations []int
	// Subscribers is the fanout scenario's list of subscriber counts
	// (default 10, 100, 1000, 5000).
	Subscribers []int
	// Idle is the idle scenario's list of connection counts (default
	// 1000, 5000, 10000).
	Idle []int
	// ClusterConversations is the cluster scenario's list of concurrent
	// conversations with one client on each gateway (default 10, 100);
	// ClusterSubscribers its list of clients per gateway following one
	// conversation (default 50, 500).
	ClusterConversations, ClusterSubscribers []int
	// StoreEvents is how many events the cluster scenario's store step
	// appends to each storage (default 20000), within a third of Duration.
	StoreEvents int
	// Turns is the number of messages each conversation sends, one after
	// the reply to the other (default 5).
	Turns int
	// MinSends is how many sends a streams step makes at least (default
	// 200): with few conversations each sends more than Turns messages,
	// as far as half of Duration allows, so that the ack latencies are not
	// a handful of samples (a p99 of fewer than 100 is their maximum).
	MinSends int
	// Chunks is the number of chunks the model streams per reply (default
	// 20); ChunkBytes their size (default and minimum MinChunkBytes);
	// ChunkDelay the pause between two chunks (default 20ms, i.e. 50
	// chunks/s per stream; negative means none).
	Chunks     int
	ChunkBytes int
	ChunkDelay time.Duration
	// Duration caps each step of a scenario (default 30s); a step cut
	// short says so in its table.
	Duration time.Duration
	// Commits is the number of bare bbolt commits the baseline times back
	// to back, to one file and again to two files at once (default 2000);
	// BedrockCalls the number of fake Bedrock calls (default 50).
	Commits      int
	BedrockCalls int
	// PacedCommits is the number of bare bbolt commits the baseline times
	// again, ChunkDelay apart (default 200): on a VM a lone commit after a
	// pause is slower than one of a back-to-back series.
	PacedCommits int
	// Exe is the program the idle, streams and fanout scenarios start
	// as their client process (default os.Executable()); it must call
	// RunChild first.
	Exe string
	// IdleHeapProfile, when set, is the file that gets a heap profile of
	// this process each time the idle scenario has the in-process
	// gateway's connections open (so, at the end, that of the last N).
	IdleHeapProfile string
	// SkipMaxThroughput leaves out the streams step that repeats the
	// largest conversation count with no pause between chunks, to measure
	// the most events/s the gateway stores.
	SkipMaxThroughput bool
	// Log receives progress (default: none); GatewayLog the in-process
	// gateway's logs (default: warnings and errors to stderr).
	Log, GatewayLog *slog.Logger
}

// withDefaults fills in the zero values and checks the rest.
func (c Config) withDefaults() (Config, error) {
	if len(c.Scenarios) == 0 {
		c.Scenarios = Scenarios
	}
	for _, s := range c.Scenarios {
		if !slices.Contains(Scenarios, s) {
			return c, fmt.Errorf("loadtest: unknown scenario %q (want one of %v)", s, Scenarios)
		}
	}
	fill := func(p *[]int, def ...int) {
		if len(*p) == 0 {
			*p = def
		}
	}
	fill(&c.Conversations, 1, 10, 100, 1000)
	fill(&c.Subscribers, 10, 100, 1000, 5000)
	fill(&c.Idle, 1000, 5000, 10000)
	fill(&c.ClusterConversations, 10, 100)
	fill(&c.ClusterSubscribers, 50, 500)
	for _, list := range [][]int{c.Conversations, c.Subscribers, c.Idle, c.ClusterConversations, c.ClusterSubscribers} {
		for _, n := range list {
			if n <= 0 {
				return c, fmt.Errorf("loadtest: counts must be positive, got %d", n)
			}
		}
	}
	positive := func(p *int, def int) {
		if *p <= 0 {
			*p = def
		}
	}
	positive(&c.Turns, 5)
	positive(&c.MinSends, 200)
	positive(&c.Chunks, 20)
	positive(&c.ChunkBytes, MinChunkBytes)
	c.ChunkBytes = max(c.ChunkBytes, MinChunkBytes)
	positive(&c.Commits, 2000)
	positive(&c.BedrockCalls, 50)
	positive(&c.PacedCommits, 200)
	positive(&c.StoreEvents, 20000)
	switch {
	case c.ChunkDelay == 0:
		c.ChunkDelay = 20 * time.Millisecond
	case c.ChunkDelay < 0:
		c.ChunkDelay = 0
	}
	if c.Duration <= 0 {
		c.Duration = 30 * time.Second
	}
	if c.Exe == "" {
		exe, err := os.Executable()
		if err != nil {
			return c, fmt.Errorf("loadtest: find the client program: %w", err)
		}
		c.Exe = exe
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.GatewayLog == nil {
		c.GatewayLog = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	return c, nil
}

func (c Config) runs(scenario string) bool { return slices.Contains(c.Scenarios, scenario) }

// streamTurns is the number of messages each of c conversations sends in
// a streams step (see MinSends).
func (c Config) streamTurns(conversations int) int {
	turns := max(c.Turns, (c.MinSends+conversations-1)/conversations)
	if reply := time.Duration(c.Chunks) * c.ChunkDelay; reply > 0 {
		turns = min(turns, max(c.Turns, int(c.Duration/2/reply)))
	}
	return turns
}
