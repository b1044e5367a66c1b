package web_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/chatgateway/gateway/protocol"
)

// TestMalformedFragmentKeepsThePageWorking opens the page at addresses
// whose fragment is not valid percent-encoding, as a mistyped or hostile
// link can be: the page still starts, connects and can be used.
func TestMalformedFragmentKeepsThePageWorking(t *testing.T) {
	model := newStepModel()
	g := startGateway(t, model, gatewayConfig{})
	for _, path := range []string{"/#/c/%E0%A4%A", "/#token=%"} {
		t.Run(path, func(t *testing.T) {
			tb := newTab(t, "tab")
			tb.open(g.url, path)
		})
	}
	tb := newTab(t, "tab")
	tb.open(g.url, "/")
	// Going to such an address from the page opens no conversation.
	var ok bool
	tb.eval(`location.hash = '#/c/%'; true`, &ok)
	tb.waitFor("the page to open no conversation", `document.querySelector('[data-testid=title]').textContent === 'New conversation'`)
	tb.send("Still works")
	tb.waitFor("the new conversation in the URL", `location.hash !== '#/c/%'`)
	tb.conversation()
	tb.waitUserMessage("Still works")
	model.say(t, "Yes.")
	model.end(t, 1, 1)
	tb.waitTurnEnd(protocol.StopEndTurn)
}

// TestMarkdownTheParserCannotTakeIsShownAsText streams a reply nested
// deeper than the Markdown parser can go (ordered lists opened on one
// line, "1. 1. 1. …": its recursion overflows the stack): the reply shows
// as plain text, and the turn still ends on the page (the Stop button
// goes, the usage shows).
func TestMarkdownTheParserCannotTakeIsShownAsText(t *testing.T) {
	deep := strings.Repeat("1. ", 20000) + "deep"
	model, g, tb, id := startChat(t, "tab", "Nest it")
	model.say(t, deep)
	tb.waitFor("the nested reply", lastReplyTxt+`?.endsWith('1. deep')`)
	model.end(t, 1, 1)
	tb.waitTurnEnd(protocol.StopEndTurn)
	tb.waitFor("the Stop button to go", `document.querySelector('[data-testid=stop]').hidden`)
	tb.waitFor("the usage", lastReply+`.querySelector('[data-testid=usage]') !== null`)
	if text := tb.text(lastReply + `.querySelector('[data-testid=reply-text]').textContent`); text != deep {
		t.Errorf("the reply shows %d characters, want its text (%d)", len(text), len(deep))
	}
	checkStoredOnce(t, g, tb, id)
}

// TestLongWordsStayInTheirBoxes shows a model error and an external
// agent's action name made of one very long word (an id, a URL, base64, as
// an upstream error may well hold): they wrap inside their boxes instead
// of widening the message list, which would then scroll sideways.
func TestLongWordsStayInTheirBoxes(t *testing.T) {
	long := strings.Repeat("x", 3000)
	model, g, tb, id := startChat(t, "tab", "Fail long")
	model.fail(t, errors.New(long))
	tb.waitTurnEnd(protocol.StopError)
	// An external agent's action, outside any reply, named as it likes.
	g.post(t, "/v1/conversations/"+id+"/actions", `{"name":"`+long+`"}`, http.StatusCreated)
	tb.waitFor("the action card", `document.querySelector('[data-testid=messages] > [data-testid=action]') !== null`)
	var w struct{ Scroll, Client int }
	tb.eval(`({Scroll: document.querySelector('[data-testid=messages]').scrollWidth,
		Client: document.querySelector('[data-testid=messages]').clientWidth})`, &w)
	if w.Scroll > w.Client {
		t.Errorf("the message list is %d px wide inside %d px: it scrolls sideways", w.Scroll, w.Client)
	}
}

// TestSwitchingConversationsKeepsNoMarks opens two conversations in turn
// many times: the page keeps no record per opening (such as a
// performance mark each), which would grow as long as the tab is open.
func TestSwitchingConversationsKeepsNoMarks(t *testing.T) {
	g := startGateway(t, newStepModel(), gatewayConfig{})
	for _, id := range []string{"one", "two"} {
		g.post(t, "/v1/conversations", `{"conversation":"`+id+`"}`, http.StatusCreated)
	}
	tb := newTab(t, "tab")
	tb.open(g.url, "/")
	var ok bool
	for i := range 6 {
		id := []string{"one", "two"}[i%2]
		tb.eval(`location.hash = '#/c/`+id+`'; true`, &ok)
		tb.waitFor("conversation "+id+" open", `document.querySelector('[data-testid=messages]').dataset.ready === 'true' && `+
			`performance.getEntriesByName('conversation-ready').at(-1)?.detail === `+js(id))
	}
	var marks int
	tb.eval(`performance.getEntriesByType('mark').length`, &marks)
	if marks > 1 {
		t.Errorf("after opening conversations 6 times, the page holds %d performance marks, want at most 1", marks)
	}
}

// TestSendWhileOfflineThenSwitchingAway sends a message while the
// connection is down and opens another conversation before it is back.
// The message goes out after the reconnect, and a send subscribes its
// connection to its conversation: the page must not go on receiving the
// events of a conversation it no longer shows (they are dropped on
// arrival, but they keep coming for as long as the tab is open, and each
// such conversation takes one of the connection's subscriptions).
func TestSendWhileOfflineThenSwitchingAway(t *testing.T) {
	model := newStepModel()
	g := startGateway(t, model, gatewayConfig{})
	for _, id := range []string{"a", "b"} {
		g.post(t, "/v1/conversations", `{"conversation":"`+id+`","title":"Conversation `+id+`"}`, http.StatusCreated)
	}
	p := startProxy(t, g.url)
	tb := newTab(t, "tab")
	tb.open(p.url(), "/#/c/a")
	tb.waitFor("conversation a open", `document.querySelector('[data-testid=messages]').dataset.ready === 'true'`)

	p.refuseConns(true)
	p.cut()
	tb.waitFor("the page to see the connection lost", `document.querySelector('[data-testid=status]').dataset.state === 'reconnecting'`)
	tb.send("Sent while offline")
	var ok bool
	tb.eval(`location.hash = '#/c/b'; true`, &ok)
	// Its messages cannot load while offline: it says it is loading them.
	tb.waitFor("conversation b open", `document.querySelector('[data-testid=title]').textContent === 'Conversation b' && `+
		`document.querySelector('[data-testid=empty] .empty-title')?.textContent === 'Loading…'`)
	p.refuseConns(false)
	// The page tries again at once when told it is online.
	tb.eval(`dispatchEvent(new Event('online')); true`, &ok)
	tb.waitConnected()
	tb.waitFor("conversation b, empty", `document.querySelector('[data-testid=empty] .empty-title')?.textContent === 'No messages yet'`)
	// The ack of the message sent offline subscribes the connection to a:
	// the page unsubscribes when it sees it.
	p.waitSent(t, `"type":"unsubscribed"`)

	// a's reply streams after that; b's comes after it, on the same
	// connection, so once b's shows, any frame of a's would have passed
	// the proxy.
	model.say(t, "reply-in-a")
	model.end(t, 1, 1)
	tb.send("Now in b")
	tb.waitUserMessage("Now in b")
	model.say(t, "reply-in-b")
	model.end(t, 1, 1)
	tb.waitReply("reply-in-b")
	if msgs := g.messages(t, "a"); len(msgs) != 2 || msgs[0].Text != "Sent while offline" {
		t.Errorf("conversation a holds %+v, want the message sent offline and its reply", msgs)
	}
	if p.sent("reply-in-a") {
		t.Error("the page, showing b, still gets the events of a")
	}
}

// TestDeeplyNestedListShowsAsText streams a reply of lists nested 900
// deep, one more on each line: marked takes time that grows much faster
// than the text (seconds for a few hundred levels, and it runs again at
// every render of a streaming reply), which would freeze the tab. Text
// nested that deep is shown as plain text. (At 800 KB the reply stays
// under the gateway's limit, convo.MaxReplyBytes, which would cut it.)
func TestDeeplyNestedListShowsAsText(t *testing.T) {
	var b strings.Builder
	for i := range 900 {
		b.WriteString(strings.Repeat("  ", i) + "- a\n")
	}
	deep := b.String()
	model, g, tb, id := startChat(t, "tab", "Nest lists")
	for part := deep; part != ""; {
		n := min(len(part), 64<<10)
		model.say(t, part[:n])
		part = part[n:]
	}
	model.end(t, 1, 1)
	tb.waitTurnEnd(protocol.StopEndTurn)
	tb.waitFor("the reply as plain text", lastReply+`.querySelector('[data-testid=reply-text] .unrendered')?.textContent === `+lastReplyTxt)
	checkStoredOnce(t, g, tb, id)
}

// TestNotFoundNoticeGoesWithItsConversation opens a conversation that does
// not exist, then one that does: the notice that the first does not exist
// does not stay up over the second.
func TestNotFoundNoticeGoesWithItsConversation(t *testing.T) {
	g := startGateway(t, newStepModel(), gatewayConfig{})
	g.post(t, "/v1/conversations", `{"conversation":"real","title":"Real one"}`, http.StatusCreated)
	tb := newTab(t, "tab")
	tb.open(g.url, "/#/c/gone")
	notice := `document.querySelector('[data-testid=error]')`
	tb.waitFor("the not-found notice", `!`+notice+`.hidden`)
	tb.click(`[data-testid=conversation][href="#/c/real"]`)
	tb.waitFor("the real conversation", `document.querySelector('[data-testid=messages]').dataset.ready === 'true' && `+
		`document.querySelector('[data-testid=title]').textContent === 'Real one'`)
	if text := tb.text(notice + `.hidden ? '' : ` + notice + `.textContent`); text != "" {
		t.Errorf("showing conversation real, the page says %q", text)
	}
}
