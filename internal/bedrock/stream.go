package bedrock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	smithy "github.com/aws/smithy-go"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/pause"
	"github.com/chatgateway/gateway/protocol"
)

// errStreamCut is the failure of a stream whose connection failed: the
// SDK reports a read error, or, for a connection closed between or inside
// event frames, a normal end of stream without messageStop.
var errStreamCut = errors.New("the connection to Bedrock closed before the end of the reply")

// errStreamIdle is the failure of a stream on which no event arrived for
// Options.IdleTimeout: the upstream or the path to it is stuck, and the
// connection may never fail on its own.
var errStreamIdle = errors.New("the stream stalled")

// stream is Stream without its span.
func (c *Client) stream(ctx context.Context, req convo.ModelRequest, emit func(convo.Chunk)) (convo.Result, error) {
	in, err := c.input(req)
	if err != nil {
		return convo.Result{}, err
	}
	for attempt := 1; ; attempt++ {
		res, ph, err := c.attempt(ctx, in, emit)
		if err == nil {
			return res, nil
		}
		if ctx.Err() != nil {
			return convo.Result{}, fmt.Errorf("bedrock: stream of %s: %w", req.Model, ctx.Err())
		}
		if ph == phaseEmitted || !retryable(err) || attempt == c.opts.MaxAttempts {
			c.log.Warn("bedrock: stream failed", "model", req.Model, "region", c.region, "attempt", attempt, "err", err)
			return convo.Result{}, c.modelError(req.Model, ph, err)
		}
		wait := backoff(attempt, c.opts.BackoffBase, c.opts.BackoffMax)
		c.log.Info("bedrock: retrying", "model", req.Model, "attempt", attempt, "wait", wait, "err", err)
		retrying(ctx, attempt, wait, err)
		if err := pause.For(ctx, wait); err != nil {
			return convo.Result{}, fmt.Errorf("bedrock: stream of %s: %w", req.Model, err)
		}
	}
}

// phase is how far an attempt got before it failed.
type phase int

const (
	phaseRequest phase = iota // no response: an HTTP error or a network failure
	phaseStream               // the stream started; nothing emitted yet
	phaseEmitted              // at least one chunk emitted: never retried
)

// attempt makes one ConverseStream call and reads its stream to the end.
func (c *Client) attempt(ctx context.Context, in *bedrockruntime.ConverseStreamInput, emit func(convo.Chunk)) (convo.Result, phase, error) {
	out, err := c.rt.ConverseStream(ctx, in, ownCodec)
	if err != nil {
		return convo.Result{}, phaseRequest, err
	}
	es := out.GetStream()
	// Closing the stream closes the response body, and with it the HTTP
	// request: on cancel, on failure and after the end alike.
	defer es.Close()
	r := reader{emit: emit, tools: map[int32]*toolUse{}, log: c.log}
	// idle fires when Bedrock has sent nothing for IdleTimeout since the
	// headers or the last event; returning closes the stream (see above).
	idle := time.NewTimer(c.opts.IdleTimeout)
	defer idle.Stop()
	for {
		select {
		case <-ctx.Done():
			return convo.Result{}, r.phase(), ctx.Err()
		case <-idle.C:
			return convo.Result{}, r.phase(), fmt.Errorf("%w: Bedrock sent nothing for %v", errStreamIdle, c.opts.IdleTimeout)
		case ev, ok := <-es.Events():
			if !ok {
				if err := es.Err(); err != nil {
					var api smithy.APIError
					if !errors.As(err, &api) {
						err = fmt.Errorf("%w: %w", errStreamCut, err)
					}
					return convo.Result{}, r.phase(), err
				}
				if r.stop == nil {
					return convo.Result{}, r.phase(), errStreamCut
				}
				c.log.Debug("bedrock: reply done", "model", aws.ToString(in.ModelId), "stop_reason", *r.stop,
					"input_tokens", r.usage.InputTokens, "output_tokens", r.usage.OutputTokens,
					"bedrock_latency_ms", r.latencyMS)
				return convo.Result{StopReason: stopReason(*r.stop, c.log), Usage: r.usage, ToolUses: r.uses}, r.phase(), nil
			}
			r.handle(ev)
			if r.inputFull {
				// The turn could not store these tool uses (see
				// reader.toolBytes): stop reading, and end as a reply
				// over the limit does, with none of them.
				c.log.Warn("bedrock: tool input over the reply's size limit, stream closed", "model", aws.ToString(in.ModelId),
					"limit", convo.MaxReplyBytes)
				return convo.Result{StopReason: protocol.StopMaxTokens, Usage: r.usage}, r.phase(), nil
			}
			// After handle, so that time spent emitting is not Bedrock's.
			idle.Reset(c.opts.IdleTimeout)
		}
	}
}

// reader turns stream events into chunks.
type reader struct {
	emit    func(convo.Chunk)
	emitted bool
	// tools holds the tool use blocks being assembled, by content block
	// index; uses those complete, in order.
	tools map[int32]*toolUse
	uses  []convo.ToolUse
	// toolBytes is the tool input of the reply so far. Past
	// convo.MaxReplyBytes, more than a turn stores whatever its text
	// (convo's count of a tool input is never less than its bytes),
	// inputFull is set and the input is no longer kept: it would
	// otherwise grow as far as the model's max tokens, not our bound.
	toolBytes int
	inputFull bool
	// stop is messageStop's stop reason, once it arrived.
	stop      *string
	usage     protocol.Usage
	latencyMS int64
	log       *slog.Logger
}

type toolUse struct {
	id, name string
	input    strings.Builder
}

func (r *reader) phase() phase {
	if r.emitted {
		return phaseEmitted
	}
	return phaseStream
}

func (r *reader) send(ch convo.Chunk) {
	r.emitted = true
	r.emit(ch)
}

func (r *reader) handle(ev types.ConverseStreamOutput) {
	switch e := ev.(type) {
	case *types.ConverseStreamOutputMemberContentBlockStart:
		if tu, ok := e.Value.Start.(*types.ContentBlockStartMemberToolUse); ok {
			r.tools[aws.ToInt32(e.Value.ContentBlockIndex)] = &toolUse{id: aws.ToString(tu.Value.ToolUseId), name: aws.ToString(tu.Value.Name)}
		}
	case *types.ConverseStreamOutputMemberContentBlockDelta:
		r.delta(aws.ToInt32(e.Value.ContentBlockIndex), e.Value.Delta)
	case *types.ConverseStreamOutputMemberContentBlockStop:
		index := aws.ToInt32(e.Value.ContentBlockIndex)
		if tu := r.tools[index]; tu != nil {
			delete(r.tools, index)
			r.uses = append(r.uses, convo.ToolUse{ID: tu.id, Name: tu.name, Input: toolInput(tu.input.String())})
		}
	case *types.ConverseStreamOutputMemberMessageStop:
		stop := string(e.Value.StopReason)
		r.stop = &stop
	case *types.ConverseStreamOutputMemberMetadata:
		if u := e.Value.Usage; u != nil {
			r.usage = protocol.Usage{InputTokens: int64(aws.ToInt32(u.InputTokens)), OutputTokens: int64(aws.ToInt32(u.OutputTokens))}
		}
		if m := e.Value.Metrics; m != nil {
			r.latencyMS = aws.ToInt64(m.LatencyMs)
		}
	case *types.UnknownUnionMember:
		r.log.Debug("bedrock: unknown stream event", "event", e.Tag)
	}
}

func (r *reader) delta(index int32, d types.ContentBlockDelta) {
	switch d := d.(type) {
	case *types.ContentBlockDeltaMemberText:
		if d.Value != "" {
			r.send(convo.Chunk{Kind: convo.ChunkText, Text: d.Value})
		}
	case *types.ContentBlockDeltaMemberReasoningContent:
		// Signatures and redacted reasoning are opaque: only text is shown.
		if t, ok := d.Value.(*types.ReasoningContentBlockDeltaMemberText); ok && t.Value != "" {
			r.send(convo.Chunk{Kind: convo.ChunkThinking, Text: t.Value})
		}
	case *types.ContentBlockDeltaMemberToolUse:
		if tu := r.tools[index]; tu != nil && !r.inputFull {
			in := aws.ToString(d.Value.Input)
			r.toolBytes += len(in)
			if r.inputFull = r.toolBytes > convo.MaxReplyBytes; !r.inputFull {
				tu.input.WriteString(in)
			}
		}
	}
}

// toolInput is the JSON value of an assembled tool input: the input itself
// when it is valid JSON, {} when it is empty, else the raw text as a JSON
// string.
func toolInput(s string) json.RawMessage {
	if strings.TrimSpace(s) == "" {
		return json.RawMessage(`{}`)
	}
	if json.Valid([]byte(s)) {
		return json.RawMessage(s)
	}
	b, _ := json.Marshal(s) // a string always marshals
	return b
}

// stopReason maps Bedrock's stop reason to the wire's. Reasons the wire
// has no word for become end_turn (model_context_window_exceeded, the
// reply cut by the context limit, becomes max_tokens), and are logged.
func stopReason(s string, log *slog.Logger) string {
	switch types.StopReason(s) {
	case types.StopReasonEndTurn:
		return protocol.StopEndTurn
	case types.StopReasonToolUse:
		return protocol.StopToolUse
	case types.StopReasonMaxTokens, types.StopReasonModelContextWindowExceeded:
		return protocol.StopMaxTokens
	case types.StopReasonStopSequence:
		return protocol.StopStopSequence
	case types.StopReasonGuardrailIntervened, types.StopReasonContentFiltered:
		return protocol.StopContentFiltered
	}
	log.Warn("bedrock: unmapped stop reason, reported as end_turn", "stop_reason", s)
	return protocol.StopEndTurn
}
