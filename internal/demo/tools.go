package demo

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

// maxShown bounds how much of a tool's output the demo model repeats.
const maxShown = 300

// toolStep is what the demo model does in an agent's conversation (one
// with tools): it calls the tools a ToolCommand asks for, and answers tool
// results with a summary of them. ok is false when neither applies: the
// model then replies as usual.
func toolStep(req convo.ModelRequest) (reply string, uses []convo.ToolUse, ok bool) {
	if len(req.Tools) == 0 || len(req.History) == 0 {
		return "", nil, false
	}
	last := req.History[len(req.History)-1]
	if len(last.ToolResults) > 0 {
		return summary(req.History), nil, true
	}
	if last.Role != protocol.RoleUser || !strings.HasPrefix(last.Text, ToolCommand) {
		return "", nil, false
	}
	return toolCalls(last.Text, req.Tools)
}

// toolCalls reads one call per line of the form "/tool NAME {json}" (the
// input is optional: {} by default) and returns the tool uses, with a
// short text to stream before them. A line naming no known tool, or with
// input that is not a JSON object, gets a text that says so instead.
func toolCalls(text string, tools []convo.ToolSpec) (string, []convo.ToolUse, bool) {
	known := map[string]bool{}
	var names []string
	for _, t := range tools {
		known[t.Name] = true
		names = append(names, t.Name)
	}
	var uses []convo.ToolUse
	var problems []string
	for line := range strings.Lines(text) {
		rest, isCall := strings.CutPrefix(strings.TrimSpace(line), ToolCommand)
		if !isCall {
			continue
		}
		name, input, _ := strings.Cut(strings.TrimSpace(rest), " ")
		input = strings.TrimSpace(input)
		if input == "" {
			input = "{}"
		}
		var obj map[string]json.RawMessage
		switch {
		case name == "":
			problems = append(problems, "Name a tool after /tool.")
		case !known[name]:
			problems = append(problems, fmt.Sprintf("There is no tool %q.", name))
		case json.Unmarshal([]byte(input), &obj) != nil:
			problems = append(problems, fmt.Sprintf("The input for %s is not a JSON object.", name))
		default:
			uses = append(uses, convo.ToolUse{ID: callID(), Name: name, Input: json.RawMessage(input)})
		}
	}
	if len(problems) > 0 {
		return fmt.Sprintf("(Demo model.) %s Write /tool NAME {json}; the tools are: %s.",
			strings.Join(problems, " "), strings.Join(names, ", ")), nil, true
	}
	var called []string
	for _, u := range uses {
		called = append(called, u.Name)
	}
	// The step's text ends a paragraph: the turn's text is its steps'
	// texts run together, and the summary of the results follows this one.
	return fmt.Sprintf("(Demo model.) Calling %s.\n\n", strings.Join(called, " and ")), uses, true
}

// summary answers the tool results that end the history: one sentence per
// result, naming the tool from the tool use it answers.
func summary(h []convo.HistoryMessage) string {
	names := map[string]string{}
	for _, m := range h {
		for _, u := range m.ToolUses {
			names[u.ID] = u.Name
		}
	}
	var b strings.Builder
	b.WriteString("(Demo model.)")
	for _, r := range h[len(h)-1].ToolResults {
		if r.Error != "" {
			fmt.Fprintf(&b, " The tool %s failed: %s.", names[r.ID], cut(r.Error))
		} else {
			fmt.Fprintf(&b, " The tool %s returned %s.", names[r.ID], cut(compact(r.Output)))
		}
	}
	return b.String()
}

// compact is a tool's JSON output on one line, without the spaces and
// newlines a service may have written around and inside it.
func compact(output json.RawMessage) string {
	var b bytes.Buffer
	if json.Compact(&b, output) != nil {
		return strings.TrimSpace(string(output))
	}
	return b.String()
}

func cut(s string) string {
	if r := []rune(s); len(r) > maxShown {
		return string(r[:maxShown]) + "…"
	}
	return s
}

// callID returns a new tool-use id, in the alphabet Bedrock uses.
func callID() string {
	var b [9]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return "demo_" + hex.EncodeToString(b[:])
}
