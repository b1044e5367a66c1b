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
	msgs := messages(req.History)
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
	return in, nil
}

// messages shapes the stored history the way the service requires: roles
// alternate, starting and ending with user, and no text block is blank.
// Blank messages (a cancelled or failed turn that produced no text) are
// skipped, consecutive messages of one role (a message queued during a
// turn, or the neighbours of a skipped reply) are merged with a blank line
// between them, and assistant messages before the first user message or
// after the last one are dropped. Partial replies with text are kept.
func messages(history []convo.HistoryMessage) []types.Message {
	type msg struct {
		role  types.ConversationRole
		texts []string
	}
	var ms []msg
	for _, h := range history {
		if strings.TrimSpace(h.Text) == "" {
			continue
		}
		role := types.ConversationRoleUser
		if h.Role == protocol.RoleAssistant {
			role = types.ConversationRoleAssistant
		}
		if len(ms) == 0 && role != types.ConversationRoleUser {
			continue
		}
		if n := len(ms); n > 0 && ms[n-1].role == role {
			ms[n-1].texts = append(ms[n-1].texts, h.Text)
			continue
		}
		ms = append(ms, msg{role: role, texts: []string{h.Text}})
	}
	if n := len(ms); n > 0 && ms[n-1].role != types.ConversationRoleUser {
		ms = ms[:n-1]
	}
	out := make([]types.Message, len(ms))
	for i, m := range ms {
		out[i] = types.Message{
			Role:    m.role,
			Content: []types.ContentBlock{&types.ContentBlockMemberText{Value: strings.Join(m.texts, "\n\n")}},
		}
	}
	return out
}
