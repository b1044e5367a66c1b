package fakebedrock

import (
	"encoding/json"
	"net"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/protocol/eventstream"
)

// Reply scripts the answer to one request. The zero Reply streams an empty
// end_turn message.
//
// The stream holds, in order and each in its own content block: the
// Reasoning deltas, the text Chunks, then one block per ToolUses entry;
// then messageStop and metadata. Fail and Hold count text chunks only.
type Reply struct {
	// Error answers with an HTTP error instead of a stream.
	Error *HTTPError
	// ResponseDelay is waited before answering, as a network round trip
	// and the model's time to first token would. Note: a raw SDK client
	// (not internal/bedrock's) answered at once can lose the stream to a
	// race between smithy-go and net/http; see bedrock's inMemoryBody.
	ResponseDelay time.Duration

	Reasoning []string
	Chunks    []string
	ToolUses  []ToolUse
	// StopReason goes in messageStop (default "end_turn").
	StopReason string
	Usage      Usage
	// LatencyMS goes in metadata.metrics.latencyMs.
	LatencyMS int64

	// Delay is waited before every event.
	Delay time.Duration
	// Fail ends the stream abnormally after Fail.After text chunks.
	Fail *Failure
	// Hold, when not nil, pauses the stream after HoldAfter text chunks
	// until Hold is closed or the client goes away.
	Hold      <-chan struct{}
	HoldAfter int
	// Gone, when not nil, is closed if the client goes away (closes the
	// connection or cancels the request) before the reply is complete.
	Gone chan<- struct{}
}

// Failure ends a stream abnormally.
type Failure struct {
	// After is the number of text chunks sent first.
	After int
	// Exception is the :exception-type of the exception message sent, in
	// the service's camelCase (e.g. "throttlingException",
	// "modelStreamErrorException"). Empty means the connection is dropped
	// instead, without a final chunk: closed, or reset (TCP RST) with
	// Reset.
	Exception string
	Message   string
	Reset     bool
}

// ToolUse is one tool use content block. Input is sent as one delta per
// part; the parts concatenate to the tool's JSON input.
type ToolUse struct {
	ID, Name string
	Input    []string
}

// Usage is metadata.usage.
type Usage struct {
	InputTokens, OutputTokens int32
}

// HTTPError is an error answered before the stream starts, as the service
// sends it: the status, an X-Amzn-ErrorType header and a JSON body.
type HTTPError struct {
	Status int
	// Type is the error shape name, e.g. "ThrottlingException" (429),
	// "ValidationException" (400), "AccessDeniedException" (403),
	// "ResourceNotFoundException" (404).
	Type    string
	Message string
}

func writeHTTPError(w http.ResponseWriter, e *HTTPError) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-ErrorType", e.Type+":http://internal.amazon.com/coral/com.amazon.bedrock/")
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": e.Message})
}

// writer sends eventstream messages, flushing after each one so that the
// client sees every event as soon as it is written.
type writer struct {
	w     http.ResponseWriter
	r     *http.Request
	rc    *http.ResponseController
	enc   *eventstream.Encoder
	delay time.Duration
	// gone is set once the client has gone away.
	gone bool
}

// wait blocks until ch yields or is closed, or the client goes away; it
// returns false in the last case.
func wait[T any](wr *writer, ch <-chan T) bool {
	select {
	case <-ch:
		return true
	case <-wr.r.Context().Done():
		wr.gone = true
		return false
	}
}

// send waits the reply's delay, then writes one message. It returns false
// when the client has gone away.
func (wr *writer) send(headers eventstream.Headers, payload any) bool {
	if wr.delay > 0 {
		t := time.NewTimer(wr.delay)
		defer t.Stop()
		if !wait(wr, t.C) {
			return false
		}
	}
	body, err := json.Marshal(payload)
	if err != nil {
		panic(err) // the payloads are built here from plain values
	}
	headers = append(headers, eventstream.Header{Name: ":content-type", Value: eventstream.StringValue("application/json")})
	if err := wr.enc.Encode(wr.w, eventstream.Message{Headers: headers, Payload: body}); err != nil {
		wr.gone = true
		return false
	}
	if err := wr.rc.Flush(); err != nil {
		wr.gone = true
		return false
	}
	return true
}

// reset takes the connection over and resets it, so that the client's next
// read fails with "connection reset by peer".
func (wr *writer) reset() {
	c, _, err := wr.rc.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

func (wr *writer) event(typ string, payload any) bool {
	return wr.send(eventstream.Headers{
		{Name: ":event-type", Value: eventstream.StringValue(typ)},
		{Name: ":message-type", Value: eventstream.StringValue("event")},
	}, payload)
}

func (wr *writer) exception(typ, message string) bool {
	return wr.send(eventstream.Headers{
		{Name: ":exception-type", Value: eventstream.StringValue(typ)},
		{Name: ":message-type", Value: eventstream.StringValue("exception")},
	}, map[string]string{"message": message})
}

// block writes one content block of deltas and its contentBlockStop.
func (wr *writer) block(index int, deltas []string, delta func(string) obj) bool {
	for _, d := range deltas {
		if !wr.event("contentBlockDelta", obj{"contentBlockIndex": index, "delta": delta(d)}) {
			return false
		}
	}
	return wr.event("contentBlockStop", obj{"contentBlockIndex": index})
}

type obj = map[string]any

func textDelta(s string) obj      { return obj{"text": s} }
func reasoningDelta(s string) obj { return obj{"reasoningContent": obj{"text": s}} }
func toolUseDelta(s string) obj   { return obj{"toolUse": obj{"input": s}} }

// stream writes the reply as an event stream.
func (reply *Reply) stream(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/vnd.amazon.eventstream")
	w.WriteHeader(http.StatusOK)
	wr := &writer{w: w, r: r, rc: http.NewResponseController(w), enc: eventstream.NewEncoder(), delay: reply.Delay}
	reply.events(wr)
	if wr.gone && reply.Gone != nil {
		close(reply.Gone)
	}
}

// events writes the reply's events in order, stopping early when the
// client goes away or the script ends the stream with an exception.
func (reply *Reply) events(wr *writer) {
	if !wr.event("messageStart", obj{"role": "assistant"}) {
		return
	}
	index := 0
	if len(reply.Reasoning) > 0 {
		if !wr.block(index, reply.Reasoning, reasoningDelta) {
			return
		}
		index++
	}
	if !reply.text(wr, index) {
		return
	}
	if len(reply.Chunks) > 0 {
		index++
	}
	for _, tu := range reply.ToolUses {
		start := obj{"toolUse": obj{"toolUseId": tu.ID, "name": tu.Name}}
		if !wr.event("contentBlockStart", obj{"contentBlockIndex": index, "start": start}) ||
			!wr.block(index, tu.Input, toolUseDelta) {
			return
		}
		index++
	}
	stop := reply.StopReason
	if stop == "" {
		stop = "end_turn"
	}
	if !wr.event("messageStop", obj{"stopReason": stop}) {
		return
	}
	wr.event("metadata", obj{
		"usage": obj{
			"inputTokens":  reply.Usage.InputTokens,
			"outputTokens": reply.Usage.OutputTokens,
			"totalTokens":  reply.Usage.InputTokens + reply.Usage.OutputTokens,
		},
		"metrics": obj{"latencyMs": reply.LatencyMS},
	})
}

// text writes the text block at index, applying Hold and Fail. It returns
// false when the stream must stop.
func (reply *Reply) text(wr *writer, index int) bool {
	for i := 0; ; i++ {
		if reply.Hold != nil && i == reply.HoldAfter && !wait(wr, reply.Hold) {
			return false
		}
		if reply.Fail != nil && i == reply.Fail.After {
			if reply.Fail.Reset {
				wr.reset()
				return false
			}
			if reply.Fail.Exception == "" {
				// Abort the response: the connection closes without the
				// chunked body's terminator, as when a network path dies.
				panic(http.ErrAbortHandler)
			}
			wr.exception(reply.Fail.Exception, reply.Fail.Message)
			return false
		}
		if i == len(reply.Chunks) {
			break
		}
		if !wr.event("contentBlockDelta", obj{"contentBlockIndex": index, "delta": textDelta(reply.Chunks[i])}) {
			return false
		}
	}
	return len(reply.Chunks) == 0 || wr.event("contentBlockStop", obj{"contentBlockIndex": index})
}
