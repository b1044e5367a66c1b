package conntest

import (
	"context"
	"fmt"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

// GatedModel streams "a0 … a4 ", waits until Gate is closed (or has a
// value), then streams "b0 … b4 ": a reply that is in the middle of its
// stream for as long as a test needs.
type GatedModel struct{ Gate chan struct{} }

// Stream implements convo.Model.
func (m GatedModel) Stream(ctx context.Context, _ convo.ModelRequest, emit func(convo.Chunk)) (convo.Result, error) {
	for i := range 5 {
		emit(convo.Chunk{Kind: convo.ChunkText, Text: fmt.Sprintf("a%d ", i)})
	}
	select {
	case <-m.Gate:
	case <-ctx.Done():
		return convo.Result{}, ctx.Err()
	}
	for i := range 5 {
		emit(convo.Chunk{Kind: convo.ChunkText, Text: fmt.Sprintf("b%d ", i)})
	}
	return convo.Result{StopReason: protocol.StopEndTurn}, nil
}
