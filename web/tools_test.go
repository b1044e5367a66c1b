package web_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

// cardView sets up, in the page, a second ConversationView on a section of
// its own (id "cards") whose tool-card answers are recorded in
// window.answers, and window.feed(events) applying events to it. It tests
// how the cards render each event, without a gateway that makes them; the
// agent tests run them through the gateway.
const cardView = `(async () => {
	const { ConversationView } = await import('/view.js');
	const section = document.createElement('section');
	section.id = 'cards';
	section.className = 'messages';
	document.querySelector('main').append(section);
	window.answers = [];
	const record = (kind) => (...args) => { answers.push([kind, ...args]); return Promise.resolve({}); };
	const view = new ConversationView(section, {
		onRunning: () => {},
		answer: { approve: record('approve'), output: record('output') },
		loadOlder: () => {},
	});
	view.reset('c');
	let seq = 0;
	const ts = new Date().toISOString();
	window.feed = (events) => {
		for (const ev of events) view.apply({ conversation: 'c', seq: ++seq, ts, turn: 't1', ...ev });
		return seq;
	};
	return true;
})()`

// card is an expression for the card of call id in the test view.
func card(call string) string {
	return `document.querySelector('#cards [data-testid=tool-card][data-call=` + js(call) + `]')`
}

func TestToolCardStates(t *testing.T) {
	g := startGateway(t, newStepModel(), gatewayConfig{})
	tb := newTab(t, "tab")
	tb.open(g.url, "/")
	var ok bool
	tb.eval(cardView, &ok, chromedp.EvalAwaitPromise)

	long := `Object.fromEntries([...Array(30).keys()].map(i => ['key' + i, 'v'.repeat(40)]))`
	tb.eval(`feed([
		{type: 'turn_start', model: 'm', agent: 'support'},
		{type: 'thinking', text: 'Check the **order** first.'},
		{type: 'delta', text: 'Let me **look**.'},
		{type: 'tool_call', call: 'run', name: 'lookup_order', input: {id: 'A-1'}, step: 1, status: 'running'},
		{type: 'tool_progress', call: 'run', progress: 3, total: 10, message: 'reading'},
		{type: 'tool_call', call: 'ask', name: 'lookup_order', input: {id: 'B-2'}, step: 1, status: 'awaiting_approval'},
		{type: 'tool_call', call: 'client', name: 'confirm', input: {question: 'Ship it?'}, step: 1, status: 'awaiting_client'},
		{type: 'tool_call', call: 'err', name: 'flaky', input: {}, step: 1, status: 'running'},
		{type: 'tool_result', call: 'err', name: 'flaky', status: 'error', error: 'HTTP 502 from upstream', duration_ms: 40},
	]) > 0`, &ok)

	var running struct {
		Status, Timer, Progress, Input string
		Max, Value                     float64
	}
	tb.eval(`({Status: `+card("run")+`.dataset.status, Timer: `+card("run")+`.querySelector('[data-testid=tool-timer]').textContent,
		Progress: `+card("run")+`.querySelector('[data-testid=tool-progress-text]').textContent,
		Max: `+card("run")+`.querySelector('progress').max, Value: `+card("run")+`.querySelector('progress').value,
		Input: `+card("run")+`.querySelector('[data-testid=tool-input]').textContent})`, &running)
	if running.Status != "running" || !strings.HasSuffix(running.Timer, " s") || running.Progress != "3 / 10 · reading" ||
		running.Max != 10 || running.Value != 3 || running.Input != `{"id":"A-1"}` {
		t.Errorf("running card %+v", running)
	}
	if e := tb.text(card("err") + `.querySelector('[data-testid=tool-error]').textContent`); e != "HTTP 502 from upstream" {
		t.Errorf("error card shows %q", e)
	}
	if c := tb.text(`getComputedStyle(` + card("err") + `.querySelector('[data-testid=tool-error]')).color`); c != "rgb(220, 38, 38)" {
		t.Errorf("the error is coloured %s, want red", c)
	}
	// The text before the cards and the cards are in event order.
	var order []string
	tb.eval(`[...document.querySelector('#cards [data-testid=reply-text]').children].map(e => e.dataset.call ?? e.className)`, &order)
	if strings.Join(order, ",") != "segment markdown,run,ask,client,err" {
		t.Errorf("reply holds %v, want the text, then the cards in order", order)
	}

	// Thinking is Markdown too, rendered when its section is opened.
	thinking := `document.querySelector('#cards [data-testid=thinking]')`
	if n := tb.text(`String(` + thinking + `.querySelectorAll('strong').length)`); n != "0" {
		t.Errorf("folded thinking rendered %s strong elements, want none until it is opened", n)
	}
	tb.click(`#cards [data-testid=thinking] summary`)
	tb.waitFor("the thinking rendered", thinking+`.querySelector('[data-testid=thinking-text] strong')?.textContent === 'order'`)

	// Approve and deny send answers with the reason typed.
	tb.do(chromedp.SendKeys(chromedp.CSS(`#cards [data-call=ask] [data-testid=tool-reason]`), "not this one"),
		chromedp.Click(chromedp.CSS(`#cards [data-call=ask] [data-testid=tool-deny]`)),
		chromedp.Click(chromedp.CSS(`#cards [data-call=client] [data-testid=tool-confirm]`)))
	var answers [][]any
	tb.eval(`answers`, &answers)
	want := `[["approve","ask",false,"not this one"],["output","client",{"output":{"confirmed":true}}]]`
	if got := jsonString(t, answers); got != want {
		t.Errorf("answers %s, want %s", got, want)
	}
	if q := tb.text(card("client") + `.querySelector('[data-testid=tool-question]').textContent`); q != "Ship it?" {
		t.Errorf("client card asks %q", q)
	}

	// The events the answers cause close the cards.
	tb.eval(`feed([
		{type: 'tool_approval', call: 'ask', approved: false, by: 'alice', reason: 'not this one'},
		{type: 'tool_result', call: 'ask', name: 'lookup_order', status: 'denied', error: 'denied by the user', duration_ms: 900},
		{type: 'tool_result', call: 'client', name: 'confirm', status: 'ok', output: {confirmed: true}, duration_ms: 1200},
		{type: 'tool_result', call: 'run', name: 'lookup_order', status: 'ok', output: `+long+`, duration_ms: 2500},
		{type: 'delta', text: ' Done.'},
		{type: 'turn_end', stop_reason: 'end_turn', steps: 2, usage: {input_tokens: 1, output_tokens: 2},
			message: {id: 'm', seq: 0, role: 'assistant', text: 'Let me **look**. Done.', turn: 't1'}},
	]) > 0`, &ok)
	var done struct {
		Ask, Note, Client, Run, Timer string
		Folded, Panels                int
		Mismatch                      bool
	}
	tb.eval(`({Ask: `+card("ask")+`.dataset.status, Note: `+card("ask")+`.querySelector('[data-testid=tool-approval-note]').textContent,
		Client: `+card("client")+`.dataset.status, Run: `+card("run")+`.dataset.status,
		Timer: `+card("run")+`.querySelector('[data-testid=tool-timer]').textContent,
		Folded: document.querySelectorAll('#cards [data-call=run] details.tool-fold [data-testid=tool-output]').length,
		Panels: document.querySelectorAll('#cards :is([data-testid=tool-approval], [data-testid=tool-client])').length,
		Mismatch: document.querySelector('#cards [data-role=assistant]').dataset.mismatch === 'true'})`, &done)
	if done.Ask != "denied" || done.Note != "Denied by alice: not this one" || done.Client != "ok" || done.Run != "ok" ||
		done.Timer != "2.50 s" || done.Folded != 1 || done.Panels != 0 || done.Mismatch {
		t.Errorf("finished cards %+v: want denied (with who and why), ok, ok folded with its duration, no buttons left", done)
	}
	var segments []string
	tb.eval(`[...document.querySelectorAll('#cards [data-testid=reply-text] > .segment')].map(s => s.textContent.trim())`, &segments)
	if strings.Join(segments, "|") != "Let me look.|Done." {
		t.Errorf("text segments %q, want the text before and after the cards", segments)
	}

	// Every way a call can end is shown as such.
	for _, status := range []string{"timeout", "cancelled", "interrupted"} {
		tb.eval(`feed([{type: 'tool_call', call: `+js(status)+`, name: 'slow', input: {}, step: 1, status: 'running'},
			{type: 'tool_result', call: `+js(status)+`, name: 'slow', status: `+js(status)+`, error: 'call `+status+`'}]) > 0`, &ok)
		label := tb.text(card(status) + `.querySelector('[data-testid=tool-status]').textContent`)
		want := map[string]string{"timeout": "Timed out", "cancelled": "Cancelled", "interrupted": "Interrupted"}[status]
		if label != want {
			t.Errorf("%s call shows %q, want %q", status, label, want)
		}
	}
}

func jsonString(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
