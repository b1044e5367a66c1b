package loadtest

import (
	"fmt"
	"io"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// report gathers the results of one Run.
type report struct {
	start                 time.Time
	elapsed               time.Duration
	loadBefore, loadAfter string
	baseline              *baselineResult
	streams               []stepResult[streamsResult]
	fanout                []stepResult[fanoutResult]
	idle                  []stepResult[idleResult]
	cluster               []stepResult[clusterResult]
	store                 *stepResult[storeResult]
	idleSkipped           []string
	// delay is the configured pause between chunks.
	delay time.Duration
}

// Targets of issue 7.
const (
	targetAckRatio  = 2.0
	targetRelayP99  = time.Millisecond
	targetRelayC    = 100
	targetFanoutP99 = 50 * time.Millisecond
	targetFanoutS   = 1000
	targetEvents    = 20000.0
	targetIdleRatio = 1.25
)

func (rep *report) write(w io.Writer, r *runner) {
	cfg := r.cfg
	target := "in-process gateway on 127.0.0.1:0, a fresh bbolt file per step in " + r.dir
	if cfg.URL != "" {
		target = "the gateway at " + cfg.URL
	}
	fmt.Fprintf(w, "## Load test, %s\n\n", rep.start.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "- Machine: %s; load average %s before, %s after.\n", machine(), rep.loadBefore, rep.loadAfter)
	fmt.Fprintf(w, "- Target: %s; open-files limit %d.\n", target, r.fdLimit)
	fmt.Fprintf(w, "- Model: %d chunks of %d bytes per reply, %s between chunks; %d turns per conversation (streams: at least %d sends per step, within half the time cap); each step capped at %s; run took %s.\n\n",
		cfg.Chunks, cfg.ChunkBytes, cfg.ChunkDelay, cfg.Turns, cfg.MinSends, cfg.Duration, rep.elapsed.Round(time.Second))
	if rep.baseline != nil {
		rep.baselineTable().write(w)
	}
	if len(rep.streams) > 0 || len(rep.barePipes()) > 0 {
		rep.streamsTable(cfg.URL == "").write(w)
	}
	if len(rep.fanout) > 0 {
		rep.fanoutTable().write(w)
	}
	if len(rep.idle) > 0 || len(rep.idleSkipped) > 0 {
		rep.idleTable().write(w)
	}
	if len(rep.cluster) > 0 || rep.store != nil {
		rep.clusterTable().write(w)
	}
	rep.targetsTable().write(w)
}

func (rep *report) baselineTable() *table {
	b := rep.baseline
	t := &table{title: "Baseline: the limits on this machine", header: []string{"measure", "n", "p50", "p99", "max"}}
	t.add(append([]string{fmt.Sprintf("bare bbolt commit, back to back (db.Update of one 8-byte key, fsync; %s written per commit; %.0f commits/s)", kib(b.commit.written), b.commit.perSecond),
		strconv.Itoa(b.commit.latency.n)}, b.commit.latency.cells()...)...)
	t.add(append([]string{fmt.Sprintf("… the same to two files at once, one writer each (%.0f commits/s in all)", b.twoFiles.perSecond),
		strconv.Itoa(b.twoFiles.latency.n)}, b.twoFiles.latency.cells()...)...)
	if b.pacing > 0 {
		t.add(append([]string{fmt.Sprintf("bare bbolt commit, one every %s (%s written per commit)", b.pacing, kib(b.paced.written)),
			strconv.Itoa(b.paced.latency.n)}, b.paced.latency.cells()...)...)
	}
	t.add(append([]string{"AWS SDK ConverseStream to the fake Bedrock: first event", strconv.Itoa(b.firstEvent.n)}, b.firstEvent.cells()...)...)
	t.add(append([]string{"… whole stream", strconv.Itoa(b.wholeStream.n)}, b.wholeStream.cells()...)...)
	if f := b.frames; f.frames > 0 {
		t.add(fmt.Sprintf("bare WebSocket frames: a coder/websocket server writes %d delta frames, one system call each, to each of %d clients at once (%.0f frames/s; %.1f µs of CPU per frame, server and client)",
			f.frames/f.conns, f.conns, f.perSecond, float64(f.cpu.Nanoseconds())/1e3), strconv.Itoa(f.frames), "—", "—", ms(f.elapsed))
	}
	t.note("The fake Bedrock answers at once (no ResponseDelay): the SDK call's own cost over loopback. Bare frames: the max column is the whole burst's time; a client that falls behind in a burst reads several frames with one system call, so this is a ceiling for frames that come one at a time.")
	if b.cut {
		t.note("cut by the time cap after %s", b.elapsed.Round(time.Millisecond))
	}
	return t
}

// notes describes what went wrong in a step, or "".
func (l load) notes() string {
	var n []string
	if l.Cut {
		n = append(n, "cut by the time cap")
	}
	if l.Errs > 0 {
		n = append(n, fmt.Sprintf("%d client errors, first: %s", l.Errs, l.FirstErr))
	}
	if l.slow > 0 {
		n = append(n, fmt.Sprintf("%.0f slow-consumer closes", l.slow))
	}
	if l.metricsErr != nil {
		n = append(n, fmt.Sprintf("metrics: %v", l.metricsErr))
	}
	return strings.Join(n, "; ")
}

// cpuCells are this process's CPU time (and mean cores) over the step,
// and the mean cores the machine's other processes used meanwhile.
func (l load) cpuCells() []string {
	if l.elapsed <= 0 {
		return []string{"n/a", "n/a"}
	}
	s := l.elapsed.Seconds()
	return []string{fmt.Sprintf("%.1f s (%.2f cores)", l.cpu.Seconds(), l.cpu.Seconds()/s), fmt.Sprintf("%.2f cores", l.others.Seconds()/s)}
}

// clientCores is the mean cores the step's client process used.
func (l load) clientCores() string {
	if l.elapsed <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f cores", l.clients.Seconds()/l.elapsed.Seconds())
}

// gcCells are the bytes this process allocated per chunk the clients
// received, and the collections it made, over the step.
func (l load) gcCells() []string {
	if l.chunks == 0 {
		return []string{"n/a", strconv.FormatUint(l.gc.collections, 10)}
	}
	return []string{kib(float64(l.gc.allocated) / float64(l.chunks)), strconv.FormatUint(l.gc.collections, 10)}
}

// commitCells are the commits per second, their mean and p99 latency, the ops
// they carried and the bytes written to storage per commit.
func (l load) commitCells() []string {
	if l.commits == 0 {
		return []string{"n/a", "n/a", "n/a", "n/a", "n/a"}
	}
	return []string{
		fmt.Sprintf("%.0f", l.perSecond(l.commits)),
		ms(seconds(l.commitSum / l.commits)),
		l.commit.cells()[1],
		fmt.Sprintf("%.1f", l.opsSum/l.commits),
		kib(float64(l.written) / l.commits),
	}
}

// barePipes are the baseline's bare pipeline steps, none if it did not
// run.
func (rep *report) barePipes() []stepResult[streamsResult] {
	if rep.baseline == nil {
		return nil
	}
	return rep.baseline.pipes
}

func (rep *report) streamsTable(inProcess bool) *table {
	t := &table{
		title: "streams: C conversations, one subscribed client each",
		header: []string{"C", "chunk delay", "turns", "ack p50", "ack p99", "ack max", "relay p50", "relay p99", "relay max",
			"delivery p50", "delivery p99", "queue wait p50", "queue wait p99", "chunks/s", "stored events/s", "commits/s", "commit mean", "commit p99", "ops/commit", "written/commit", "CPU", "others' CPU", "clients' CPU", "allocated/chunk", "collections", "peak heap+stacks", "peak RSS", "notes"},
	}
	for _, s := range slices.Concat(rep.barePipes(), rep.streams) {
		c := strconv.Itoa(s.res.c)
		if s.res.server != "" {
			c += ", " + s.res.server
		}
		if s.err != nil {
			t.add(c, s.res.delay.String(), "failed: "+s.err.Error())
			continue
		}
		l := s.res.load
		row := []string{c, s.res.delay.String(), strconv.Itoa(s.res.turns)}
		row = append(row, s.res.ack.cells()...)
		row = append(row, s.res.relay.cells()...)
		row = append(row, l.delivery.cells()[:2]...)
		row = append(row, l.commitWait.cells()[:2]...)
		row = append(row, fmt.Sprintf("%.0f", l.perSecond(float64(l.chunks))), fmt.Sprintf("%.0f", l.perSecond(l.events)))
		row = append(row, l.commitCells()...)
		row = append(row, l.cpuCells()...)
		row = append(row, l.clientCores())
		row = append(row, l.gcCells()...)
		row = append(row, mib(float64(l.peak.goBytes)), mib(float64(l.peak.rss)), l.notes())
		t.add(row...)
	}
	t.note("ack: client send → ack frame read (the message is durable). relay: model chunk created (stamped in its text) → delta frame read by the client; it includes the group commit that stores the delta before it is sent. delivery: the gateway's gateway_delivery_seconds over the step, every event's commit done → written to a subscriber's socket, i.e. the relay less storage; estimated from the histogram's buckets (25%% apart) as Prometheus's histogram_quantile does. queue wait: its gateway_commit_wait_seconds likewise, every append queued → its commit starts (most of them a reply's chunks, which may wait for later commits; a send waits for the commit in flight at most).")
	if len(rep.barePipes()) > 0 {
		t.note("bare pipeline (part of the baseline, not the gateway): the least the step's contract needs, for the same clients and model: each send stored and acked, then every chunk stored before it is sent; one commit loop puts everything pending (a send, or a stream's chunks since the last commit as one record) into one bbolt transaction with fsync under one global key sequence, then each connection's writer writes its frames (those queued together with one system call, as the gateway's writers do). No conversations, metadata, turns or hubs; delivery is not measured. With the protocol's events: the same, sending and storing what PROTOCOL.md makes a turn (an ack carrying the stored message; message and turn_start events; deltas with their turn; a turn_end carrying the reply as a message, its usage and latency; every event with its ts, encoded by the protocol package), and reading the conversation's stored messages back before each reply, as a turn gives the model its history: the least a server speaking the protocol does. Nothing stored: the same, without the file and its commits (less than the contract allows): the floor of this machine with these clients and model. By conversation: the protocol's pipeline with each event stored under its conversation and seq instead of one global sequence, as a log that reads a conversation back by its keys lays it out. The protocol server keeps where each conversation's messages are in memory only, which a restart loses (it would have to read the whole file back): the two layouts after it are the least that read a conversation back by its keys after a restart. By conversation through a tail: the events of a turn in progress stored under one global sequence, moved under their conversation and seq when the turn ends, and the moved ones deleted from the tail's head (at most 4,096 a commit), as the gateway's first layout did. By conversation through an index: every event stored under one global sequence for good, and at each turn's end one record under the conversation and the turn's first seq listing where its events are, as the gateway's log does.")
	}
	t.note("chunks/s: stamped chunks received by clients; stored events/s: the gateway's gateway_events_appended_total over the step (a delta may carry several coalesced chunks); commits/s, commit mean, commit p99 and ops/commit: its gateway_commit_seconds (p99 from the buckets, as for delivery) and gateway_commit_ops (one commit = one bbolt transaction); written/commit: this process's write_bytes (/proc/self/io) over the step per commit.")
	if inProcess {
		t.note("CPU and memory are the server's alone: the clients run in a child process (this program re-executed with %s set), as they would run elsewhere, so that the server's collector neither scans their goroutines nor collects what they allocate. clients' CPU: that process's, from its first send to its last read. others' CPU: what the rest of the machine used meanwhile (/proc/stat), i.e. how much of the 2 cores the server and its clients did not have. allocated/chunk and collections: the Go heap this process allocated over the step per chunk received, and the garbage collections it ran (runtime/metrics): each collection's mark phase takes CPU from the gateway while the cores are busy (see docs/PERFORMANCE.md).", ChildEnv)
	} else {
		t.note("CPU and memory are the load generator's own, which only waits for its client process (clients' CPU); the gateway runs elsewhere.")
	}
	return t
}

func (rep *report) fanoutTable() *table {
	t := &table{
		title: "fanout: one conversation, S subscribers",
		header: []string{"S", "chunks", "to last p50", "to last p99", "to last max", "each p50", "each p99",
			"deliveries/s", "CPU", "others' CPU", "clients' CPU", "peak RSS", "notes"},
	}
	for _, s := range rep.fanout {
		if s.err != nil {
			t.add(strconv.Itoa(s.res.s), "failed: "+s.err.Error())
			continue
		}
		l := s.res.load
		row := []string{strconv.Itoa(s.res.s), strconv.Itoa(s.res.toLast.n)}
		row = append(row, s.res.toLast.cells()...)
		row = append(row, s.res.each.cells()[:2]...)
		notes := l.notes()
		if s.res.missing > 0 {
			notes = strings.TrimPrefix(notes+fmt.Sprintf("; %d chunks missed a subscriber", s.res.missing), "; ")
		}
		row = append(row, fmt.Sprintf("%.0f", l.perSecond(float64(l.chunks))))
		row = append(row, l.cpuCells()...)
		row = append(row, l.clientCores(), mib(float64(l.peak.rss)), notes)
		t.add(row...)
	}
	t.note("to last: per chunk, model chunk created → read by the last of the S subscribers; each: every (chunk, subscriber) delivery. The subscribers run in a child process, as the streams step's clients do (clients' CPU: that process's, from the first send to the last read), and share the 2 cores with the gateway; each decodes only the fields it reads of a frame (type, text, …), into a buffer it reuses. The driver runs in this process.")
	return t
}

func (rep *report) idleTable() *table {
	t := &table{
		title: "idle: memory per idle WebSocket connection",
		header: []string{"N", "gateway RSS/conn", "bare RSS/conn", "ratio RSS", "heap/conn gateway, bare",
			"stacks/conn gateway, bare", "ratio heap+stacks", "goroutines/conn gateway, bare"},
	}
	for _, s := range rep.idle {
		if s.err != nil {
			t.add(strconv.Itoa(s.res.n), "failed: "+s.err.Error())
			continue
		}
		g, b := s.res.gateway, s.res.bare
		t.add(strconv.Itoa(s.res.n), kib(g.rss), kib(b.rss), ratio(g.rss, b.rss), kib(g.heap)+", "+kib(b.heap),
			kib(g.stack)+", "+kib(b.stack), ratio(g.heap+g.stack, b.heap+b.stack), fmt.Sprintf("%.2f, %.2f", g.goroutines, b.goroutines))
	}
	for _, s := range rep.idleSkipped {
		t.note("%s", s)
	}
	t.note("Growth of this process (the server) between before the connections and once all are open, after runtime.GC and debug.FreeOSMemory, divided by N. The clients run in a child process (this program re-executed with %s set), so their memory does not count. bare: a coder/websocket server that accepts and then only blocks in Read.", ChildEnv)
	return t
}

func (rep *report) targetsTable() *table {
	t := &table{title: "Targets (issue 7), measured in this run", header: []string{"target", "measured", "limit in this run", "met"}}
	var commitP99, pacedP99 time.Duration
	if rep.baseline != nil {
		commitP99, pacedP99 = rep.baseline.commit.latency.p99, rep.baseline.paced.latency.p99
	}
	for _, s := range rep.streams {
		if s.err != nil || s.res.ack.n == 0 || commitP99 == 0 {
			continue
		}
		ack := s.res.ack.p99
		measured := fmt.Sprintf("%s (%s× back to back", ms(ack), ratio(float64(ack), float64(commitP99)))
		if pacedP99 > 0 {
			measured += fmt.Sprintf(", %s× paced", ratio(float64(ack), float64(pacedP99)))
		}
		if own := s.res.load.commit; own.n > 0 {
			measured += fmt.Sprintf("; %s× the gateway's own commit p99", ratio(float64(ack), float64(own.p99)))
		}
		t.add(fmt.Sprintf("ack p99 ≤ %.0f × bare bbolt commit p99 (C=%d, chunk delay %s)", targetAckRatio, s.res.c, s.res.delay),
			measured+")",
			fmt.Sprintf("%.0f × %s (back to back) = %s", targetAckRatio, ms(commitP99), ms(time.Duration(targetAckRatio*float64(commitP99)))),
			met(float64(ack) <= targetAckRatio*float64(commitP99)))
	}
	for _, s := range rep.streams {
		if d := s.res.load.delivery; s.err == nil && s.res.c == targetRelayC && s.res.delay == rep.delay && d.n > 0 {
			t.add(fmt.Sprintf("relay overhead p99 < %s at C=%d (delivery: commit → socket)", ms(targetRelayP99), targetRelayC),
				fmt.Sprintf("%s (whole relay, with the commit: p99 %s)", ms(d.p99), ms(s.res.relay.p99)),
				fmt.Sprintf("%s (bare commit p50, not counted: %s)", ms(targetRelayP99), ms(rep.commitP50())), met(d.p99 < targetRelayP99))
		}
	}
	for _, s := range rep.fanout {
		if s.err == nil && s.res.s == targetFanoutS && s.res.toLast.n > 0 {
			t.add(fmt.Sprintf("chunk → last of %d subscribers p99 < %s", targetFanoutS, ms(targetFanoutP99)),
				ms(s.res.toLast.p99), "—", met(s.res.toLast.p99 < targetFanoutP99))
		}
	}
	best, bestC, bestDelay := 0.0, 0, time.Duration(0)
	for _, s := range rep.streams {
		if e := s.res.load.perSecond(s.res.load.events); s.err == nil && e > best {
			best, bestC, bestDelay = e, s.res.c, s.res.delay
		}
	}
	if best > 0 {
		t.add(fmt.Sprintf("≥ %.0f stored events/s", targetEvents), fmt.Sprintf("%.0f (best, at C=%d, chunk delay %s)", best, bestC, bestDelay),
			fmt.Sprintf("%d CPUs", runtime.NumCPU()), met(best >= targetEvents))
	}
	for _, s := range rep.idle {
		if s.err == nil {
			g, b := s.res.gateway.rss, s.res.bare.rss
			t.add(fmt.Sprintf("idle RSS/conn ≤ %.2f × bare (N=%d)", targetIdleRatio, s.res.n),
				fmt.Sprintf("%s (%s×)", kib(g), ratio(g, b)), kib(b)+" bare", met(b > 0 && g <= targetIdleRatio*b))
		}
	}
	if len(t.rows) == 0 {
		t.note("No target applies to the scenarios run.")
	}
	return t
}

func (rep *report) commitP50() time.Duration {
	if rep.baseline == nil {
		return 0
	}
	return rep.baseline.commit.latency.p50
}

func met(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}
