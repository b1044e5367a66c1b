// Package demo is the model the gateway answers with when no AWS account is
// in use: it streams a short scripted reply word by word and says that it is
// the demo model.
package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/internal/pause"
	"github.com/chatgateway/gateway/protocol"
)

// DefaultWordDelay is the pause between two streamed words.
const DefaultWordDelay = 30 * time.Millisecond

// Options tunes a Model. Zero values mean the documented defaults.
type Options struct {
	// WordDelay is the pause before each streamed chunk after the first
	// (default DefaultWordDelay; a negative value means no pause).
	WordDelay time.Duration
	// FirstDelay is the pause before the first chunk (default none).
	FirstDelay time.Duration
	// Reply scripts the answer text for a request; the default echoes the
	// last user message and counts the turns.
	Reply func(convo.ModelRequest) string
}

// Model is the demo model. Its zero value is not usable; call New.
type Model struct {
	opts Options
}

var _ convo.Model = (*Model)(nil)

// New returns a demo model with opts.
func New(opts Options) *Model {
	switch {
	case opts.WordDelay == 0:
		opts.WordDelay = DefaultWordDelay
	case opts.WordDelay < 0:
		opts.WordDelay = 0
	}
	if opts.Reply == nil {
		opts.Reply = defaultReply
	}
	return &Model{opts: opts}
}

// Commands that make the demo model show the other kinds of chunk: a last
// user message starting with ThinkCommand gets thinking chunks before the
// answer. In a conversation with tools (an agent's), lines of the form
// "/tool NAME {json}" make the model call those tools, and it answers
// their results with a summary; without tools, a message starting with
// ToolCommand gets a "clock" action, as in protocol v1.
const (
	ThinkCommand = "/think"
	ToolCommand  = "/tool"
)

// Stream implements convo.Model: it emits the reply one word at a time,
// after FirstDelay and then WordDelay between chunks, and ends with stop
// reason end_turn (tool_use when it calls tools) and word counts as usage.
// A done ctx ends it promptly with an error wrapping ctx.Err().
func (m *Model) Stream(ctx context.Context, req convo.ModelRequest, emit func(convo.Chunk)) (convo.Result, error) {
	last := lastUserText(req.History)
	var chunks []convo.Chunk
	reply, uses, agentic := toolStep(req)
	switch {
	case agentic:
	case strings.HasPrefix(last, ThinkCommand):
		chunks = append(chunks,
			convo.Chunk{Kind: convo.ChunkThinking, Text: "The user asked to see my reasoning. "},
			convo.Chunk{Kind: convo.ChunkThinking, Text: "I am the demo model, so I will echo the message."})
	case strings.HasPrefix(last, ToolCommand):
		chunks = append(chunks, clockAction())
	}
	if !agentic {
		reply = m.opts.Reply(req)
	}
	for _, w := range strings.SplitAfter(reply, " ") {
		if w != "" {
			chunks = append(chunks, convo.Chunk{Kind: convo.ChunkText, Text: w})
		}
	}

	wait := m.opts.FirstDelay
	for _, c := range chunks {
		if err := pause.For(ctx, wait); err != nil {
			return convo.Result{}, fmt.Errorf("demo: %w", err)
		}
		emit(c)
		wait = m.opts.WordDelay
	}
	res := convo.Result{
		StopReason: protocol.StopEndTurn,
		Usage: protocol.Usage{
			InputTokens:  inputWords(req),
			OutputTokens: int64(len(strings.Fields(reply))),
		},
		ToolUses: uses,
	}
	if len(uses) > 0 {
		res.StopReason = protocol.StopToolUse
	}
	return res, nil
}

// clockAction is the tool call the demo model makes for ToolCommand.
func clockAction() convo.Chunk {
	out, _ := json.Marshal(map[string]string{"time": time.Now().UTC().Format(time.RFC3339)})
	return convo.Chunk{Kind: convo.ChunkAction, Name: "clock", Input: json.RawMessage(`{"tz":"UTC"}`), Output: out}
}

// maxEcho bounds how much of the user's message the default reply repeats.
const maxEcho = 200

func defaultReply(req convo.ModelRequest) string {
	said := []rune(lastUserText(req.History))
	if len(said) > maxEcho {
		said = append(said[:maxEcho], '…')
	}
	return fmt.Sprintf("(Demo model — no AWS account in use.) You said: “%s”. "+
		"This is turn %d of this conversation. "+
		"Start the gateway with -provider bedrock to talk to a real model.",
		string(said), userTurns(req.History))
}

func lastUserText(h []convo.HistoryMessage) string {
	for i := len(h) - 1; i >= 0; i-- {
		if h[i].Role == protocol.RoleUser {
			return h[i].Text
		}
	}
	return ""
}

func userTurns(h []convo.HistoryMessage) int {
	n := 0
	for _, m := range h {
		if m.Role == protocol.RoleUser {
			n++
		}
	}
	return n
}

// inputWords counts the words the model is sent, standing in for tokens.
func inputWords(req convo.ModelRequest) int64 {
	n := len(strings.Fields(req.System))
	for _, m := range req.History {
		n += len(strings.Fields(m.Text))
	}
	return int64(n)
}
