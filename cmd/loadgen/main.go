// Command loadgen measures the gateway under load: it starts the gateway
// in-process (or drives a running one with -url), with a fake model whose
// chunk count, size and rate are set by flags, runs the scenarios streams,
// fanout, idle and baseline, and prints the results as Markdown tables.
// Everything stays on loopback, and every step is bounded in count and in
// time (-duration).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/chatgateway/gateway/internal/flagenv"
	"github.com/chatgateway/gateway/internal/loadtest"
)

func main() {
	// The idle, streams and fanout scenarios re-execute this program as
	// their client process.
	if child, err := loadtest.RunChild(os.Stdin, os.Stdout); child {
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadgen client:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	switch {
	case errors.Is(err, flag.ErrHelp):
	case err != nil:
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// run parses args (each flag also set by its LOADGEN_… environment twin,
// read with getenv), runs the load test and writes its report to stdout;
// progress and warnings go to stderr.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var cfg loadtest.Config
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scenario := fs.String("scenario", "all", "scenarios to run, comma-separated: "+strings.Join(loadtest.Scenarios, ", ")+", or all")
	fs.StringVar(&cfg.URL, "url", "", "drive the running gateway at this ws://host:port/v1/ws instead of an in-process one")
	fs.StringVar(&cfg.Dir, "dir", "", "directory for the temporary database files (default the system's temp dir)")
	fs.Func("c", "streams: concurrent conversations, comma-separated (default 1,10,100,1000)", intList(&cfg.Conversations))
	fs.Func("s", "fanout: subscribers of the one conversation, comma-separated (default 10,100,1000,5000)", intList(&cfg.Subscribers))
	fs.Func("n", "idle: idle connections, comma-separated (default 1000,5000,10000)", intList(&cfg.Idle))
	fs.Func("cluster-c", "cluster: concurrent conversations with one client on each of the two gateways, comma-separated (default 10,100)", intList(&cfg.ClusterConversations))
	fs.Func("cluster-k", "cluster: clients per gateway following one conversation, comma-separated (default 50,500)", intList(&cfg.ClusterSubscribers))
	fs.IntVar(&cfg.StoreEvents, "store-events", 0, "cluster: events appended to one JetStream server and to one bbolt file to compare their events/s (default 20000)")
	fs.IntVar(&cfg.Turns, "turns", 0, "messages per conversation, each sent after the previous reply (default 5)")
	fs.IntVar(&cfg.MinSends, "min-sends", 0, "streams: sends per step at least; few conversations send more than -turns each, within half of -duration (default 200)")
	fs.IntVar(&cfg.Chunks, "chunks", 0, "chunks per model reply (default 20)")
	fs.IntVar(&cfg.ChunkBytes, "chunk-bytes", 0, fmt.Sprintf("bytes per chunk (default and minimum %d, the timestamp)", loadtest.MinChunkBytes))
	fs.DurationVar(&cfg.ChunkDelay, "chunk-delay", 0, "pause between two chunks of a reply, 1/rate (default 20ms = 50 chunks/s; negative: none)")
	fs.DurationVar(&cfg.Duration, "duration", 0, "time cap of each step (default 30s)")
	fs.IntVar(&cfg.Commits, "commits", 0, "baseline: bare bbolt commits to time back to back, to one file and again to two at once (default 2000)")
	fs.IntVar(&cfg.PacedCommits, "paced-commits", 0, "baseline: bare bbolt commits to time again, -chunk-delay apart (default 200)")
	fs.IntVar(&cfg.BedrockCalls, "bedrock-calls", 0, "baseline: SDK calls to the fake Bedrock (default 50)")
	maxThroughput := fs.Bool("max-throughput", true, "streams: also run the largest -c with no pause between chunks")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	fs.StringVar(&cfg.IdleHeapProfile, "memprofile", "", "idle: write a heap profile to this file while the gateway's idle connections are open (the last -n)")
	traceFile := fs.String("trace", "", "write an execution trace of the whole run to this file (go tool trace -pprof=syscall shows where commits block)")
	verbose := fs.Bool("v", false, "log each step's progress")
	if err := flagenv.Parse(fs, "LOADGEN", args, getenv); err != nil {
		return err
	}
	if *scenario != "all" {
		cfg.Scenarios = strings.Split(*scenario, ",")
	}
	cfg.SkipMaxThroughput = !*maxThroughput
	if *verbose {
		cfg.Log = slog.New(slog.NewTextHandler(stderr, nil))
	}
	cfg.GatewayLog = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	stopProfiles, err := startProfiles(*cpuProfile, *traceFile)
	if err != nil {
		return err
	}
	err = loadtest.Run(ctx, cfg, stdout)
	return errors.Join(err, stopProfiles())
}

// startProfiles starts a CPU profile into cpuFile and an execution trace
// into traceFile, each when its name is not empty, and returns the
// function that stops them and closes their files.
func startProfiles(cpuFile, traceFile string) (func() error, error) {
	var stops []func() error
	stopAll := func() error {
		var errs []error
		for _, stop := range slices.Backward(stops) {
			errs = append(errs, stop())
		}
		return errors.Join(errs...)
	}
	for _, p := range []struct {
		file        string
		start       func(io.Writer) error
		stop        func()
		description string
	}{
		{cpuFile, pprof.StartCPUProfile, pprof.StopCPUProfile, "cpu profile"},
		{traceFile, trace.Start, trace.Stop, "trace"},
	} {
		if p.file == "" {
			continue
		}
		f, err := os.Create(p.file)
		if err == nil {
			err = p.start(f)
			if err != nil {
				f.Close()
			}
		}
		if err != nil {
			return nil, errors.Join(fmt.Errorf("%s: %w", p.description, err), stopAll())
		}
		stops = append(stops, func() error {
			p.stop()
			return f.Close()
		})
	}
	return stopAll, nil
}

// intList parses a comma-separated list of positive integers into *dst.
func intList(dst *[]int) func(string) error {
	return func(s string) error {
		*dst = nil
		for _, part := range strings.Split(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(part))
			if err != nil || n <= 0 {
				return fmt.Errorf("%q is not a positive integer", part)
			}
			*dst = append(*dst, n)
		}
		return nil
	}
}
