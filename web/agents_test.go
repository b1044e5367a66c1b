package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

// toolBench is the agents of the agent tests: one, "support", with a tool
// of each kind. lookup_order (HTTP) answers at once and needs approval;
// confirm is a client tool; slow (MCP) reports the progress the test
// hands it and ends when the test says, or when the call is cancelled.
type toolBench struct {
	progress chan convo.ToolProgress
	finish   chan convo.ToolOutcome
	// calls tells each call of slow as it starts.
	calls chan string
}

func newToolBench() *toolBench {
	return &toolBench{progress: make(chan convo.ToolProgress), finish: make(chan convo.ToolOutcome), calls: make(chan string, 4)}
}

const agentDescription = "Answers questions about orders"

var benchTools = []convo.AgentTool{
	{ToolSpec: convo.ToolSpec{Name: "lookup_order", Description: "Look up an order by its id",
		InputSchema: json.RawMessage(`{"type":"object","properties":{"id":{"type":"string"}}}`)},
		Kind: protocol.ToolKindHTTP, Approval: true, Timeout: time.Minute},
	{ToolSpec: convo.ToolSpec{Name: "confirm", Description: "Ask the person to confirm",
		InputSchema: json.RawMessage(`{"type":"object","properties":{"question":{"type":"string"}}}`)},
		Kind: protocol.ToolKindClient, Timeout: time.Minute},
	{ToolSpec: convo.ToolSpec{Name: "files__slow", Description: "Takes its time",
		InputSchema: json.RawMessage(`{"type":"object"}`)}, Kind: protocol.ToolKindMCP, Timeout: time.Minute},
}

// Agent implements convo.Agents.
func (b *toolBench) Agent(name, _, _ string) (*convo.Agent, bool) {
	if name != "support" {
		return nil, false
	}
	return &convo.Agent{Name: "support", Model: testModelID, System: "You help.", MaxSteps: 5, Tools: benchTools, Run: b.run}, true
}

// Allowed implements convo.Agents.
func (b *toolBench) Allowed(_ context.Context, name string) bool { return name == "support" }

// List implements convo.Agents.
func (b *toolBench) List(context.Context) []protocol.AgentInfo {
	info := protocol.AgentInfo{Name: "support", Description: agentDescription, Model: testModelID}
	for _, t := range benchTools {
		info.Tools = append(info.Tools, protocol.ToolInfo{Name: t.Name, Description: t.Description, Kind: t.Kind})
	}
	return []protocol.AgentInfo{info}
}

// waitCall waits until a call of slow starts.
func (b *toolBench) waitCall(t *testing.T) {
	t.Helper()
	select {
	case <-b.calls:
	case <-time.After(stepTimeout):
		t.Fatal("the slow tool was not called")
	}
}

func (b *toolBench) run(ctx context.Context, call convo.ToolCall, progress func(convo.ToolProgress)) convo.ToolOutcome {
	if call.Name == "lookup_order" {
		return convo.ToolOutcome{Status: protocol.ResultOK, Output: json.RawMessage(`{"order":"A-1","status":"shipped"}`)}
	}
	b.calls <- call.ID
	for {
		select {
		case p := <-b.progress:
			progress(p)
		case out := <-b.finish:
			return out
		case <-ctx.Done():
			return convo.ToolOutcome{Status: protocol.ResultCancelled, Error: "the call was cancelled"}
		}
	}
}

// useTools ends the running step of the model with tool uses.
func (m *stepModel) useTools(t *testing.T, uses ...convo.ToolUse) {
	t.Helper()
	m.finish(t, convo.Result{StopReason: protocol.StopToolUse, ToolUses: uses})
}

func use(id, name, input string) convo.ToolUse {
	return convo.ToolUse{ID: id, Name: name, Input: json.RawMessage(input)}
}

// startAgentChat starts a gateway with the tool bench, creates a
// conversation with the support agent from the page's New chat form,
// checks the form and the header, and sends text.
func startAgentChat(t *testing.T, text string) (*stepModel, *toolBench, *gateway, *tab, string) {
	t.Helper()
	model, bench := newStepModel(), newToolBench()
	g := startGateway(t, model, gatewayConfig{agents: bench})
	tb := newTab(t, "tab A")
	tb.open(g.url, "/")
	tb.do(chromedp.Click(chromedp.CSS(`[data-testid=new-conversation]`)))
	tb.waitFor("the agents to be offered", `document.querySelector('[data-testid=new-agent] option[value=support]') !== null`)
	tb.do(chromedp.SetValue(chromedp.CSS(`[data-testid=new-agent]`), "support"),
		chromedp.Evaluate[chromedp.Void](`document.querySelector('[data-testid=new-agent]').dispatchEvent(new Event('change'))`))
	tb.waitFor("the agent's description", `document.querySelector('[data-testid=new-agent-description]').textContent === `+js(agentDescription))
	var disabled bool
	tb.eval(`document.querySelector('[data-testid=new-system]').disabled && document.querySelector('[data-testid=new-model]').disabled`, &disabled)
	if !disabled {
		t.Error("with an agent chosen, the system prompt and model fields stay enabled")
	}
	tb.do(chromedp.Click(chromedp.CSS(`[data-testid=create]`)))
	id := tb.conversation()
	tb.waitFor("the agent in the header", `document.querySelector('[data-testid=agent]').textContent === 'support'`)
	var tools []string
	tb.eval(`[...document.querySelectorAll('[data-testid=agent-tool]')].map(e => e.textContent + ':' + e.dataset.kind)`, &tools)
	if jsonString(t, tools) != `["lookup_order:http","confirm:client","files__slow:mcp"]` {
		t.Errorf("header tools %v", tools)
	}
	tb.send(text)
	return model, bench, g, tb, id
}

// toolCard is an expression for the card of call in the message list.
func toolCard(call string) string {
	return `document.querySelector('[data-testid=messages] [data-testid=tool-card][data-call=` + js(call) + `]')`
}

// waitCard waits until the card of call has status.
func (tb *tab) waitCard(call, status string) {
	tb.t.Helper()
	tb.waitFor("card "+call+" "+status, toolCard(call)+`?.dataset.status === `+js(status))
}

// checkNotSent checks that the card of call, having refused an answer,
// sent nothing: its button (a test id) is enabled, as while an answer is
// on its way it is not, and no notice shows the gateway's refusal.
func (tb *tab) checkNotSent(call, button string) {
	tb.t.Helper()
	var kept bool
	tb.eval(`!`+toolCard(call)+`.querySelector('[data-testid=`+button+`]').disabled && document.querySelector('[data-testid=error]').hidden`, &kept)
	if !kept {
		tb.t.Errorf("%s: card %s sent the answer it refused (%s is disabled or a notice shows)", tb.name, call, button)
	}
}

func TestAgentToolApprovedInOneTabSeenInAnother(t *testing.T) {
	model, _, g, a, id := startAgentChat(t, "Where is order A-1?")
	b := newTab(t, "tab B")
	b.open(g.url, "/#/c/"+id)
	model.say(t, "Let me check. ")
	model.useTools(t, use("call-1", "lookup_order", `{"id":"A-1"}`))
	for _, tb := range []*tab{a, b} {
		tb.waitCard("call-1", protocol.CallAwaitingApproval)
		tb.waitFor("the approve button", toolCard("call-1")+`.querySelector('[data-testid=tool-approve]') !== null`)
	}

	a.do(chromedp.SendKeys(chromedp.CSS(`[data-call=call-1] [data-testid=tool-reason]`), "fine"),
		chromedp.Click(chromedp.CSS(`[data-call=call-1] [data-testid=tool-approve]`)))
	for _, tb := range []*tab{a, b} {
		tb.waitCard("call-1", protocol.ResultOK)
		var card struct{ Note, Output string }
		tb.eval(`({Note: `+toolCard("call-1")+`.querySelector('[data-testid=tool-approval-note]').textContent,
			Output: `+toolCard("call-1")+`.querySelector('[data-testid=tool-output]').textContent})`, &card)
		if card.Note != "Approved by local: fine" || card.Output != "{\n  \"order\": \"A-1\",\n  \"status\": \"shipped\"\n}" {
			t.Errorf("%s: approved card %+v", tb.name, card)
		}
		tb.waitFor("the buttons to go", toolCard("call-1")+`.querySelector('[data-testid=tool-approval]') === null`)
	}
	model.say(t, "It has shipped.")
	model.end(t, 10, 5)
	for _, tb := range []*tab{a, b} {
		tb.waitTurnEnd(protocol.StopEndTurn)
		tb.waitReply("Let me check. It has shipped.")
		var order []string
		tb.eval(`[...`+lastReply+`.querySelector('[data-testid=reply-text]').children].map(e => e.dataset.call ?? e.textContent.trim())`, &order)
		if jsonString(t, order) != `["Let me check.","call-1","It has shipped."]` {
			t.Errorf("%s: reply holds %v, want the card between the steps' text", tb.name, order)
		}
		checkStoredOnce(t, g, tb, id)
	}
}

func TestAgentToolDenied(t *testing.T) {
	model, _, g, tb, id := startAgentChat(t, "Look up B-2")
	model.useTools(t, use("call-1", "lookup_order", `{"id":"B-2"}`))
	tb.waitCard("call-1", protocol.CallAwaitingApproval)
	// The protocol bounds a reason in UTF-8 bytes: 342 CJK characters
	// are 1026 of them, one character too many; the card says so and
	// sends nothing. 1024 bytes go.
	reason := toolCard("call-1") + `.querySelector('[data-testid=tool-reason]')`
	tb.eval(reason+`.value = '確'.repeat(342)`, new(string))
	tb.do(chromedp.Click(chromedp.CSS(`[data-call=call-1] [data-testid=tool-deny]`)))
	tb.waitFor("the reason's problem", toolCard("call-1")+`.querySelector('[data-testid=tool-reason-error]').textContent.includes('1026 bytes')`)
	tb.checkNotSent("call-1", "tool-deny")
	why := strings.Repeat("確", 341) + "a"
	tb.eval(reason+`.value = `+js(why), new(string))
	tb.do(chromedp.Click(chromedp.CSS(`[data-call=call-1] [data-testid=tool-deny]`)))
	// The approval turns the card to denied; the result follows.
	tb.waitFor("the denied result", toolCard("call-1")+`.dataset.result === 'denied'`)
	var card struct{ Note, Status, Error string }
	tb.eval(`({Note: `+toolCard("call-1")+`.querySelector('[data-testid=tool-approval-note]').textContent,
		Status: `+toolCard("call-1")+`.querySelector('[data-testid=tool-status]').textContent,
		Error: `+toolCard("call-1")+`.querySelector('[data-testid=tool-error]')?.textContent ?? ''})`, &card)
	if card.Note != "Denied by local: "+why || card.Status != "Denied" || card.Error == "" {
		t.Errorf("denied card %+v", card)
	}
	model.say(t, "I may not look it up.")
	model.end(t, 3, 4)
	tb.waitTurnEnd(protocol.StopEndTurn)
	checkStoredOnce(t, g, tb, id)
}

func TestAgentClientToolAnsweredFromThePage(t *testing.T) {
	model, _, g, tb, id := startAgentChat(t, "Ship it")
	model.useTools(t, use("call-1", "confirm", `{"question":"Ship order A-1 now?"}`))
	tb.waitCard("call-1", protocol.CallAwaitingClient)
	if q := tb.text(toolCard("call-1") + `.querySelector('[data-testid=tool-question]').textContent`); q != "Ship order A-1 now?" {
		t.Errorf("the card asks %q", q)
	}
	tb.do(chromedp.Click(chromedp.CSS(`[data-call=call-1] [data-testid=tool-confirm]`)))
	tb.waitCard("call-1", protocol.ResultOK)

	// A second call answered with JSON typed into the card.
	model.useTools(t, use("call-2", "confirm", `{"question":"Which box?"}`))
	tb.waitCard("call-2", protocol.CallAwaitingClient)
	// null is no output for the protocol: the card says so and sends
	// nothing, which the gateway would refuse.
	tb.do(chromedp.Click(chromedp.CSS(`[data-call=call-2] .tool-answer summary`)),
		chromedp.SendKeys(chromedp.CSS(`[data-call=call-2] [data-testid=tool-json]`), `null`),
		chromedp.Click(chromedp.CSS(`[data-call=call-2] [data-testid=tool-send]`)))
	tb.waitFor("the null problem", toolCard("call-2")+`.querySelector('[data-testid=tool-json-error]').textContent.startsWith('null is no answer')`)
	tb.checkNotSent("call-2", "tool-send")
	tb.eval(toolCard("call-2")+`.querySelector('[data-testid=tool-json]').value = ''`, new(string))
	tb.do(chromedp.SendKeys(chromedp.CSS(`[data-call=call-2] [data-testid=tool-json]`), `{"box": "large"`),
		chromedp.Click(chromedp.CSS(`[data-call=call-2] [data-testid=tool-send]`)))
	tb.waitFor("the JSON problem", toolCard("call-2")+`.querySelector('[data-testid=tool-json-error]').textContent.startsWith('Not JSON')`)
	tb.do(chromedp.SendKeys(chromedp.CSS(`[data-call=call-2] [data-testid=tool-json]`), `}`),
		chromedp.Click(chromedp.CSS(`[data-call=call-2] [data-testid=tool-send]`)))
	tb.waitCard("call-2", protocol.ResultOK)
	model.say(t, "Shipped in a large box.")
	model.end(t, 3, 4)
	tb.waitTurnEnd(protocol.StopEndTurn)

	var outputs []string
	tb.eval(`[...document.querySelectorAll('[data-testid=tool-output]')].map(e => e.textContent)`, &outputs)
	if jsonString(t, outputs) != jsonString(t, []string{"{\n  \"confirmed\": true\n}", "{\n  \"box\": \"large\"\n}"}) {
		t.Errorf("outputs %q", outputs)
	}
	checkStoredOnce(t, g, tb, id)
}

func TestAgentStopDuringATool(t *testing.T) {
	model, bench, g, tb, id := startAgentChat(t, "Take your time")
	model.useTools(t, use("call-1", "files__slow", `{}`))
	bench.waitCall(t)
	tb.waitCard("call-1", protocol.CallRunning)
	bench.progress <- convo.ToolProgress{Progress: 3, Total: 10, Message: "warming up"}
	tb.waitFor("the progress bar", toolCard("call-1")+`?.querySelector('[data-testid=tool-progress-text]')?.textContent === '3 / 10 · warming up'`)
	tb.waitFor("the Stop button", `!document.querySelector('[data-testid=stop]').hidden`)
	tb.do(chromedp.Click(chromedp.CSS(`[data-testid=stop]`)))
	tb.waitCard("call-1", protocol.ResultCancelled)
	tb.waitTurnEnd(protocol.StopCancelled)
	tb.waitFor("the Stop button to go", `document.querySelector('[data-testid=stop]').hidden`)
	checkStoredOnce(t, g, tb, id)
}

func TestAgentReloadInTheMiddleOfATool(t *testing.T) {
	model, bench, g, tb, id := startAgentChat(t, "Count slowly")
	model.say(t, "Counting.")
	model.useTools(t, use("call-1", "files__slow", `{}`))
	bench.waitCall(t)
	bench.progress <- convo.ToolProgress{Progress: 1, Total: 4}
	tb.waitFor("the progress", toolCard("call-1")+`?.querySelector('progress')?.value === 1`)

	tb.do(chromedp.Reload())
	tb.waitConnected()
	tb.waitCard("call-1", protocol.CallRunning)
	tb.waitFor("the progress after the reload", toolCard("call-1")+`.querySelector('progress')?.value === 1`)
	tb.waitFor("the Stop button", `!document.querySelector('[data-testid=stop]').hidden`)
	bench.progress <- convo.ToolProgress{Progress: 2, Total: 4}
	tb.waitFor("live progress", toolCard("call-1")+`.querySelector('progress').value === 2`)
	bench.finish <- convo.ToolOutcome{Status: protocol.ResultOK, Output: json.RawMessage(`{"counted":4}`)}
	tb.waitCard("call-1", protocol.ResultOK)
	model.say(t, " Done.")
	model.end(t, 5, 2)
	tb.waitTurnEnd(protocol.StopEndTurn)
	tb.waitReply("Counting. Done.")
	checkStoredOnce(t, g, tb, id)
	var cards int
	tb.eval(`document.querySelectorAll('[data-testid=tool-card]').length`, &cards)
	if cards != 1 {
		t.Errorf("%d tool cards after the reload, want 1", cards)
	}
}

// TestScreenshot saves a screenshot of an agent's turn, a tool card done
// and one running, at $GATEWAY_SCREENSHOT (docs/screenshot.png comes
// from it):
//
//	GATEWAY_SCREENSHOT=$PWD/docs/screenshot.png go test ./web -run TestScreenshot
func TestScreenshot(t *testing.T) {
	path := os.Getenv("GATEWAY_SCREENSHOT")
	if path == "" {
		t.Skip("set GATEWAY_SCREENSHOT=file.png to save a screenshot")
	}
	model, bench := newStepModel(), newToolBench()
	g := startGateway(t, model, gatewayConfig{agents: bench})
	g.post(t, "/v1/conversations", `{"title":"Weekend in Lisbon"}`, http.StatusCreated)
	tb := newTab(t, "tab")
	tb.do(chromedp.EmulateViewport(1280, 900))
	tb.open(g.url, "/")
	tb.do(chromedp.Click(chromedp.CSS(`[data-testid=new-conversation]`)))
	tb.waitFor("the agents", `document.querySelector('[data-testid=new-agent] option[value=support]') !== null`)
	tb.do(chromedp.SetValue(chromedp.CSS(`[data-testid=new-agent]`), "support"),
		chromedp.SendKeys(chromedp.CSS(`[data-testid=new-title]`), "Order A-1"),
		chromedp.Click(chromedp.CSS(`[data-testid=create]`)))
	tb.conversation()
	tb.send("Where is my order A-1, and can you check the warehouse?")
	model.say(t, "Let me look that up.")
	model.useTools(t, use("toolu_01", "lookup_order", `{"id":"A-1"}`))
	tb.waitCard("toolu_01", protocol.CallAwaitingApproval)
	tb.do(chromedp.Click(chromedp.CSS(`[data-call=toolu_01] [data-testid=tool-approve]`)))
	tb.waitCard("toolu_01", protocol.ResultOK)
	model.say(t, "Order **A-1** has shipped:\n\n| item | status |\n|---|---|\n| Desk lamp | shipped |\n| Chair | packing |\n\n"+
		"Tracking: `1Z999AA10123456784`. Checking the warehouse for the chair:")
	model.useTools(t, use("toolu_02", "files__slow", `{"warehouse":"LIS-2","item":"chair"}`))
	bench.waitCall(t)
	bench.progress <- convo.ToolProgress{Progress: 3, Total: 5, Message: "scanning shelves"}
	tb.waitFor("the progress", toolCard("toolu_02")+`?.querySelector('progress')?.value === 3`)
	tb.waitFor("the sidebar", `document.querySelectorAll('[data-testid=conversation]').length === 2`)
	tb.waitFor("the card's timer to count", toolCard("toolu_02")+`.querySelector('[data-testid=tool-timer]').textContent !== '0 s'`)
	shot, err := chromedp.Run(tb.ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, shot, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("saved %s", path)
	bench.finish <- convo.ToolOutcome{Status: protocol.ResultOK, Output: json.RawMessage(`{"chair":"ships tomorrow"}`)}
	model.say(t, " The chair ships tomorrow.")
	model.end(t, 40, 60)
	tb.waitTurnEnd(protocol.StopEndTurn)
}

// TestAgentHeaderAtPhoneWidth opens an agent's conversation at phone
// width, where the header is short of room: the title shows whole, and
// the agent's tools give way to it.
func TestAgentHeaderAtPhoneWidth(t *testing.T) {
	g := startGateway(t, newStepModel(), gatewayConfig{agents: newToolBench()})
	g.post(t, "/v1/conversations", `{"conversation":"orders","title":"Orders","agent":"support"}`, http.StatusCreated)
	tb := newTab(t, "tab")
	tb.do(chromedp.EmulateViewport(390, 800))
	tb.open(g.url, "/#/c/orders")
	tb.waitFor("the agent and its tools in the header", `document.querySelector('[data-testid=agent]').textContent === 'support' && `+
		`document.querySelectorAll('[data-testid=agent-tool]').length === 3`)
	var title struct {
		Text  string
		Whole bool
	}
	tb.eval(`(() => {
		// Measured to the fraction of a pixel: an ellipsis takes the
		// place of text that is wider than its box by any amount.
		const h = document.querySelector('[data-testid=title]'), r = document.createRange();
		r.selectNodeContents(h);
		return {Text: h.textContent, Whole: r.getBoundingClientRect().width <= h.getBoundingClientRect().width};
	})()`, &title)
	if title.Text != "Orders" || !title.Whole {
		t.Errorf("the title reads %q, shown whole %v", title.Text, title.Whole)
	}
}
