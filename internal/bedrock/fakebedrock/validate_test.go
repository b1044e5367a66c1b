package fakebedrock

import (
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	const (
		tools = `"toolConfig":{"tools":[{"toolSpec":{"name":"clock","inputSchema":{"json":{"type":"object"}}}}]}`
		use1  = `{"toolUse":{"toolUseId":"t1","name":"clock","input":{}}}`
		use2  = `{"toolUse":{"toolUseId":"t2","name":"clock","input":{"tz":"UTC"}}}`
		res1  = `{"toolResult":{"toolUseId":"t1","content":[{"json":{"time":"now"}}]}}`
		res2  = `{"toolResult":{"toolUseId":"t2","content":[{"text":"boom"}],"status":"error"}}`
	)
	user := func(blocks ...string) string { return `{"role":"user","content":[` + strings.Join(blocks, ",") + `]}` }
	asst := func(blocks ...string) string {
		return `{"role":"assistant","content":[` + strings.Join(blocks, ",") + `]}`
	}
	text := func(s string) string { return `{"text":"` + s + `"}` }
	body := func(extra string, msgs ...string) string {
		b := `{"messages":[` + strings.Join(msgs, ",") + `]`
		if extra != "" {
			b += "," + extra
		}
		return b + "}"
	}
	for _, tc := range []struct {
		name, body, want string // want: part of the error, "" for none
	}{
		{"one user message", body("", user(text("hi"))), ""},
		{"a tool exchange", body(tools, user(text("hi")), asst(text("let me see"), use1, use2), user(res1, res2), asst(text("done")), user(text("thanks"))), ""},
		{"results then a queued message", body(tools, user(text("hi")), asst(use1), user(res1, text("and?"))), ""},
		{"no messages", `{"messages":[]}`, "must not be empty"},
		{"starts with assistant", body("", asst(text("hi")), user(text("x"))), "alternate"},
		{"two user messages", body("", user(text("a")), user(text("b"))), "alternate"},
		{"ends with assistant", body("", user(text("a")), asst(text("b"))), "end with a user"},
		{"blank text", body("", user(text(" \\n"))), "non-empty"},
		{"empty content", body("", user()), "content must not be empty"},
		{"input as bytes", body(tools, user(text("a")), asst(`{"toolUse":{"toolUseId":"t1","name":"clock","input":[123,125]}}`), user(res1)), "input must be a JSON object"},
		{"no input", body(tools, user(text("a")), asst(`{"toolUse":{"toolUseId":"t1","name":"clock"}}`), user(res1)), "input must be a JSON object"},
		{"unanswered tool use", body(tools, user(text("a")), asst(use1, use2), user(res1)), "have no toolResult"},
		{"results out of order", body(tools, user(text("a")), asst(use1, use2), user(res2, res1)), "in order"},
		{"result without its use", body(tools, user(text("a")), asst(text("b")), user(res1)), "does not match"},
		{"result after text", body(tools, user(text("a")), asst(use1), user(text("x"), res1)), "must come first"},
		{"empty error result", body(tools, user(text("a")), asst(use1), user(`{"toolResult":{"toolUseId":"t1","content":[],"status":"error"}}`)), "content must not be empty"},
		{"blank error text", body(tools, user(text("a")), asst(use1), user(`{"toolResult":{"toolUseId":"t1","content":[{"text":""}],"status":"error"}}`)), "non-empty"},
		{"tool blocks without toolConfig", body("", user(text("a")), asst(use1), user(res1)), "toolConfig field must be defined"},
		{"bad tool name", body(`"toolConfig":{"tools":[{"toolSpec":{"name":"a.b","inputSchema":{"json":{}}}}]}`, user(text("a"))), "does not match"},
		{"repeated tool", body(`"toolConfig":{"tools":[{"toolSpec":{"name":"a","inputSchema":{"json":{}}}},{"toolSpec":{"name":"a","inputSchema":{"json":{}}}}]}`, user(text("a"))), "not unique"},
		{"status for a model without it", "mistral.mistral-large-2407-v1:0 " + body(tools, user(text("a")), asst(use2), user(res2)), "doesn't support the toolResult.status field"},
		{"status for Nova in a profile", "us.amazon.nova-pro-v1:0 " + body(tools, user(text("a")), asst(use2), user(res2)), ""},
		{"status for Claude 4 by ARN", "arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-sonnet-4-20250514-v1:0 " + body(tools, user(text("a")), asst(use2), user(res2)), ""},
		{"schema not an object", body(`"toolConfig":{"tools":[{"toolSpec":{"name":"a","inputSchema":{"json":"{}"}}}]}`, user(text("a"))), "must be a JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A body may start with the model id it is sent to; the
			// others go to a Claude 3 model.
			model, raw := "anthropic.claude-3-haiku-20240307-v1:0", tc.body
			if id, rest, ok := strings.Cut(tc.body, " "); ok && !strings.HasPrefix(tc.body, "{") {
				model, raw = id, rest
			}
			err := validate(model, []byte(raw))
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("validate: %v, want no error", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("validate: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
