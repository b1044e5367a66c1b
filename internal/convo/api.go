package convo

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/chatgateway/gateway/internal/metrics"
	"github.com/chatgateway/gateway/protocol"
)

// Frame is one encoded event on its way to a subscriber.
type Frame struct {
	// Data is the event's JSON, exactly as stored.
	Data []byte
	// Born is when the first model chunk the event carries arrived; it is
	// zero for replayed events and events not made from model chunks.
	// Transports measure relay latency from it.
	Born time.Time
	// Durable is when the commit that stored the event finished; it is
	// zero for replayed events. Transports measure delivery latency from
	// it: what the gateway adds to the time storage takes.
	Durable time.Time
}

// Subscriber receives the events of the conversations it subscribes to.
// internal/conn implements it for a WebSocket.
type Subscriber interface {
	// Send queues one frame without blocking. It returns false when the
	// subscriber cannot keep up; the hub then drops it, and the subscriber
	// is expected to close itself as a slow consumer.
	Send(f Frame) bool
	// SendWait queues one frame, waiting for room in the queue until ctx
	// is done. Replays use it, so that a long history paces itself to the
	// client instead of overflowing its queue.
	SendWait(ctx context.Context, f Frame) error
	// Gone tells the subscriber that conversation was deleted: it is no
	// longer subscribed to it. It must not block.
	Gone(conversation string)
}

// Config tunes a Service. Zero values mean the documented defaults.
type Config struct {
	// DefaultModel is the model id of conversations created without one.
	DefaultModel string
	// MaxTextBytes bounds a user message (default 64 KiB).
	MaxTextBytes int
	// MaxQueuedTurns bounds the turns waiting behind a running one in a
	// conversation (default 16); more sends get "busy".
	MaxQueuedTurns int
	// MaxModelCalls bounds the model calls in progress at once in this
	// process (0: no bound): a turn whose call would pass it waits, first
	// come first served, until a call ends. An agent's turn takes one for
	// each of its steps' calls, none while its tools run.
	MaxModelCalls int
	// MaxToolCalls bounds the agents' tool calls this process runs at
	// once (0: no bound): a call whose run would pass it waits in line,
	// first come first served, until a run ends, for at most its tool's
	// timeout (then it ends with status timeout, the gateway busy); the
	// run that follows has the whole timeout. A call that finds
	// MaxWaitingCalls calls in line already does not join it: it ends at
	// once with status error and RunRefusedError. Calls waiting for an
	// approval or a client's output do not count (MaxWaitingCalls bounds
	// them).
	MaxToolCalls int
	// MaxWaitingCalls bounds, in this process, the agents' tool calls
	// waiting for a user's approval or a client's tool_output at once,
	// and apart from those, the calls waiting in line for a tool run
	// (see MaxToolCalls) at once (0: no bound). A waiting call keeps its
	// turn, with what the turn holds, for as long as its tool's timeout:
	// a call that would wait while that many wait already is not waited
	// for. It ends at once with status error and WaitRefusedError (or
	// RunRefusedError, in line for a run), and its turn goes on (see
	// agentRun.runCalls and agentRun.takeRun).
	MaxWaitingCalls int
	// MaxWaitingTurns bounds the turns waiting for their first model
	// call, with MaxModelCalls set (default DefaultMaxWaitingTurns): a
	// turn that finds that many waiting ends at once, with stop_reason
	// error and ErrTooManyWaiting, its message kept. An agent's later
	// steps always wait their turn.
	MaxWaitingTurns int
	// MaxHistoryBytes bounds what a turn reads of its conversation to send
	// the model (default DefaultMaxHistoryBytes): its messages, as
	// MessageBytes counts them, and for an agent's turn the tool inputs
	// and tool results of its earlier turns' steps too (their texts make
	// up the stored replies, counted once among the messages). A turn
	// whose history is longer ends at once, with stop_reason error and
	// ErrHistoryTooLong, without calling the model; its message stays
	// stored.
	MaxHistoryBytes int
	// Logger receives the service's logs (default slog.Default()).
	Logger *slog.Logger
	// Metrics receives the service's measurements (default: a private
	// registry nobody reads).
	Metrics *metrics.Metrics
	// TracerProvider receives a span per turn, the parent of the model's
	// (nil: tracing is off, and no span is made).
	TracerProvider trace.TracerProvider
	// Agents are the agents conversations may be created with (nil:
	// none).
	Agents Agents
	// MaxToolOutputBytes bounds a client tool's output: a longer one is
	// cut and says so (0: toolout.DefaultMaxBytes; at least
	// toolout.MinBytes).
	MaxToolOutputBytes int
}

// Action is an action event published by an external agent.
type Action struct {
	Turn   string
	Name   string
	Input  json.RawMessage
	Output json.RawMessage
}

// Errors that convo returns; each is a *protocol.Error so the transports
// can send it as it is. Compare with errors.Is.
var (
	ErrNotFound = &protocol.Error{Code: protocol.CodeNotFound, Message: "conversation not found"}
	// ErrReplaced refuses a subscribe whose created_at is not the
	// conversation's: the one the client knew was deleted, and the id
	// may name another one now. It is not_found, as for the deleted
	// conversation itself, so clients need not tell the two apart.
	ErrReplaced    = &protocol.Error{Code: protocol.CodeNotFound, Message: "conversation not found: the one with this created_at was deleted, and its id names a newer conversation now"}
	ErrExists      = &protocol.Error{Code: protocol.CodeBadRequest, Message: "conversation already exists"}
	ErrUnavailable = &protocol.Error{Code: protocol.CodeUnavailable, Message: "storage unavailable, try again"}
	ErrClosed      = &protocol.Error{Code: protocol.CodeUnavailable, Message: "the gateway is shutting down"}
	// ErrTooLarge refuses an append whose events are more than the Log
	// stores at once (cluster mode: one NATS message): trying again
	// cannot help, unlike ErrUnavailable.
	ErrTooLarge = &protocol.Error{Code: protocol.CodeTooLarge, Message: "too large to store"}
	// ErrTooManyWaiting ends a turn that would wait for its first model
	// call while Config.MaxWaitingTurns turns wait already: its message
	// stays stored, and its turn_end carries this error instead of a
	// reply.
	ErrTooManyWaiting = &protocol.Error{Code: protocol.CodeBusy,
		Message: "the gateway is busy: too many turns are waiting for the model; send again later"}
	// ErrHistoryTooLong ends a turn whose conversation is longer than
	// Config.MaxHistoryBytes: its message stays stored, and every later
	// turn of the conversation ends the same way.
	ErrHistoryTooLong = &protocol.Error{Code: protocol.CodeTooLarge,
		Message: "the conversation is too long to send to the model: start a new one"}
)
