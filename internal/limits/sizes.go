package limits

import "github.com/chatgateway/gateway/protocol"

// Defaults of Sizes.
const (
	DefaultMaxTitleBytes  = 1 << 10
	DefaultMaxSystemBytes = 32 << 10
	DefaultMaxActionBytes = 64 << 10
	// MaxModelIDBytes bounds a model id; Bedrock's longest ids (inference
	// profile ARNs) are well under it.
	MaxModelIDBytes = 256
)

// What cluster mode accepts of -max-title-bytes and -max-queued-turns.
// Each record in NATS is one message, and carries the conversation's
// metadata: its title (JSON-escaped, up to six bytes a byte) and its
// queued turns. With a reply of convo.MaxReplyBytes, a turn_end with
// these still fits a message of 1 MiB (the conformance suite's
// LongestTurnEnd stores it); larger, a turn_end could be refused, and its
// turn could not end.
const (
	MaxClusterTitleBytes  = 8 << 10
	MaxClusterQueuedTurns = 64
)

// Sizes bounds what a client may store in one request, below the frame
// and body limits, so that a conversation's metadata and log entries stay
// small enough to list and replay in bounded memory. Zero values mean
// the defaults.
type Sizes struct {
	// Title and System bound a conversation's title and system prompt
	// (default DefaultMaxTitleBytes and DefaultMaxSystemBytes).
	Title, System int
	// Action bounds an action event published over HTTP: its name, turn,
	// input and output together (default DefaultMaxActionBytes).
	Action int
}

// CheckCreate refuses a create whose title or system prompt is over its
// bound (too_large) or whose model id is over MaxModelIDBytes
// (bad_request).
func (s Sizes) CheckCreate(req *protocol.Create) error {
	if err := over("title", len(req.Title), s.Title, DefaultMaxTitleBytes); err != nil {
		return err
	}
	if err := over("system", len(req.System), s.System, DefaultMaxSystemBytes); err != nil {
		return err
	}
	if len(req.Model) > MaxModelIDBytes {
		return protocol.Errorf(protocol.CodeBadRequest, "model: longer than %d bytes", MaxModelIDBytes)
	}
	return nil
}

// CheckAction refuses an action whose name, turn, input and output take
// more than the Action bound together (too_large).
func (s Sizes) CheckAction(name, turn string, input, output []byte) error {
	return over("action", len(name)+len(turn)+len(input)+len(output), s.Action, DefaultMaxActionBytes)
}

// over returns a too_large error naming field when size is over bound
// (def when bound is not positive).
func over(field string, size, bound, def int) error {
	if bound <= 0 {
		bound = def
	}
	if size > bound {
		return protocol.Errorf(protocol.CodeTooLarge, "%s: %d bytes is over the limit of %d", field, size, bound)
	}
	return nil
}
