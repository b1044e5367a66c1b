package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// runner runs the scenarios of one Config.
type runner struct {
	cfg Config
	log *slog.Logger
	// dir is this run's temporary directory.
	dir   string
	model *stampModel
	// fdLimit is the open-files limit after raising it.
	fdLimit uint64
}

// Run measures the scenarios cfg names and writes the report to out as
// Markdown: a header describing the machine and the run, one table per
// scenario and a table comparing the figures with the targets. A step
// that fails is reported in its table and the other steps still run; Run
// then returns the steps' errors joined. Every step ends within
// cfg.Duration (plus the time to tear its gateway down).
func Run(ctx context.Context, cfg Config, out io.Writer) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	r := &runner{cfg: cfg, log: cfg.Log, model: newStampModel(cfg.Chunks, cfg.ChunkBytes, cfg.ChunkDelay)}
	r.fdLimit, err = raiseFDLimit()
	if err != nil {
		return err
	}
	r.dir, err = os.MkdirTemp(cfg.Dir, "loadtest-")
	if err != nil {
		return fmt.Errorf("loadtest: temporary directory: %w", err)
	}
	defer os.RemoveAll(r.dir)

	rep := &report{start: time.Now(), loadBefore: loadAverage(), delay: cfg.ChunkDelay}
	var errs []error
	step := func(name string, f func() error) {
		r.log.Info("loadtest: step", "step", name)
		if err := f(); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	if cfg.runs(ScenarioBaseline) {
		step(ScenarioBaseline, func() error {
			b, err := r.baseline(ctx)
			rep.baseline = &b
			return err
		})
	}
	for _, c := range r.list(ScenarioStreams, cfg.Conversations) {
		step(fmt.Sprintf("streams C=%d", c), func() error {
			s, err := r.streams(ctx, c, r.model, r.newTarget)
			rep.streams = append(rep.streams, stepOf(s, err))
			return err
		})
	}
	if cfg.runs(ScenarioStreams) && !cfg.SkipMaxThroughput && cfg.ChunkDelay > 0 {
		c := slices.Max(cfg.Conversations)
		step(fmt.Sprintf("streams C=%d without chunk delay", c), func() error {
			s, err := r.streams(ctx, c, newStampModel(cfg.Chunks, cfg.ChunkBytes, 0), r.newTarget)
			rep.streams = append(rep.streams, stepOf(s, err))
			return err
		})
	}
	for _, s := range r.list(ScenarioFanout, cfg.Subscribers) {
		step(fmt.Sprintf("fanout S=%d", s), func() error {
			f, err := r.fanout(ctx, s)
			rep.fanout = append(rep.fanout, stepOf(f, err))
			return err
		})
	}
	for _, n := range r.list(ScenarioIdle, cfg.Idle) {
		if skip := r.idleSkip(n); skip != "" {
			rep.idleSkipped = append(rep.idleSkipped, skip)
			continue
		}
		step(fmt.Sprintf("idle N=%d", n), func() error {
			i, err := r.idle(ctx, n)
			rep.idle = append(rep.idle, stepOf(i, err))
			return err
		})
	}
	// The cluster scenario starts its own gateways, never one at -url.
	clustered := cfg.runs(ScenarioCluster) && cfg.URL == ""
	for _, c := range r.listIf(clustered, r.cfg.ClusterConversations) {
		step(fmt.Sprintf("cluster C=%d", c), func() error {
			res, err := r.cluster(ctx, c, 1)
			rep.cluster = append(rep.cluster, stepOf(res, err))
			return err
		})
	}
	for _, k := range r.listIf(clustered, r.cfg.ClusterSubscribers) {
		step(fmt.Sprintf("cluster fan-out K=%d", k), func() error {
			res, err := r.cluster(ctx, 1, k)
			rep.cluster = append(rep.cluster, stepOf(res, err))
			return err
		})
	}
	if clustered {
		step("cluster store", func() error {
			res, err := r.store(ctx)
			s := stepOf(res, err)
			rep.store = &s
			return err
		})
	}
	rep.elapsed, rep.loadAfter = time.Since(rep.start), loadAverage()
	rep.write(out, r)
	return errors.Join(errs...)
}

// list is counts when scenario runs, else nothing.
func (r *runner) list(scenario string, counts []int) []int {
	return r.listIf(r.cfg.runs(scenario), counts)
}

// listIf is counts if ok, else nothing.
func (r *runner) listIf(ok bool, counts []int) []int {
	if !ok {
		return nil
	}
	return counts
}

// fdMargin is the files a process needs besides its connections.
const fdMargin = 256

// idleSkip says why the idle step with n connections cannot run, or "".
func (r *runner) idleSkip(n int) string {
	switch {
	case r.cfg.URL != "":
		return fmt.Sprintf("N=%d skipped: idle measures the in-process gateway's memory, not one at -url", n)
	case uint64(n)+fdMargin > r.fdLimit:
		return fmt.Sprintf("N=%d skipped: the open-files limit is %d (hard limit; raise it with ulimit -Hn as root)", n, r.fdLimit)
	}
	return ""
}

// newTarget starts a fresh in-process gateway answering with model, or
// returns the one at cfg.URL.
func (r *runner) newTarget(model *stampModel) (*target, error) {
	if r.cfg.URL != "" {
		return remoteTarget(r.cfg.URL)
	}
	return startGateway(r.dir, model, r.cfg.GatewayLog)
}

func (r *runner) closeTarget(t *target) {
	if err := t.close(); err != nil {
		r.log.Warn("loadtest: stopping the gateway", "err", err)
	}
}

// stepResult is one step's result, or the error that ended it.
type stepResult[T any] struct {
	res T
	err error
}

func stepOf[T any](res T, err error) stepResult[T] { return stepResult[T]{res, err} }

// cpuModel is the first "model name" of /proc/cpuinfo, or "unknown".
func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	for line := range strings.Lines(string(data)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// machine describes where the run happened.
func machine() string {
	return fmt.Sprintf("%d CPUs (GOMAXPROCS %d), %s, %s %s/%s", runtime.NumCPU(), runtime.GOMAXPROCS(0),
		cpuModel(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
