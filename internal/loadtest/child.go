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
// the process does (a childSpec). The idle and streams scenarios run their
// clients there, so that the server measured here pays neither their
// memory nor their collections. Both cmd/loadgen and the package's tests
// call RunChild first thing.
const ChildEnv = "LOADTEST_CLIENTS"

// childLife bounds the life of a client process.
const childLife = 10 * time.Minute

// The lines a client process and its parent exchange. The child writes
// childReady once its connections are open. A streams child then waits
// for childGo, converses, writes childDone, and then its childResult as
// one JSON line (read after the parent's step is measured, so that
// decoding the samples does not count). Every child keeps its
// connections open until its stdin reaches its end.
const (
	childReady = "ready"
	childGo    = "go"
	childDone  = "done"
)

// The roles of a client process.
const (
	roleIdle    = "idle"
	roleStreams = "streams"
)

// childSpec is what a client process does: open N connections to URL and,
// for the streams role, converse on each as the streams scenario does,
// until Deadline.
type childSpec struct {
	Role     string
	URL      string
	N        int
	Deadline time.Time
	// Streams: the messages each connection sends, and the shape of the
	// model's replies, to check them and to spread the clients' starts.
	Turns, Chunks, Size int
	Delay               time.Duration
}

// childResult is what a streams client process reports.
type childResult struct {
	// Turns is the number of turns that ended, over all connections.
	Turns int
	// Ack and Relay are the latency samples (see converse).
	Ack, Relay []time.Duration
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
	if spec.Role != roleIdle && spec.Role != roleStreams {
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
	if _, err := fmt.Fprintln(stdout, childReady); err != nil {
		return true, fmt.Errorf("loadtest: %w", err)
	}
	in := bufio.NewReader(stdin)
	if spec.Role == roleStreams {
		if err := expectLine(in, childGo); err != nil {
			return true, err
		}
		model := newStampModel(spec.Chunks, spec.Size, spec.Delay)
		res := converseAll(ctx, clients, spec.Turns, model)
		if _, err := fmt.Fprintln(stdout, childDone); err != nil {
			return true, fmt.Errorf("loadtest: %w", err)
		}
		if err := json.NewEncoder(stdout).Encode(res); err != nil {
			return true, fmt.Errorf("loadtest: %w", err)
		}
	} else {
		for _, c := range clients {
			c.ws.CloseRead(context.Background())
		}
	}
	_, _ = io.Copy(io.Discard, in)
	return true, nil
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

// converse has a streams child converse, and returns once it is done.
func (p *childProc) converse() error {
	if _, err := fmt.Fprintln(p.stdin, childGo); err != nil {
		return fmt.Errorf("loadtest: tell the client process to go: %w", err)
	}
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

// result reads what a streams child reports once it is done.
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
