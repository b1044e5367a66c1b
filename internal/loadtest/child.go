package loadtest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

// ChildEnv names the environment variable that turns a process into a
// client process of the load generator; its value is the JSON of what
// the process does (a childSpec). The idle, streams and fanout scenarios
// run their clients there, so that the server measured here pays neither
// their memory nor their collections. Both cmd/loadgen and the package's
// tests call RunChild first thing.
const ChildEnv = "LOADTEST_CLIENTS"

// childLife bounds the life of a client process.
const childLife = 10 * time.Minute

// The lines a client process and its parent exchange. The child writes
// childReady once its connections are open (and, for fanout, subscribed).
// A streams or fanout child then waits for childGo, does its step, writes
// childDone, and then its childResult as one JSON line (read after the
// parent's step is measured, so that decoding the samples does not
// count). Every child keeps its connections open until its stdin reaches
// its end.
const (
	childReady = "ready"
	childGo    = "go"
	childDone  = "done"
)

// The roles of a client process.
const (
	roleIdle    = "idle"
	roleStreams = "streams"
	roleFanout  = "fanout"
)

// childSpec is what a client process does: open N connections to URL and,
// for the streams role, converse on each as the streams scenario does;
// for the fanout role, follow Turns turns of the conversation URL
// subscribes to; until Deadline.
type childSpec struct {
	Role     string
	URL      string
	N        int
	Deadline time.Time
	// Streams: the messages each connection sends, and the shape of the
	// model's replies, to check them and to spread the clients' starts.
	// Fanout: the turns to follow and the chunks of each reply.
	Turns, Chunks, Size int
	Delay               time.Duration
}

// childResult is what a streams or fanout client process reports.
type childResult struct {
	// Turns is the number of turns that ended, over all connections.
	Turns int
	// Ack and Relay are the streams step's latency samples (see
	// converse).
	Ack, Relay []time.Duration `json:",omitempty"`
	// ToLast and Each are the fanout step's (see fanoutResult); Missing
	// counts the chunks that reached some subscribers but not all.
	ToLast, Each []time.Duration `json:",omitempty"`
	Missing      int             `json:",omitempty"`
	// CPU is the process's CPU time from childGo to childDone.
	CPU time.Duration
	failures
}

// RunChild does nothing and returns false unless ChildEnv is set. When it
// is, it runs the client process the variable describes, reading its
// parent's lines from stdin and writing its own to stdout, and returns
// true, with an error if the process could not do its work.
func RunChild(stdin io.Reader, stdout io.Writer) (bool, error) {
	env, ok := os.LookupEnv(ChildEnv)
	if !ok {
		return false, nil
	}
	var spec childSpec
	if err := json.Unmarshal([]byte(env), &spec); err != nil {
		return true, fmt.Errorf("loadtest: %s: %w", ChildEnv, err)
	}
	if spec.Role != roleIdle && spec.Role != roleStreams && spec.Role != roleFanout {
		return true, fmt.Errorf("loadtest: %s: unknown role %q", ChildEnv, spec.Role)
	}
	if _, err := raiseFDLimit(); err != nil {
		return true, err
	}
	// The connections live until this returns; the parent bounds that (it
	// kills this process at its step's time cap), and so does childLife.
	ctx, cancel := context.WithTimeout(context.Background(), childLife)
	defer cancel()
	if !spec.Deadline.IsZero() {
		ctx, cancel = context.WithDeadline(ctx, spec.Deadline)
		defer cancel()
	}
	clients, err := dialAll(ctx, spec.URL, spec.N)
	if err != nil {
		return true, err
	}
	defer closeAll(clients)
	in := bufio.NewReader(stdin)
	switch spec.Role {
	case roleIdle:
		for _, c := range clients {
			c.ws.CloseRead(context.Background())
		}
		err = say(stdout, childReady)
	case roleStreams:
		model := newStampModel(spec.Chunks, spec.Size, spec.Delay)
		err = step(in, stdout, func() childResult { return converseAll(ctx, clients, spec.Turns, model) })
	case roleFanout:
		subs := subscribeAll(ctx, clients, spec.Turns, spec.Chunks)
		err = step(in, stdout, subs.wait)
	}
	if err != nil {
		return true, err
	}
	_, _ = io.Copy(io.Discard, in)
	return true, nil
}

// step says the child is ready, waits for childGo, runs run, and reports
// its result with the CPU time it took.
func step(in *bufio.Reader, out io.Writer, run func() childResult) error {
	if err := say(out, childReady); err != nil {
		return err
	}
	if err := expectLine(in, childGo); err != nil {
		return err
	}
	cpu := cpuTime()
	res := run()
	res.CPU = cpuTime() - cpu
	if err := say(out, childDone); err != nil {
		return err
	}
	if err := json.NewEncoder(out).Encode(res); err != nil {
		return fmt.Errorf("loadtest: %w", err)
	}
	return nil
}

// say writes line to the other process.
func say(w io.Writer, line string) error {
	if _, err := fmt.Fprintln(w, line); err != nil {
		return fmt.Errorf("loadtest: %w", err)
	}
	return nil
}

// childProc is a running client process whose connections are open.
type childProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

// startChild starts a client process doing spec and waits until its
// connections are open. ctx bounds its life.
func (r *runner) startChild(ctx context.Context, spec childSpec) (*childProc, error) {
	env, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("loadtest: %w", err)
	}
	cmd := exec.CommandContext(ctx, r.cfg.Exe)
	cmd.Env = append(os.Environ(), ChildEnv+"="+string(env))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("loadtest: child stdin: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("loadtest: child stdout: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("loadtest: start the client process %s: %w", r.cfg.Exe, err)
	}
	p := &childProc{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout)}
	if err := expectLine(p.out, childReady); err != nil {
		p.close()
		return nil, fmt.Errorf("loadtest: the client process did not get ready: %w", errors.Join(err, ctx.Err()))
	}
	return p, nil
}

// measure has child p do its step while a load meter measures t: it
// starts the meter and the step, calls during (when not nil) meanwhile,
// waits for the step's end, stops the meter, and returns what it measured
// with the child's result counted in, and that result.
func (r *runner) measure(ctx context.Context, t *target, p *childProc, during func(*loadMeter)) (load, childResult, error) {
	m := r.startLoad(ctx, t)
	err := p.start()
	if err == nil {
		if during != nil {
			during(m)
		}
		err = p.finished()
	}
	l := m.stop(ctx, t)
	if err != nil {
		return l, childResult{}, err
	}
	out, err := p.result()
	if err != nil {
		return l, out, err
	}
	l.addClients(out)
	return l, out, nil
}

// start has a streams or fanout child start its step.
func (p *childProc) start() error {
	if err := say(p.stdin, childGo); err != nil {
		return fmt.Errorf("loadtest: tell the client process to go: %w", err)
	}
	return nil
}

// finished returns once a started child is done with its step.
func (p *childProc) finished() error {
	if err := expectLine(p.out, childDone); err != nil {
		return fmt.Errorf("loadtest: the client process did not finish: %w", err)
	}
	return nil
}

// expectLine reads the next line from the other process and fails unless
// it is want.
func expectLine(r *bufio.Reader, want string) error {
	line, err := r.ReadString('\n')
	if err != nil {
		return fmt.Errorf("loadtest: want %q from the other process: %w", want, err)
	}
	if got := strings.TrimSpace(line); got != want {
		return fmt.Errorf("loadtest: want %q from the other process, got %.200q", want, got)
	}
	return nil
}

// result reads what a streams or fanout child reports once it is done.
func (p *childProc) result() (childResult, error) {
	var res childResult
	line, err := p.out.ReadBytes('\n')
	if err != nil {
		return res, fmt.Errorf("loadtest: the client process ended without its result: %w", err)
	}
	if err := json.Unmarshal(line, &res); err != nil {
		return res, fmt.Errorf("loadtest: the client process's result: %w", err)
	}
	return res, nil
}

// close tells the child to close its connections and waits until it has
// exited.
func (p *childProc) close() {
	_ = p.stdin.Close()
	_ = p.cmd.Wait()
}
