//lint:file-ignore ST1005 The messages copy Bedrock's ValidationException texts word for word, capitals and full stops included.

package fakebedrock

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// toolName is the pattern the service requires of a tool's name.
var toolName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

// rawBody is a request body with every content block kept raw, so that
// validate can tell an absent field from an empty one.
type rawBody struct {
	Messages []struct {
		Role    string                       `json:"role"`
		Content []map[string]json.RawMessage `json:"content"`
	} `json:"messages"`
	ToolConfig *struct {
		Tools []struct {
			ToolSpec *struct {
				Name        string `json:"name"`
				InputSchema struct {
					JSON json.RawMessage `json:"json"`
				} `json:"inputSchema"`
			} `json:"toolSpec"`
		} `json:"tools"`
	} `json:"toolConfig"`
}

// statusModels matches the model ids that take a tool result's status,
// which the service documents for Amazon Nova and Anthropic Claude 3 and
// 4 only, in a model id, an inference profile's id or an ARN.
var statusModels = regexp.MustCompile(`(^|[./])(amazon\.nova-|anthropic\.claude-(3|(sonnet|opus|haiku)-4))`)

// validate refuses what the real service refuses with a
// ValidationException, as far as the gateway could send it: a history
// that does not start and end with user or whose roles do not alternate;
// an empty message or a blank text block; a tool use whose input is not a
// JSON object (a json.RawMessage passed to document.NewLazyDocument goes
// out as an array of bytes; a nil one as nothing); tool uses not answered,
// in order, by tool results at the start of the next user message; a tool
// result without its tool use, or with no content (an error result with
// an empty message); tool blocks without a toolConfig; and a toolConfig
// with a malformed or repeated tool; a tool result's status for a model
// (model is the request's id) that does not take it.
func validate(model string, raw []byte) error {
	var b rawBody
	if err := json.Unmarshal(raw, &b); err != nil {
		return fmt.Errorf("malformed request body: %w", err)
	}
	if len(b.Messages) == 0 {
		return errors.New("The messages field is required and must not be empty.")
	}
	var pending []string // the tool uses the next user message must answer
	toolBlocks := false
	for i, m := range b.Messages {
		want := "user"
		if i%2 == 1 {
			want = "assistant"
		}
		if m.Role != want {
			return fmt.Errorf("A conversation must alternate between user and assistant roles, starting with user: messages.%d has role %q.", i, m.Role)
		}
		if len(m.Content) == 0 {
			return fmt.Errorf("messages.%d.content must not be empty.", i)
		}
		var uses []string
		answered := 0
		for j, block := range m.Content {
			where := fmt.Sprintf("messages.%d.content.%d", i, j)
			if len(block) != 1 {
				return fmt.Errorf("%s must hold exactly one member.", where)
			}
			for kind, v := range block {
				switch kind {
				case "text":
					if err := nonBlank(where, v); err != nil {
						return err
					}
				case "toolUse":
					toolBlocks = true
					if m.Role != "assistant" {
						return fmt.Errorf("%s: only assistant messages may hold toolUse blocks.", where)
					}
					id, err := toolUse(where, v)
					if err != nil {
						return err
					}
					uses = append(uses, id)
				case "toolResult":
					toolBlocks = true
					if m.Role != "user" {
						return fmt.Errorf("%s: only user messages may hold toolResult blocks.", where)
					}
					if j != answered {
						return fmt.Errorf("%s: toolResult blocks must come first in the message.", where)
					}
					id, err := toolResult(where, v, statusModels.MatchString(model))
					if err != nil {
						return err
					}
					if answered >= len(pending) || pending[answered] != id {
						return fmt.Errorf("%s: the toolResult %q does not match the toolUse blocks of the previous turn, in order.", where, id)
					}
					answered++
				default:
					return fmt.Errorf("%s: unsupported content block %q.", where, kind)
				}
			}
		}
		if answered < len(pending) {
			return fmt.Errorf("messages.%d: the toolUse blocks %q of the previous turn have no toolResult blocks after them.", i, pending[answered:])
		}
		pending = uses
	}
	if b.Messages[len(b.Messages)-1].Role != "user" {
		return errors.New("A conversation must end with a user message.")
	}
	return toolConfig(&b, toolBlocks)
}

func nonBlank(where string, v json.RawMessage) error {
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return fmt.Errorf("%s.text must be a string.", where)
	}
	if strings.TrimSpace(s) == "" {
		return fmt.Errorf("%s: text content blocks must be non-empty (whitespace is not enough).", where)
	}
	return nil
}

// toolUse checks a replayed tool use and returns its id.
func toolUse(where string, v json.RawMessage) (string, error) {
	var tu struct {
		ToolUseID string          `json:"toolUseId"`
		Name      string          `json:"name"`
		Input     json.RawMessage `json:"input"`
	}
	if err := json.Unmarshal(v, &tu); err != nil {
		return "", fmt.Errorf("%s.toolUse is malformed: %w", where, err)
	}
	if tu.ToolUseID == "" || !toolName.MatchString(tu.Name) {
		return "", fmt.Errorf("%s.toolUse needs a toolUseId and a valid name.", where)
	}
	if !isObject(tu.Input) {
		return "", fmt.Errorf("%s.toolUse.input must be a JSON object, got %.40s.", where, tu.Input)
	}
	return tu.ToolUseID, nil
}

// toolResult checks a tool result and returns the id it answers; status
// is whether the model takes the status field.
func toolResult(where string, v json.RawMessage, status bool) (string, error) {
	var tr struct {
		ToolUseID string                       `json:"toolUseId"`
		Content   []map[string]json.RawMessage `json:"content"`
		Status    string                       `json:"status"`
	}
	if err := json.Unmarshal(v, &tr); err != nil {
		return "", fmt.Errorf("%s.toolResult is malformed: %w", where, err)
	}
	if tr.Status != "" && !status {
		return "", errors.New("This model doesn't support the toolResult.status field. Remove toolResult.status and try again.")
	}
	if tr.Status != "" && tr.Status != "success" && tr.Status != "error" {
		return "", fmt.Errorf("%s.toolResult.status %q is not success or error.", where, tr.Status)
	}
	if len(tr.Content) == 0 {
		return "", fmt.Errorf("%s.toolResult.content must not be empty.", where)
	}
	for k, c := range tr.Content {
		at := fmt.Sprintf("%s.toolResult.content.%d", where, k)
		switch {
		case len(c) != 1:
			return "", fmt.Errorf("%s must hold exactly one member.", at)
		case c["text"] != nil:
			if err := nonBlank(at, c["text"]); err != nil {
				return "", err
			}
		case c["json"] != nil:
			if !isObject(c["json"]) {
				return "", fmt.Errorf("%s.json must be a JSON object.", at)
			}
		default:
			return "", fmt.Errorf("%s: unsupported tool result content.", at)
		}
	}
	return tr.ToolUseID, nil
}

// toolConfig checks the declared tools, which must be there when the
// messages hold tool blocks.
func toolConfig(b *rawBody, toolBlocks bool) error {
	if b.ToolConfig == nil {
		if toolBlocks {
			return errors.New("The toolConfig field must be defined when using toolUse and toolResult content blocks.")
		}
		return nil
	}
	if len(b.ToolConfig.Tools) == 0 {
		return errors.New("toolConfig.tools must not be empty.")
	}
	seen := map[string]bool{}
	for i, t := range b.ToolConfig.Tools {
		spec := t.ToolSpec
		switch {
		case spec == nil:
			return fmt.Errorf("toolConfig.tools.%d.toolSpec is required.", i)
		case !toolName.MatchString(spec.Name):
			return fmt.Errorf("toolConfig.tools.%d.toolSpec.name %q does not match %s.", i, spec.Name, toolName)
		case seen[spec.Name]:
			return fmt.Errorf("toolConfig.tools.%d.toolSpec.name %q is not unique.", i, spec.Name)
		case !isObject(spec.InputSchema.JSON):
			return fmt.Errorf("toolConfig.tools.%d.toolSpec.inputSchema.json must be a JSON object.", i)
		}
		seen[spec.Name] = true
	}
	return nil
}

func isObject(v json.RawMessage) bool {
	var m map[string]json.RawMessage
	return len(v) > 0 && v[0] == '{' && json.Unmarshal(v, &m) == nil
}
