package bedrock

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/document"
	"github.com/aws/aws-sdk-go-v2/service/bedrockruntime/types"
	smithydocument "github.com/aws/smithy-go/document"

	"github.com/chatgateway/gateway/internal/convo"
)

// toolConfig declares tools to the model, or is nil when there are none.
// The service refuses a history with tool blocks and no toolConfig, so a
// tool that the history uses but tools lacks (an agent reloaded without
// it) is declared too, with an open schema.
func toolConfig(tools []convo.ToolSpec, msgs []types.Message) *types.ToolConfiguration {
	var out []types.Tool
	declared := map[string]bool{}
	for _, t := range tools {
		if declared[t.Name] {
			continue
		}
		declared[t.Name] = true
		out = append(out, toolSpec(t.Name, t.Description, t.InputSchema))
	}
	for _, m := range msgs {
		for _, b := range m.Content {
			if u, ok := b.(*types.ContentBlockMemberToolUse); ok && !declared[aws.ToString(u.Value.Name)] {
				name := aws.ToString(u.Value.Name)
				declared[name] = true
				out = append(out, toolSpec(name, "No longer available.", nil))
			}
		}
	}
	if len(out) == 0 {
		return nil
	}
	return &types.ToolConfiguration{Tools: out}
}

func toolSpec(name, description string, schema json.RawMessage) types.Tool {
	spec := types.ToolSpecification{Name: aws.String(name),
		InputSchema: &types.ToolInputSchemaMemberJson{Value: object(schema, `{"type":"object"}`)}}
	if description != "" {
		spec.Description = aws.String(description)
	}
	return &types.ToolMemberToolSpec{Value: spec}
}

// useBlock replays a tool use as the model sent it. An input that is not
// a JSON object (the model sent broken JSON), or one the SDK cannot send,
// is replayed as {}: the service takes objects only. A name the service
// would refuse is replayed as wireName makes it.
func useBlock(u convo.ToolUse) types.ContentBlock {
	return &types.ContentBlockMemberToolUse{Value: types.ToolUseBlock{
		ToolUseId: aws.String(u.ID), Name: aws.String(wireName(u.Name)), Input: object(u.Input, `{}`)}}
}

// maxToolName is the longest tool name the service takes.
const maxToolName = 64

// wireName is a tool use's name as the service takes it, which is
// ^[a-zA-Z0-9_-]{1,64}$: the name itself when it fits, else with every
// other character replaced by "_", cut at 64 bytes ("_" when empty). A
// model may call a tool it was not given by any name; replayed as it
// was, the name would make the service refuse the turn's next step and
// every later turn of the conversation.
func wireName(name string) string {
	name = strings.Map(func(r rune) rune {
		if r == '_' || r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			return r
		}
		return '_'
	}, name)
	if name == "" {
		return "_"
	}
	return name[:min(len(name), maxToolName)]
}

// resultBlock is the result that answers the tool use id, from results;
// a use without a result (which convo does not produce) gets an error
// result, as the service requires one. An error result carries status
// error only when status is set: its text says what failed either way.
func resultBlock(id string, results []convo.ToolResult, status bool) types.ContentBlock {
	b := types.ToolResultBlock{ToolUseId: aws.String(id)}
	r := convo.ToolResult{ID: id, Error: "no result was recorded for this call"}
	for _, res := range results {
		if res.ID == id {
			r = res
			break
		}
	}
	switch doc, ok := jsonObject(r.Output); {
	case r.Error != "":
		if status {
			b.Status = types.ToolResultStatusError
		}
		b.Content = []types.ToolResultContentBlock{&types.ToolResultContentBlockMemberText{Value: nonBlank(r.Error, "(the tool failed without a message)")}}
	case ok:
		b.Content = []types.ToolResultContentBlock{&types.ToolResultContentBlockMemberJson{Value: doc}}
	default:
		b.Content = []types.ToolResultContentBlock{&types.ToolResultContentBlockMemberText{Value: outputText(r.Output)}}
	}
	return &types.ContentBlockMemberToolResult{Value: b}
}

// toolStatus reports whether model takes a tool result's status field.
// The service documents it for Anthropic Claude 3 and later and Amazon
// Nova only, and refuses a request that sends it to another model with
// a ValidationException. The id is matched wherever it appears, so a
// cross-region inference profile ("us.anthropic.claude-…") or an ARN
// naming the model counts; an application inference profile's ARN names
// no model, and gets no status.
func toolStatus(model string) bool {
	switch {
	case strings.Contains(model, "amazon.nova-"):
		return true
	case strings.Contains(model, "anthropic.claude-"):
		return !strings.Contains(model, "anthropic.claude-v2") && !strings.Contains(model, "anthropic.claude-instant")
	}
	return false
}

// outputText is a tool output that is not an object the SDK can send, as
// text: a string as itself, anything else as its JSON; never blank.
func outputText(out json.RawMessage) string {
	var s string
	if json.Unmarshal(out, &s) != nil {
		s = string(out)
	}
	return nonBlank(s, "(empty output)")
}

// nonBlank is s, or instead when s is blank: the service refuses a blank
// text block, and a request that holds one fails, with it every later
// turn that replays it (a client's tool_output may carry an error of
// spaces).
func nonBlank(s, instead string) string {
	if strings.TrimSpace(s) == "" {
		return instead
	}
	return s
}

func isObject(raw json.RawMessage) bool {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	return len(raw) > 0 && raw[0] == '{'
}

// object is raw as a document the SDK sends as that same JSON (see
// jsonObject), or fallback's when raw is not one.
func object(raw json.RawMessage, fallback string) document.Interface {
	if doc, ok := jsonObject(raw); ok {
		return doc
	}
	doc, _ := jsonObject(json.RawMessage(fallback)) // fallback is ours, sendable
	return doc
}

// jsonObject is raw, one JSON object, as a document the SDK sends as that
// same JSON, and whether raw is one the SDK can send: not when it is not
// one JSON object (also when one is followed by more), nor when it holds
// an empty key at any depth, which the SDK's encoder refuses (the whole
// request would fail, and with it every later turn that replays it). The
// SDK encodes a document by reflection: a json.RawMessage would go out as
// an array of bytes, so the value is decoded first, its numbers kept
// exact.
func jsonObject(raw json.RawMessage) (document.Interface, bool) {
	var v any
	if !isObject(raw) || decodeExact(raw, &v) != nil {
		return nil, false
	}
	v, ok := sendable(v)
	if !ok {
		return nil, false
	}
	return document.NewLazyDocument(v), true
}

// decodeExact decodes raw, one JSON value and nothing after it but
// spaces, into v, its numbers as json.Numbers.
func decodeExact(raw json.RawMessage, v *any) error {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(v); err != nil {
		return err
	}
	if _, err := d.Token(); err != io.EOF {
		return errors.New("more after the JSON value")
	}
	return nil
}

// sendable replaces the json.Numbers in v, which the SDK would send as
// strings, with document.Numbers, which it sends as the same numbers, and
// reports whether v has no empty key, which the SDK cannot send.
func sendable(v any) (any, bool) {
	ok := true
	switch v := v.(type) {
	case json.Number:
		return smithydocument.Number(v), true
	case map[string]any:
		for k, e := range v {
			if k == "" {
				return v, false
			}
			if v[k], ok = sendable(e); !ok {
				return v, false
			}
		}
	case []any:
		for i, e := range v {
			if v[i], ok = sendable(e); !ok {
				return v, false
			}
		}
	}
	return v, true
}
