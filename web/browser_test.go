package web_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/chatgateway/gateway/protocol"
)

// checkStoredOnce checks that the page shows the conversation's stored
// replies exactly once, the last one with the stored text, which the
// deltas added up to without correction.
func checkStoredOnce(t *testing.T, g *gateway, tb *tab, conversation string) {
	t.Helper()
	msgs := g.messages(t, conversation)
	if len(msgs) == 0 || msgs[len(msgs)-1].Role != protocol.RoleAssistant {
		t.Fatalf("stored messages %+v: want an assistant reply last", msgs)
	}
	replies := 0
	for _, m := range msgs {
		if m.Role == protocol.RoleAssistant {
			replies++
		}
	}
	last := msgs[len(msgs)-1]
	var got struct {
		Replies  int    `json:"replies"`
		Text     string `json:"text"`
		Seq      string `json:"seq"`
		Mismatch bool   `json:"mismatch"`
	}
	tb.eval(`({replies: `+assistants+`.length, text: `+lastReplyTxt+`,
		seq: `+lastReply+`.dataset.seq, mismatch: `+lastReply+`.dataset.mismatch === 'true'})`, &got)
	if got.Replies != replies || got.Text != last.Text || got.Mismatch {
		t.Fatalf("%s shows %d replies, the last %q (corrected: %v); stored: %d, the last %q",
			tb.name, got.Replies, got.Text, got.Mismatch, replies, last.Text)
	}
	if want := strconv.FormatUint(last.Seq, 10); got.Seq != want {
		t.Errorf("%s: the reply's data-seq is %s, its stored seq %s", tb.name, got.Seq, want)
	}
}

// startChat starts a gateway on a step model, opens the page in a tab
// named name and sends text, returning the conversation it went to.
func startChat(t *testing.T, name, text string) (*stepModel, *gateway, *tab, string) {
	t.Helper()
	model := newStepModel()
	g := startGateway(t, model, gatewayConfig{})
	tb := newTab(t, name)
	tb.open(g.url, "/")
	tb.send(text)
	return model, g, tb, tb.conversation()
}

func TestReplyStreamsAndEndsWithUsage(t *testing.T) {
	model, g, tb, id := startChat(t, "tab", "Hello there")
	tb.waitUserMessage("Hello there")
	// Two intermediate states, each seen before the next chunk exists.
	model.say(t, "Hello")
	tb.waitReply("Hello")
	tb.waitFor("the Stop button", `!document.querySelector('[data-testid=stop]').hidden`)
	// Busy while it streams, so that the live message list does not
	// announce it again at each chunk.
	tb.waitFor("the reply streaming", lastReply+`.dataset.state === 'streaming' && `+lastReply+`.getAttribute('aria-busy') === 'true'`)
	model.say(t, ", world")
	tb.waitReply("Hello, world")
	model.say(t, "!")
	model.end(t, 12, 5)
	tb.waitTurnEnd(protocol.StopEndTurn)
	tb.waitReply("Hello, world!")
	if busy := tb.text(`String(` + lastReply + `.getAttribute('aria-busy'))`); busy != "null" {
		t.Errorf("the ended reply has aria-busy=%s, want none: it would not be announced", busy)
	}

	usage := tb.text(lastReply + `.querySelector('[data-testid=usage]')?.textContent ?? ''`)
	want := testModelID + " · 12 in / 5 out tokens · first token "
	if len(usage) <= len(want) || usage[:len(want)] != want {
		t.Errorf("usage line %q, want it to start with %q and give the latency", usage, want)
	}
	tb.waitFor("the Stop button to go", `document.querySelector('[data-testid=stop]').hidden`)
	checkStoredOnce(t, g, tb, id)
	// The first message titles the conversation.
	tb.waitFor("the title", `document.querySelector('[data-testid=title]').textContent === 'Hello there'`)
	tb.waitFor("the sidebar entry", `document.querySelector('[data-testid=conversation] .conversation-title')?.textContent === 'Hello there'`)
}

func TestComposerKeys(t *testing.T) {
	model := newStepModel()
	g := startGateway(t, model, gatewayConfig{})
	tb := newTab(t, "tab")
	tb.open(g.url, "/")

	tb.do(
		chromedp.SendKeys(chromedp.CSS(`[data-testid=composer]`), "first line"),
		pressEnter(kb.ModifierShift),
		chromedp.SendKeys(chromedp.CSS(`[data-testid=composer]`), "second line"),
	)
	value := tb.text(`document.querySelector('[data-testid=composer]').value`)
	if value != "first line\nsecond line" {
		t.Fatalf("composer holds %q after Shift+Enter, want a new line and nothing sent", value)
	}
	if tb.text(`location.hash`) != "" {
		t.Fatal("Shift+Enter sent the message")
	}
	tb.do(pressEnter(0))
	tb.waitUserMessage("first line\nsecond line")
	tb.waitFor("the composer to empty", `document.querySelector('[data-testid=composer]').value === ''`)
	model.end(t, 1, 0)
	tb.waitTurnEnd(protocol.StopEndTurn)
}

// TestSendButtonKeepsTheComposerFocused sends a message with the Send
// button: the composer keeps the keyboard, so the next message can be
// typed and sent with Enter at once, without clicking back into it.
func TestSendButtonKeepsTheComposerFocused(t *testing.T) {
	model, _, _, tb := gatedChat(t)
	tb.do(chromedp.SendKeys(chromedp.CSS(`[data-testid=composer]`), "clicked"))
	tb.click(`[data-testid=send]`)
	tb.waitUserMessage("clicked")
	// Typed at whatever has the focus, as a keyboard does.
	tb.do(chromedp.KeyEvent("typed"), pressEnter(0))
	tb.waitUserMessage("typed")
	model.end(t, 1, 0)
	model.end(t, 1, 0)
	tb.waitTurnEnd(protocol.StopEndTurn)
}

func TestSecondTabSeesTheConversationLive(t *testing.T) {
	model, g, a, id := startChat(t, "tab A", "Question from A")
	model.say(t, "Answer ")

	b := newTab(t, "tab B")
	b.open(g.url, "/#/c/"+id)
	b.waitUserMessage("Question from A")
	b.waitReply("Answer ")
	model.say(t, "to A")
	model.end(t, 3, 2)
	waitFinished(t, "Answer to A", a, b)

	// A message typed in B shows in A, and so does its reply.
	b.send("Question from B")
	a.waitUserMessage("Question from B")
	model.say(t, "Answer to B")
	model.end(t, 8, 3)
	waitFinished(t, "Answer to B", a, b)
	checkStoredOnce(t, g, a, id)
	checkStoredOnce(t, g, b, id)
}

// waitFinished waits until every tab shows the newest reply ended
// normally with text want.
func waitFinished(t *testing.T, want string, tabs ...*tab) {
	t.Helper()
	for _, tb := range tabs {
		tb.waitTurnEnd(protocol.StopEndTurn)
		tb.waitReply(want)
	}
}

func TestReloadInTheMiddleOfAReply(t *testing.T) {
	model, g, tb, id := startChat(t, "tab", "Tell me a story")
	model.say(t, "Once ")
	model.say(t, "upon ")
	tb.waitReply("Once upon ")

	tb.do(chromedp.Reload())
	tb.waitConnected()
	tb.waitReply("Once upon ")
	model.say(t, "a time.")
	model.end(t, 4, 3)
	tb.waitTurnEnd(protocol.StopEndTurn)
	tb.waitReply("Once upon a time.")
	checkStoredOnce(t, g, tb, id)
	var shown int
	tb.eval(users+`.length`, &shown)
	if shown != 1 {
		t.Errorf("%d user messages after the reload, want 1", shown)
	}
}

func TestReconnectResumesFromTheLastSeq(t *testing.T) {
	model := newStepModel()
	g := startGateway(t, model, gatewayConfig{})
	p := startProxy(t, g.url)
	tb := newTab(t, "tab")
	tb.open(p.url(), "/")
	tb.send("Count for me")
	id := tb.conversation()
	model.say(t, "one ")
	tb.waitReply("one ")
	drainAccepted(p)
	// Record the status changes, to see the page say it reconnects.
	var ok bool
	tb.eval(`window.statusSeen = [];
		new MutationObserver(() => statusSeen.push(document.querySelector('[data-testid=status]').textContent))
			.observe(document.querySelector('[data-testid=status]'), {childList: true, characterData: true, subtree: true});
		true`, &ok)

	p.cut()
	// Streamed while the page is cut off: it must come from the log.
	model.say(t, "two ")
	waitAccepted(t, p)
	tb.waitConnected()
	model.say(t, "three")
	model.end(t, 3, 3)
	tb.waitTurnEnd(protocol.StopEndTurn)
	tb.waitReply("one two three")
	checkStoredOnce(t, g, tb, id)
	var seen []string
	tb.eval(`statusSeen`, &seen)
	if len(seen) < 2 || seen[0] != "Reconnecting…" || seen[len(seen)-1] != "Connected" {
		t.Errorf("status went %q, want Reconnecting… first and Connected last", seen)
	}
}

func drainAccepted(p *proxy) {
	for {
		select {
		case <-p.accepted:
		default:
			return
		}
	}
}

func waitAccepted(t *testing.T, p *proxy) {
	t.Helper()
	select {
	case <-p.accepted:
	case <-time.After(stepTimeout):
		t.Fatal("the page did not reconnect")
	}
}

func TestStopCancelsTheTurnInBothTabs(t *testing.T) {
	model, g, a, id := startChat(t, "tab A", "Write a long essay")
	b := newTab(t, "tab B")
	b.open(g.url, "/#/c/"+id)
	model.say(t, "The essay begins")
	for _, tb := range []*tab{a, b} {
		tb.waitReply("The essay begins")
	}

	a.do(chromedp.Click(chromedp.CSS(`[data-testid=stop]`)))
	for _, tb := range []*tab{a, b} {
		tb.waitTurnEnd(protocol.StopCancelled)
		tb.waitFor("the Stop button to go", `document.querySelector('[data-testid=stop]').hidden`)
		note := tb.text(lastReply + `.querySelector('[data-testid=turn-note]')?.textContent ?? ''`)
		if note != "Stopped" {
			t.Errorf("%s: turn note %q, want %q", tb.name, note, "Stopped")
		}
		checkStoredOnce(t, g, tb, id)
	}
}

func TestModelTextIsNeverMarkup(t *testing.T) {
	const (
		userText  = `<b>bold?</b> <script>alert(2)</script>`
		replyText = `<img src=x onerror=alert(1)> & <a href="javascript:alert(3)">link</a>`
	)
	model, g, tb, id := startChat(t, "tab", userText)
	model.say(t, replyText)
	model.end(t, 1, 1)
	tb.waitTurnEnd(protocol.StopEndTurn)
	tb.waitReply(replyText)
	tb.waitUserMessage(userText)

	var elements int
	tb.eval(`document.querySelectorAll('[data-testid=messages] :is(img, b, script, a)').length`, &elements)
	if elements != 0 {
		t.Errorf("the message list holds %d img/b/script/a elements, want none", elements)
	}
	if n := tb.dialogs.Load(); n != 0 {
		t.Errorf("%d JavaScript dialogs opened", n)
	}
	checkStoredOnce(t, g, tb, id)
}

// TestStopGivesTheKeyboardBackToTheComposer stops a reply with the Stop
// button, which then goes: the keyboard is in the composer, not lost
// with the button, so the next message can be typed at once.
func TestStopGivesTheKeyboardBackToTheComposer(t *testing.T) {
	model, _, _, tb := gatedChat(t)
	tb.send("Go on and on")
	model.say(t, "On")
	tb.waitReply("On")
	tb.click(`[data-testid=stop]`)
	tb.waitTurnEnd(protocol.StopCancelled)
	tb.waitFor("the Stop button to go", `document.querySelector('[data-testid=stop]').hidden`)
	// Typed at whatever has the focus, as a keyboard does.
	tb.do(chromedp.KeyEvent("next"), pressEnter(0))
	tb.waitUserMessage("next")
	model.end(t, 1, 0)
	tb.waitTurnEnd(protocol.StopEndTurn)
}

// TestStopWhileOfflineStopsNoLaterTurn clicks Stop while the page is cut
// off; the reply ends by itself meanwhile and the next message's turn
// starts. Once the page is back, that turn, which the click was not
// about, goes on: cancel names no turn, so a cancel kept for the
// reconnect would stop whichever one runs then.
func TestStopWhileOfflineStopsNoLaterTurn(t *testing.T) {
	model, _, gate, tb := gatedChat(t)
	tb.send("first")
	model.say(t, "One")
	tb.waitReply("One")
	tb.send("second")
	tb.waitUserMessage("second")
	gate.close()
	tb.waitFor("the page to see the connection lost", `document.querySelector('[data-testid=status]').dataset.state === 'reconnecting'`)
	var disabled bool
	if tb.eval(`document.querySelector('[data-testid=stop]').disabled`, &disabled); !disabled {
		t.Error("offline, the Stop button is enabled")
	}
	tb.click(`[data-testid=stop]`)
	model.end(t, 1, 1)
	model.say(t, "Two")

	tb.reconnect(gate)
	tb.waitReply("Two")
	// The gateway serves a connection's requests in order: a cancel sent
	// on connecting would be served before this message is stored.
	tb.send("third")
	tb.waitUserMessage("third")
	model.say(t, " more")
	model.end(t, 1, 1)
	tb.waitFor("the second reply to end", assistants+`[1]?.dataset.state === 'done'`)
	if reason := tb.text(assistants + `[1].dataset.stopReason`); reason != protocol.StopEndTurn {
		t.Errorf("the second reply ended %s, want %s", reason, protocol.StopEndTurn)
	}
	model.end(t, 1, 1)
	tb.waitTurnEnd(protocol.StopEndTurn)
}
