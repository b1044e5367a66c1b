package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/chatgateway/gateway/internal/metrics"
	"github.com/chatgateway/gateway/internal/toolout"
)

// CallInfo says who a call is for; HTTP tools get it as X-Gateway-*
// headers.
type CallInfo struct {
	// User is the caller's user id ("local" with -auth none).
	User string
	// Conversation is the conversation id.
	Conversation string
	// Call is the model's tool-use id.
	Call string
}

// Result is what a call gave when it ran to its end: an output, or a
// tool-level error (an MCP isError result, a non-2xx status, a connection
// error, an unknown tool, …) to send back to the model as an error result.
// Exactly one of Output and Error is set.
type Result struct {
	// Output is the tool's output, valid JSON, at most the registry's
	// MaxOutputBytes (a longer one is cut, and says so).
	Output json.RawMessage
	// Error is the tool-level error; it is never empty when Output is nil.
	Error string
}

// Progress is one progress notification of a running MCP call.
type Progress struct {
	// Progress is the progress so far; it grows with each notification.
	Progress float64
	// Total is the progress at completion, or 0 when unknown.
	Total float64
	// Message says what is going on, if the server said.
	Message string
}

// Call statuses, as Status returns them and tool_result carries them.
const (
	StatusOK        = "ok"
	StatusError     = "error"
	StatusTimeout   = "timeout"
	StatusCancelled = "cancelled"
)

// ErrTimeout is the error of a call that ran past its tool's timeout.
var ErrTimeout = errors.New("agent: tool call timed out")

// Status is the tool_result status of a call that returned res and err:
// StatusTimeout for ErrTimeout, StatusCancelled for any other error (the
// caller's context ended), StatusError for a tool-level error, else
// StatusOK.
func Status(res Result, err error) string {
	switch {
	case errors.Is(err, ErrTimeout):
		return StatusTimeout
	case err != nil:
		return StatusCancelled
	case res.Error != "":
		return StatusError
	}
	return StatusOK
}

// runner runs calls of one HTTP or MCP tool. An error is a tool-level
// error unless ctx is done.
type runner interface {
	run(ctx context.Context, c CallInfo, input json.RawMessage, progress func(Progress)) (Result, error)
}

// Call runs one call of the tool the model calls tool, with input (the
// model's JSON input; empty means {}). It returns an error only when the
// call did not run to its end: wrapping ErrTimeout past the tool's
// timeout, or ctx's error when ctx ended first; the call's HTTP request or
// MCP request is then aborted. A call whose tool answered returns the
// answer, even if ctx or the timeout ended just after. Everything else —
// an unknown tool, a client tool (the loop waits for those instead), a
// failed request — is a Result with Error set. MCP progress notifications
// go to progress (if not nil), at most ProgressInterval apart and never
// after Call returns, with their message cut to the output limit. Each
// call is counted in the metrics and logged in one line, without its
// input.
func (a *Agent) Call(ctx context.Context, tool string, c CallInfo, input json.RawMessage, progress func(Progress)) (Result, error) {
	start := time.Now()
	res, err := a.call(ctx, tool, c, input, progress)
	if err == nil {
		res = a.env.bound(res)
	}
	a.env.record(a, tool, c, Status(res, err), time.Since(start), res.Error)
	return res, err
}

func (a *Agent) call(ctx context.Context, tool string, c CallInfo, input json.RawMessage, progress func(Progress)) (Result, error) {
	info, ok := a.Tool(tool)
	if !ok {
		return Result{Error: fmt.Sprintf("agent %s has no tool %q", a.Name, tool)}, nil
	}
	r := a.runners[tool]
	if r == nil {
		return Result{Error: fmt.Sprintf("tool %q is answered by a client, not run by the gateway", tool)}, nil
	}
	if len(bytes.TrimSpace(input)) == 0 {
		input = json.RawMessage("{}")
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(input, &obj); err != nil || obj == nil {
		return Result{Error: "the tool input is not a JSON object"}, nil
	}
	report := progress
	progress = func(p Progress) {
		// A progress message reaches the log as a tool's output does.
		if report != nil {
			p.Message = toolout.CapText(p.Message, a.env.maxOutput)
			report(p)
		}
	}
	cctx, cancel := context.WithTimeoutCause(ctx, info.Timeout, ErrTimeout)
	defer cancel()
	res, err := r.run(cctx, c, input, progress)
	switch {
	case err == nil:
		// The tool answered: its answer stands even if ctx or the
		// timeout ended just after it came, as the call is over.
		return res, nil
	case ctx.Err() != nil:
		return Result{}, fmt.Errorf("agent: call %s: %w", tool, ctx.Err())
	case errors.Is(context.Cause(cctx), ErrTimeout):
		return Result{}, fmt.Errorf("%w (after %s)", ErrTimeout, info.Timeout)
	}
	return Result{Error: err.Error()}, nil
}

// env is what every agent of a registry shares.
type env struct {
	log            *slog.Logger
	metrics        *metrics.Metrics
	maxOutput      int
	connectTimeout time.Duration
	httpClient     *http.Client
}

// bound makes res fit the output limit and never leaves it empty.
func (e *env) bound(res Result) Result {
	switch {
	case res.Error != "":
		return Result{Error: toolout.CapText(res.Error, e.maxOutput)}
	case res.Output == nil:
		return Result{Output: json.RawMessage("{}")}
	}
	return Result{Output: toolout.Cap(res.Output, e.maxOutput)}
}

// record counts and logs one call. A tool the agent does not have is
// counted as "unknown", so that the model cannot grow the metric's labels.
func (e *env) record(a *Agent, tool string, c CallInfo, status string, d time.Duration, errText string) {
	label := tool
	if _, ok := a.Tool(tool); !ok {
		label = "unknown"
	}
	e.metrics.ToolCalls.WithLabelValues(label, status).Inc()
	e.metrics.ToolCallSeconds.WithLabelValues(label).Observe(d.Seconds())
	attrs := []any{"agent", a.Name, "tool", tool, "status", status, "duration", d,
		"conversation", c.Conversation, "call", c.Call}
	if errText != "" {
		attrs = append(attrs, "err", toolout.CapText(errText, 200))
	}
	e.log.Info("tool call", attrs...)
}
