package loadtest

import (
	"context"
	"errors"
	"sync"
	"time"
)

// load is what the gateway did during a step, from its metrics and this
// process's counters.
type load struct {
	elapsed time.Duration
	failures
	// chunks counts the stamped chunks clients received.
	chunks int
	// events and commits are deltas of the gateway's counters; opsSum is
	// the delta of the ops carried by those commits; slow counts slow
	// consumer closes.
	events, commits, opsSum, slow float64
	// commitSum is the time those commits took, in seconds.
	commitSum float64
	// delivery is the gateway's commit → socket write latency over the
	// step, commit its commit latency, commitWait the time its appends
	// waited in the commit queue, all from its histograms (n: samples).
	delivery, commit, commitWait summary
	metricsErr                   error
	// written is the bytes this process wrote to storage during the step
	// (the gateway's database when inProcess).
	written uint64
	// cpu is this process's CPU time over the step; peak its highest
	// memory (the gateway's only when inProcess).
	cpu  time.Duration
	peak memory
	// clients is the CPU time of the step's client process, when it had
	// one; others what the machine's other processes used meanwhile.
	clients, others time.Duration
	// gc is what this process allocated, and the collections it made,
	// over the step.
	gc gcWork
}

// loadMeter measures one step.
type loadMeter struct {
	start   time.Time
	cpu     time.Duration
	busy    time.Duration
	written uint64
	gc      gcWork
	before  map[string]float64
	sampler *peakSampler
	mu      sync.Mutex
	res     load
}

func (r *runner) startLoad(ctx context.Context, t *target) *loadMeter {
	// Return what earlier steps left, so that the peaks are this step's.
	settledMemory()
	m := &loadMeter{sampler: startPeakSampler(250 * time.Millisecond)}
	m.before, m.res.metricsErr = t.gather(ctx)
	m.start, m.cpu, m.busy, m.written, m.gc = time.Now(), cpuTime(), machineBusy(), storageWritten(), readGCWork()
	return m
}

// fail records a client's error (see failures.add).
func (m *loadMeter) fail(ctx context.Context, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.res.add(ctx, err)
}

// addClients counts what the step's client process reported: its
// failures beside this process's, and its CPU time apart from the other
// processes'.
func (l *load) addClients(out childResult) {
	l.Cut = l.Cut || out.Cut
	if l.Errs == 0 {
		l.FirstErr = out.FirstErr
	}
	l.Errs += out.Errs
	l.clients, l.others = out.CPU, max(l.others-out.CPU, 0)
}

// failures are the clients' errors in a step. (Exported fields: a client
// process reports them in JSON.)
type failures struct {
	// Cut says the step hit the time cap before it was done.
	Cut bool
	// FirstErr is the first unexpected client error; Errs counts them.
	FirstErr string
	Errs     int
}

// add records a client's error: an ended step context means the step was
// cut by its time cap.
func (f *failures) add(ctx context.Context, err error) {
	if err == nil {
		return
	}
	// An error once the step's context ended is (almost surely) its
	// consequence: a read cut short.
	if ctx.Err() != nil {
		f.Cut = true
		return
	}
	if f.Errs == 0 {
		f.FirstErr = err.Error()
	}
	f.Errs++
}

func (m *loadMeter) stop(ctx context.Context, t *target) load {
	m.mu.Lock()
	defer m.mu.Unlock()
	res := m.res
	res.elapsed, res.cpu, res.written = time.Since(m.start), cpuTime()-m.cpu, storageWritten()-m.written
	res.others = max(machineBusy()-m.busy-res.cpu, 0)
	res.gc = readGCWork().since(m.gc)
	res.peak = m.sampler.done()
	// The step's context may have ended: read the metrics regardless.
	after, err := t.gather(context.WithoutCancel(ctx))
	if err != nil || res.metricsErr != nil {
		res.metricsErr = errors.Join(res.metricsErr, err)
		return res
	}
	delta := func(name string) float64 { return after[name] - m.before[name] }
	res.events = delta("gateway_events_appended_total")
	res.commits = delta("gateway_commit_seconds_count")
	res.opsSum = delta("gateway_commit_ops_sum")
	res.commitSum = delta("gateway_commit_seconds_sum")
	res.slow = delta("gateway_slow_consumer_closes_total")
	res.delivery = histogramSummary(m.before, after, "gateway_delivery_seconds")
	res.commit = histogramSummary(m.before, after, "gateway_commit_seconds")
	res.commitWait = histogramSummary(m.before, after, "gateway_commit_wait_seconds")
	return res
}

// perSecond is n per second of the step.
func (l load) perSecond(n float64) float64 {
	if l.elapsed <= 0 {
		return 0
	}
	return n / l.elapsed.Seconds()
}
