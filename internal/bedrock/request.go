package bedrock

import (
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

// input maps a turn to a ConverseStream request.
func (c *Client) input(req convo.ModelRequest) (*bedrockruntime.ConverseStreamInput, error) {
	if req.Model == "" {
		return nil, protocol.Errorf(protocol.CodeModelError, "no Bedrock model id: set the gateway's default model or the conversation's model")
	}
	msgs := messages(req.History, toolStatus(req.Model))
	if len(msgs) == 0 {
		return nil, protocol.Errorf(protocol.CodeModelError, "nothing to send to model %q: the history has no user text", req.Model)
	}
	in := &bedrockruntime.ConverseStreamInput{ModelId: aws.String(req.Model), Messages: msgs}
	if strings.TrimSpace(req.System) != "" {
		in.System = []types.SystemContentBlock{&types.SystemContentBlockMemberText{Value: req.System}}
	}
	inf := types.InferenceConfiguration{MaxTokens: req.MaxTokens, Temperature: req.Temperature}
	if inf.MaxTokens == nil && c.opts.MaxTokens > 0 {
		inf.MaxTokens = aws.Int32(c.opts.MaxTokens)
	}
	if inf.Temperature == nil {
		inf.Temperature = c.opts.Temperature
	}
	if inf.MaxTokens != nil || inf.Temperature != nil {
		in.InferenceConfig = &inf
	}
	in.ToolConfig = toolConfig(req.Tools, msgs)
	return in, nil
}

// messages shapes the stored history the way the service requires: roles
// alternate, starting and ending with user; no text block is blank; and
// the tool uses of an assistant message are answered, in order, by tool
// results at the start of the next user message. Blank messages (a
// cancelled or failed turn that produced no text) are skipped, consecutive
// messages of one role (a message queued during a turn, or the neighbours
// of a skipped reply) are merged with a blank line between their texts,
// and assistant messages before the first user message or after the last
// one are dropped. Partial replies with text are kept. A failed call's
// result is marked with status error when status says the model takes
// it.
func messages(history []convo.HistoryMessage, status bool) []types.Message {
	var ms []msg
	for _, h := range history {
		if strings.TrimSpace(h.Text) == "" && len(h.ToolUses) == 0 && len(h.ToolResults) == 0 {
			continue
		}
		role := types.ConversationRoleUser
		if h.Role == protocol.RoleAssistant {
			role = types.ConversationRoleAssistant
		}
		if len(ms) == 0 && role != types.ConversationRoleUser {
			continue
		}
		m := msg{role: role, uses: h.ToolUses, results: h.ToolResults}
		if strings.TrimSpace(h.Text) != "" {
			m.texts = []string{h.Text}
		}
		if n := len(ms); n > 0 && ms[n-1].role == role {
			ms[n-1].merge(m)
			continue
		}
		ms = append(ms, m)
	}
	if n := len(ms); n > 0 && ms[n-1].role != types.ConversationRoleUser {
		ms = ms[:n-1]
	}
	out := make([]types.Message, len(ms))
	var uses []convo.ToolUse // the tool uses the next user message answers
	for i, m := range ms {
		out[i] = types.Message{Role: m.role, Content: m.content(uses, status)}
		uses = m.uses
	}
	return out
}

// msg is a message being shaped; only an assistant's has uses.
type msg struct {
	role    types.ConversationRole
	results []convo.ToolResult
	texts   []string
	uses    []convo.ToolUse
}

func (m *msg) merge(next msg) {
	m.results = append(m.results, next.results...)
	m.texts = append(m.texts, next.texts...)
	m.uses = append(m.uses, next.uses...)
}

// content is m's content blocks: for a user message, one result per tool
// use of the assistant message before it (answered), in their order, then
// its text; for an assistant message, its text, then its tool uses.
// status is whether a failed result may say so in its status.
func (m *msg) content(answered []convo.ToolUse, status bool) []types.ContentBlock {
	var blocks []types.ContentBlock
	if m.role == types.ConversationRoleUser {
		for _, u := range answered {
			blocks = append(blocks, resultBlock(u.ID, m.results, status))
		}
	}
	if len(m.texts) > 0 {
		blocks = append(blocks, &types.ContentBlockMemberText{Value: strings.Join(m.texts, "\n\n")})
	}
	if m.role == types.ConversationRoleAssistant {
		for _, u := range m.uses {
			blocks = append(blocks, useBlock(u))
		}
	}
	if len(blocks) == 0 {
		// Only results that answer no tool use: the service refuses them
		// and an empty message alike.
		blocks = append(blocks, &types.ContentBlockMemberText{Value: "(tool results without their calls were left out)"})
	}
	return blocks
}
