package web_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

// TestMessageToADeletedConversationShows sends two messages to
// conversation x while the page is offline, opens conversation y, and has
// another client delete x before the page connects again: the gateway
// refuses both sends as not_found. The page shows them where the user is,
// in y, saying why they were not sent (also after a reload, as the outbox
// keeps them): one discarded goes for good, the other, sent again, goes
// to y, and is stored and answered there.
func TestMessageToADeletedConversationShows(t *testing.T) {
	model, g, gate, tb := offlineChat(t)
	g.post(t, "/v1/conversations", `{"conversation":"y","title":"Other"}`, http.StatusCreated)
	tb.send("First")
	tb.send("Second")
	tb.waitFor("both messages pending", pendingTexts+`.join('|') === 'First|Second'`)
	var ok bool
	tb.eval(`location.hash = '#/c/y'; true`, &ok)
	tb.waitFor("conversation y open", `document.querySelector('[data-testid=title]').textContent === 'Other' && `+pendings+`.length === 0`)
	g.request(t, http.MethodDelete, "/v1/conversations/x", "", http.StatusOK)

	tb.reconnect(gate)
	refused := pendingTexts + `.join('|') === 'First|Second' && ` + pendings + `.every(p => p.dataset.state === 'failed')`
	tb.waitFor("both refusals, shown in y", refused)
	var shown struct {
		Error, Retry, Notice string
		Kept                 int
	}
	tb.eval(`({Error: `+pendings+`[0].querySelector('[data-testid=pending-error]').textContent,
		Retry: `+pendings+`[0].querySelector('[data-testid=pending-retry]').textContent,
		Notice: document.querySelector('[data-testid=error]').hidden ? '' : document.querySelector('[data-testid=error]').dataset.code,
		Kept: `+outboxKept+`})`, &shown)
	if shown.Error != "Not sent: its conversation no longer exists." || shown.Retry != "Send here" ||
		shown.Notice != protocol.CodeNotFound || shown.Kept != 2 {
		t.Errorf("the refused messages say %q, offer %q, the notice is about %q, and the outbox keeps %d; "+
			"want them to say their conversation no longer exists, offer to send them here, a not_found notice, and both kept",
			shown.Error, shown.Retry, shown.Notice, shown.Kept)
	}

	tb.do(chromedp.Reload())
	tb.waitConnected()
	tb.waitFor("both refusals after the reload", `document.querySelector('[data-testid=messages]').dataset.ready === 'true' && `+refused)
	tb.click(`[data-testid=pending-discard]`)
	tb.waitFor("the first to go", pendingTexts+`.join('|') === 'Second' && `+outboxKept+` === 1`)
	tb.click(`[data-testid=pending-retry]`)
	tb.waitUserMessage("Second")
	model.say(t, "Here it is.")
	model.end(t, 1, 1)
	tb.waitTurnEnd(protocol.StopEndTurn)
	tb.waitFor("the outbox empty", pendings+`.length === 0 && `+outboxKept+` === 0`)
	if msgs := g.messages(t, "y"); len(msgs) != 2 || msgs[0].Text != "Second" || msgs[1].Text != "Here it is." {
		t.Errorf("y holds %+v, want the message sent again and its reply", msgs)
	}
	checkStoredOnce(t, g, tb, "y")
}

// busyChat is gatedChat with the gateway's queue of turns for conversation
// x full when the page sends text there: the gateway refuses it (busy).
func busyChat(t *testing.T, text string) (*stepModel, *gateway, *socketGate, *tab) {
	t.Helper()
	model, g, gate, tb := gatedChat(t)
	// The model holds the first turn; these wait behind it, as many as
	// the gateway queues by default.
	for i := range convo.DefaultMaxQueuedTurns + 1 {
		g.post(t, "/v1/conversations/x/messages", fmt.Sprintf(`{"text":"queued %d"}`, i), http.StatusAccepted)
	}
	tb.send(text)
	tb.waitFor("the refusal on the message", pendingTexts+`.join('|') === `+js(text)+` && `+pendings+`[0].dataset.state === 'failed'`)
	return model, g, gate, tb
}

// strandedOnly is true once the only pending message shown is text,
// saying that its conversation no longer exists.
func strandedOnly(text string) string {
	return pendingTexts + `.join('|') === ` + js(text) + ` && ` +
		pendings + `[0].querySelector('[data-testid=pending-error]')?.textContent === 'Not sent: its conversation no longer exists.'`
}

// checkStrandedNotice checks that the notice shown says why (contains
// why) the page left the conversation it opened, and that the message
// that was waiting shows below, to send or discard, and that the outbox
// keeps it.
func checkStrandedNotice(t *testing.T, tb *tab, why string) {
	t.Helper()
	var shown struct {
		Notice string
		Kept   int
	}
	tb.eval(`({Notice: document.querySelector('[data-testid=error]').hidden ? '' : document.querySelector('[data-testid=error]').textContent,
		Kept: `+outboxKept+`})`, &shown)
	if !strings.Contains(shown.Notice, why) || !strings.Contains(shown.Notice, "send here or discard") || shown.Kept != 1 {
		t.Errorf("the notice says %q and the outbox keeps %d messages; want a notice that says %q and that the message "+
			"shows to send here or discard, and the message kept", shown.Notice, shown.Kept, why)
	}
}

// TestUnsentMessageOutlivesItsDeletedConversation has the gateway refuse a
// message of the open conversation x (its queue of turns full), and
// another client delete x: the page leaves x and, rather than drop the
// message, shows it in the new chat's view, saying why, with a notice.
// Sent from there (Send here, which leaves the keyboard in the composer),
// it makes a conversation of its own.
func TestUnsentMessageOutlivesItsDeletedConversation(t *testing.T) {
	_, g, _, tb := busyChat(t, "Mine")
	g.request(t, http.MethodDelete, "/v1/conversations/x", "", http.StatusOK)
	tb.waitFor("the message in the new chat's view", `document.querySelector('[data-testid=title]').textContent === 'New conversation' && `+
		strandedOnly("Mine"))
	checkStrandedNotice(t, tb, "was deleted")

	tb.click(`[data-testid=pending-retry]`)
	tb.waitFor("the keyboard in the composer", focused+` === 'composer'`)
	id := tb.conversation()
	tb.waitUserMessage("Mine")
	tb.waitFor("the outbox empty", pendings+`.length === 0 && `+outboxKept+` === 0`)
	if msgs := g.messages(t, id); len(msgs) == 0 || msgs[0].Text != "Mine" {
		t.Errorf("the new conversation holds %+v, want the message first", msgs)
	}
}

// TestTabsAgreeOnAStrandedMessage has the gateway refuse a message of
// conversation x in one tab while another shows conversation y, and
// another client delete x: the other tab shows the message too, without a
// reload, as one to send in y or discard. Sent from the first tab to a
// new conversation, while the page is offline (so that no ack ends it),
// it goes from the other tab, which does not show it as sending.
func TestTabsAgreeOnAStrandedMessage(t *testing.T) {
	_, g, gate, first := busyChat(t, "Mine")
	g.post(t, "/v1/conversations", `{"conversation":"y","title":"Other"}`, http.StatusCreated)
	second := newTab(t, "second")
	second.open(g.url, "/#/c/y")
	second.waitFor("conversation y open, without x's refused message", `document.querySelector('[data-testid=messages]').dataset.ready === 'true' && `+
		pendings+`.length === 0`)

	g.request(t, http.MethodDelete, "/v1/conversations/x", "", http.StatusOK)
	first.waitFor("the message in the new chat's view", strandedOnly("Mine"))
	second.waitFor("the message in y too", strandedOnly("Mine"))

	gate.close()
	for _, tb := range []*tab{first, second} {
		tb.waitFor("the page to see the connection lost", `document.querySelector('[data-testid=status]').dataset.state === 'reconnecting'`)
	}
	first.click(`[data-testid=pending-retry]`)
	first.waitFor("the message sending", pendingTexts+`.join('|') === 'Mine' && `+pendings+`[0].dataset.state === 'sending'`)
	second.waitFor("the message to go from y", pendings+`.length === 0`)

	first.reconnect(gate)
	id := first.conversation()
	first.waitUserMessage("Mine")
	first.waitFor("the outbox empty", pendings+`.length === 0 && `+outboxKept+` === 0`)
	if msgs := g.messages(t, id); len(msgs) == 0 || msgs[0].Text != "Mine" {
		t.Errorf("the new conversation holds %+v, want the message first", msgs)
	}
	if n := second.text(`String(` + pendings + `.length)`); n != "0" {
		t.Errorf("the second tab shows %s pending messages, want none", n)
	}
}

// TestUnsentMessageOutlivesAConversationFoundGone sends a message while
// the page is offline, and another client deletes its conversation x: the
// page, reloaded still offline, finds x gone when it opens it, and shows
// the message in a new chat's view instead of dropping it.
func TestUnsentMessageOutlivesAConversationFoundGone(t *testing.T) {
	_, g, _, tb := offlineChat(t)
	tb.send("Draft")
	tb.waitFor("the pending message", pendingTexts+`.join('|') === 'Draft'`)
	g.request(t, http.MethodDelete, "/v1/conversations/x", "", http.StatusOK)

	tb.do(chromedp.Reload())
	tb.waitFor("the message in the new chat's view", `document.querySelector('[data-testid=title]').textContent === 'New conversation' && `+
		strandedOnly("Draft"))
	checkStrandedNotice(t, tb, "does not exist")
}

// TestStrandedMessageShowsInTheOpenView has the gateway refuse a message
// of conversation x (its queue of turns full); the page opens y but still
// follows x (its unsubscribe not yet through, as when the delete crosses
// it), and another client deletes x: the deleted frame for x, which is
// not open, makes the message show at once in y, to send there or
// discard, with a notice, rather than only in the next view opened.
func TestStrandedMessageShowsInTheOpenView(t *testing.T) {
	_, g, _, tb := busyChat(t, "Mine")
	g.post(t, "/v1/conversations", `{"conversation":"y","title":"Other"}`, http.StatusCreated)
	var ok bool
	tb.eval(`import(document.querySelector('link[rel=modulepreload][href$="/socket.js"]').href).then(({GatewaySocket}) => {
		GatewaySocket.prototype.unsubscribe = () => {};
		return true;
	})`, &ok, chromedp.EvalAwaitPromise)
	tb.eval(`location.hash = '#/c/y'; true`, &ok)
	tb.waitFor("conversation y open, without x's refused message", `document.querySelector('[data-testid=messages]').dataset.ready === 'true' && `+
		`document.querySelector('[data-testid=title]').textContent === 'Other' && `+pendings+`.length === 0`)

	g.request(t, http.MethodDelete, "/v1/conversations/x", "", http.StatusOK)
	tb.waitFor("the message in y", strandedOnly("Mine"))
	checkStrandedNotice(t, tb, "no longer exists")
}

// deletedUnseen is busyChat with the message "Mine" refused in x, then
// conversation y opened, the page offline (following neither), and x
// deleted by another client: no deleted frame tells the page.
func deletedUnseen(t *testing.T) (*gateway, *socketGate, *tab) {
	t.Helper()
	_, g, gate, tb := busyChat(t, "Mine")
	leaveForY(t, g, tb)
	gate.close()
	tb.waitFor("the page to see the connection lost", `document.querySelector('[data-testid=status]').dataset.state === 'reconnecting'`)
	g.request(t, http.MethodDelete, "/v1/conversations/x", "", http.StatusOK)
	return g, gate, tb
}

// leaveForY creates conversation y, titled Other, and has tb, open at
// conversation x, open y instead, which shows none of x's messages not
// sent.
func leaveForY(t *testing.T, g *gateway, tb *tab) {
	t.Helper()
	g.post(t, "/v1/conversations", `{"conversation":"y","title":"Other"}`, http.StatusCreated)
	var ok bool
	tb.eval(`location.hash = '#/c/y'; true`, &ok)
	tb.waitFor("conversation y open, without x's messages not sent", `document.querySelector('[data-testid=messages]').dataset.ready === 'true' && `+
		`document.querySelector('[data-testid=title]').textContent === 'Other' && `+pendings+`.length === 0`)
}

// TestRefusedMessageOfAConversationDeletedUnseen has the gateway refuse a
// message of conversation x (its queue of turns full); the page opens y,
// and, while it is offline (following neither), another client deletes x:
// no deleted frame tells the page. It finds x gone when it connects again
// (and refreshes its list), or when it is reloaded, still offline, and
// shows the message in y, to send there or discard, rather than keep it,
// unsendable, for x's view, which can no longer be opened.
func TestRefusedMessageOfAConversationDeletedUnseen(t *testing.T) {
	for _, c := range []struct {
		name string
		find func(*tab, *socketGate)
	}{
		{"connected again", func(tb *tab, gate *socketGate) { tb.reconnect(gate) }},
		{"reloaded", func(tb *tab, _ *socketGate) { tb.do(chromedp.Reload()) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, gate, tb := deletedUnseen(t)
			c.find(tb, gate)
			tb.waitFor("the message in y", `document.querySelector('[data-testid=title]').textContent === 'Other' && `+strandedOnly("Mine"))
			checkStrandedNotice(t, tb, "no longer exists")
			tb.click(`[data-testid=pending-discard]`)
			tb.waitFor("the outbox empty", pendings+`.length === 0 && `+outboxKept+` === 0`)
		})
	}
}

// TestRefusedMessageOfAConversationReplaced has the gateway refuse a
// message of conversation x (its queue of turns full); the page opens y,
// and, while it is offline, another client deletes x and creates another
// conversation under its id. The message, written before the new x was
// created, is not that one's: when the page finds the new x (listed once
// it connects again, asked about when it is reloaded, or opened), it
// shows the message where the user is, as one whose conversation no
// longer exists, and in the new x too only as such, to send there.
func TestRefusedMessageOfAConversationReplaced(t *testing.T) {
	for _, c := range []struct {
		name string
		find func(*tab, *socketGate)
		// where is the view that shows the message found.
		where string
	}{
		{"connected again", func(tb *tab, gate *socketGate) { tb.reconnect(gate) }, "#/c/y"},
		{"reloaded", func(tb *tab, _ *socketGate) { tb.do(chromedp.Reload()) }, "#/c/y"},
		{"opened", func(tb *tab, _ *socketGate) {
			var ok bool
			tb.eval(`location.hash = '#/c/x'; true`, &ok)
		}, "#/c/x"},
	} {
		t.Run(c.name, func(t *testing.T) {
			g, gate, tb := deletedUnseen(t)
			g.post(t, "/v1/conversations", `{"conversation":"x","title":"Again"}`, http.StatusCreated)

			c.find(tb, gate)
			tb.waitFor("the message in "+c.where, `location.hash === `+js(c.where)+` && `+strandedOnly("Mine"))
			checkStrandedNotice(t, tb, "no longer exists")

			tb.reconnect(gate)
			var ok bool
			tb.eval(`location.hash = '#/c/x'; true`, &ok)
			tb.waitFor("the message in the new x, as one whose conversation no longer exists",
				`document.querySelector('[data-testid=messages]').dataset.ready === 'true' && `+
					`document.querySelector('[data-testid=title]').textContent === 'Again' && `+strandedOnly("Mine"))
			tb.click(`[data-testid=pending-retry]`)
			tb.waitUserMessage("Mine")
			tb.waitFor("the outbox empty", pendings+`.length === 0 && `+outboxKept+` === 0`)
			if msgs := g.messages(t, "x"); len(msgs) == 0 || msgs[0].Text != "Mine" {
				t.Errorf("the new x holds %+v, want the message sent there", msgs)
			}
		})
	}
}

// TestOutboxEntryOfAnOlderPageLoads has the outbox hold a refused
// message as a page older than the entries' made field kept it: the
// page loads it and shows it in its conversation, as that page did, to
// send again or discard.
func TestOutboxEntryOfAnOlderPageLoads(t *testing.T) {
	_, _, _, tb := gatedChat(t)
	var ok bool
	tb.eval(`localStorage.setItem('gateway.outbox//old', JSON.stringify({conversation: 'x', text: 'Kept before', `+
		`error: {code: 'busy', message: 'too many turns are waiting'}, after: 0, at: 1})); true`, &ok)
	tb.do(chromedp.Reload())
	tb.waitConnected()
	tb.waitFor("the refused message", `document.querySelector('[data-testid=messages]').dataset.ready === 'true' && `+
		pendingTexts+`.join('|') === 'Kept before' && `+pendings+`[0].dataset.state === 'failed'`)
	if retry := tb.text(pendings + `[0].querySelector('[data-testid=pending-retry]').textContent`); retry != "Send again" {
		t.Errorf("the message offers %q, want Send again", retry)
	}
	tb.click(`[data-testid=pending-discard]`)
	tb.waitFor("the outbox empty", pendings+`.length === 0 && `+outboxKept+` === 0`)
}

// TestLiveConversationIsAskedAboutOnce has the gateway refuse a message
// of conversation x (its queue of turns full), and then lists 50 newer
// conversations: x is not in the list's first page, which is all the
// page loads. The page asks the gateway whether x exists (it could have
// been deleted unseen) once, not again at every refresh of its list.
func TestLiveConversationIsAskedAboutOnce(t *testing.T) {
	_, g, _, tb := busyChat(t, "Mine")
	for i := range 50 { // sidebar.js's PAGE
		g.post(t, "/v1/conversations", fmt.Sprintf(`{"conversation":"c%d","title":"C %d"}`, i, i), http.StatusCreated)
	}
	// The page's requests about x, counted as it makes them.
	var ok bool
	tb.eval(`window.askedX = 0;
		const fetched = fetch;
		window.fetch = (url, ...rest) => {
			if (url === '/v1/conversations/x') askedX++;
			return fetched(url, ...rest);
		};
		location.hash = '#/c/c0';
		true`, &ok)
	tb.waitFor("c0 open", `document.querySelector('[data-testid=title]').textContent === 'C 0' && `+pendings+`.length === 0`)
	// Listed already, c0 opens without a refresh of the list, which may
	// predate some of the 50.
	tb.refreshList()
	tb.waitFor("x not listed", `document.querySelectorAll('[data-testid=conversations] li[data-id]').length === 50 && `+
		`![...document.querySelectorAll('[data-testid=conversations] li')].some(li => li.dataset.id === 'x')`)
	tb.waitFor("the page to ask about x", `askedX > 0`)
	for range 3 {
		tb.refreshList()
	}
	var asked int
	if tb.eval(`askedX`, &asked); asked != 1 {
		t.Errorf("the page asked about x %d times, want once", asked)
	}
	if n := tb.text(`String(` + outboxKept + `)`); n != "1" {
		t.Errorf("the outbox keeps %s messages, want x's refused one", n)
	}
}
