package web_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/chatgateway/gateway/internal/auth"
	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

// openOffline opens the page at path in a new tab while the gate keeps its
// socket out, and waits until the title shows (the page fetched what it
// could over HTTP).
func openOffline(t *testing.T, name, base, path, title string) *tab {
	t.Helper()
	tb := newTab(t, name)
	tb.do(chromedp.Navigate(base + path))
	tb.waitFor("the page, offline", `document.querySelector('[data-testid=title]')?.textContent === `+js(title)+` && `+
		`document.querySelector('[data-testid=status]').dataset.state === 'reconnecting'`)
	return tb
}

// TestMessageSentOfflineOutlivesItsTab sends a message while the page is
// offline and closes the tab: the page opened again, in two tabs, shows
// the message pending in both, and once they connect it is stored once
// and both show it once.
func TestMessageSentOfflineOutlivesItsTab(t *testing.T) {
	model, g, gate, tb := offlineChat(t)
	tb.send("Kept for later")
	tb.waitFor("the pending message", pendingTexts+`.join('|') === 'Kept for later'`)
	tb.close()

	tabs := []*tab{openOffline(t, "again", g.url, "/#/c/x", "Outbox"), openOffline(t, "beside", g.url, "/#/c/x", "Outbox")}
	for _, tb := range tabs {
		tb.waitFor("the message pending", pendingTexts+`.join('|') === 'Kept for later'`)
	}
	for _, tb := range tabs {
		tb.reconnect(gate)
	}
	for _, tb := range tabs {
		tb.waitUserMessage("Kept for later")
	}
	model.say(t, "Kept.")
	model.end(t, 1, 1)
	for _, tb := range tabs {
		tb.waitTurnEnd(protocol.StopEndTurn)
		tb.waitFor("the outbox empty", pendings+`.length === 0 && `+users+`.length === 1 && `+outboxKept+` === 0`)
		checkStoredOnce(t, g, tb, "x")
	}
	if msgs := g.messages(t, "x"); len(msgs) != 2 || msgs[0].Text != "Kept for later" || msgs[1].Text != "Kept." {
		t.Errorf("stored %+v, want the message once and its reply", msgs)
	}
}

// TestOpenTabSendsWhatAClosedOneLeft has two tabs open on a conversation
// while the page is offline; one sends a message and is closed: the other,
// once connected, sends it, and shows it once.
func TestOpenTabSendsWhatAClosedOneLeft(t *testing.T) {
	model, g, gate, tb := offlineChat(t)
	beside := openOffline(t, "beside", g.url, "/#/c/x", "Outbox")
	tb.send("Left behind")
	tb.waitFor("the pending message", pendingTexts+`.join('|') === 'Left behind'`)
	tb.close()

	beside.reconnect(gate)
	beside.waitUserMessage("Left behind")
	model.say(t, "Picked up.")
	model.end(t, 1, 1)
	beside.waitTurnEnd(protocol.StopEndTurn)
	beside.waitFor("the message once, the outbox empty", users+`.length === 1 && `+pendings+`.length === 0 && `+outboxKept+` === 0`)
	checkStoredOnce(t, g, beside, "x")
}

// TestOutboxSurvivesBadStorage starts the page with unreadable outbox
// entries in its storage and sends a message, offline, with the storage
// full: the page drops the unreadable entries, keeps the message for as
// long as it is open, and sends it once it connects.
func TestOutboxSurvivesBadStorage(t *testing.T) {
	model, g, gate, tb := gatedChat(t)
	var ok bool
	tb.eval(`localStorage.setItem('gateway.outbox//not-json', '{');
		localStorage.setItem('gateway.outbox//no-text', '{"conversation":"x"}');
		localStorage.setItem('gateway.outbox//null', 'null');
		true`, &ok)
	tb.do(chromedp.Reload())
	tb.waitConnected()
	tb.waitFor("conversation x open", `document.querySelector('[data-testid=messages]').dataset.ready === 'true'`)
	var left struct{ Pending, Kept int }
	if tb.eval(`({Pending: `+pendings+`.length, Kept: `+outboxKept+`})`, &left); left.Pending != 0 || left.Kept != 0 {
		t.Errorf("with unreadable entries in storage, the page shows %d pending messages and keeps %d entries", left.Pending, left.Kept)
	}

	// Fill the storage until it takes not one more character.
	tb.eval(`(() => {
		let i = 0;
		for (let size = 1 << 20; size >= 1; size >>= 1) {
			try { for (;;) localStorage.setItem('f' + i++, 'x'.repeat(size)); } catch {}
		}
		return true;
	})()`, &ok)
	gate.close()
	tb.waitFor("the page to see the connection lost", `document.querySelector('[data-testid=status]').dataset.state === 'reconnecting'`)
	tb.send("No room")
	tb.waitFor("the pending message", pendingTexts+`.join('|') === 'No room' && `+pendings+`[0].dataset.state === 'sending'`)
	tb.reconnect(gate)
	tb.waitFor("the stored message in its place", users+`.length === 1 && `+pendings+`.length === 0`)
	model.say(t, "Room.")
	model.end(t, 1, 1)
	tb.waitTurnEnd(protocol.StopEndTurn)
	checkStoredOnce(t, g, tb, "x")
	tb.eval(`localStorage.clear(); true`, &ok)
}

// TestOutboxKeepsUsersApart sends a message offline as alice and closes
// the tab; bob's page, in the same browser, neither shows nor sends it,
// and alice's page, opened again, does.
func TestOutboxKeepsUsersApart(t *testing.T) {
	// Tokens shaped as JSON Web Tokens, whose sub the page reads; this
	// gateway takes them as they are.
	token := func(sub string) string {
		claims := base64.RawURLEncoding.EncodeToString([]byte(`{"sub":` + js(sub) + `}`))
		return "e30." + claims + ".sig"
	}
	subs := map[string]string{token("alice"): "alice", token("bob"): "bob"}
	user := func(r *http.Request) (auth.Caller, error) {
		tok := r.URL.Query().Get("token")
		if tok == "" {
			tok = strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		}
		if u, ok := subs[tok]; ok {
			return auth.Caller{User: u}, nil
		}
		return auth.Caller{}, protocol.Errorf(protocol.CodeUnauthorized, "unknown token")
	}
	gate := &socketGate{}
	model := newStepModel()
	g := startGateway(t, model, gatewayConfig{user: user, wrap: gate.wrap})

	alice := newTab(t, "alice")
	alice.open(g.url, "/#token="+token("alice"))
	gate.close()
	alice.waitFor("the page to see the connection lost", `document.querySelector('[data-testid=status]').dataset.state === 'reconnecting'`)
	alice.send("Alice's draft")
	alice.waitFor("the pending message", pendingTexts+`.join('|') === "Alice's draft"`)
	alice.close()

	gate.open()
	bob := newTab(t, "bob")
	bob.open(g.url, "/#token="+token("bob"))
	// Bob's message goes out after any the page found in its outbox.
	bob.send("Bob's own")
	bob.waitFor("bob's message stored", users+`.length === 1 && `+pendings+`.length === 0`)
	model.say(t, "Hi Bob.")
	model.end(t, 1, 1)
	bob.waitTurnEnd(protocol.StopEndTurn)
	var got struct {
		Pending []string
		Kept    int
	}
	bob.eval(`({Pending: `+pendingTexts+`, Kept: `+outboxKept+`})`, &got)
	if len(got.Pending) != 0 || got.Kept != 1 {
		t.Errorf("bob's page shows %q pending, and the browser keeps %d messages; want none shown and alice's kept", got.Pending, got.Kept)
	}
	if l := g.listAs(t, token("bob")); len(l) != 1 || l[0].Title != "Bob's own" {
		t.Errorf("bob has the conversations %+v, want his own only", l)
	}

	alice = newTab(t, "alice again")
	alice.open(g.url, "/#token="+token("alice"))
	id := alice.conversation()
	alice.waitFor("alice's message stored", users+`.length === 1 && `+pendings+`.length === 0 && `+outboxKept+` === 0`)
	model.say(t, "Hi Alice.")
	model.end(t, 1, 1)
	alice.waitTurnEnd(protocol.StopEndTurn)
	if l := g.listAs(t, token("alice")); len(l) != 1 || l[0].ID != id || l[0].Title != "Alice's draft" {
		t.Errorf("alice has the conversations %+v, want the one her draft made", l)
	}
}

// TestOutboxGuessIsUndone has another client store the text of a message
// the page holds, unsent, in its outbox: after a reload while offline,
// the page takes the other's message for its own (stored messages do not
// carry their client_msg_id), but keeps its own in the outbox, and once
// connected sends it, so that both are stored and shown.
func TestOutboxGuessIsUndone(t *testing.T) {
	model, g, gate, tb := offlineChat(t)
	tb.send("Same")
	tb.waitFor("the pending message", pendingTexts+`.join('|') === 'Same'`)
	g.post(t, "/v1/conversations/x/messages", `{"text":"Same","client_msg_id":"another client"}`, http.StatusAccepted)
	tb.do(chromedp.Reload())
	tb.waitFor("the other's message, taken for the page's", users+`.length === 1 && `+pendings+`.length === 0 && `+outboxKept+` === 1`)

	tb.reconnect(gate)
	for _, reply := range []string{"One.", "Two."} {
		model.say(t, reply)
		model.end(t, 1, 1)
	}
	tb.waitFor("both messages and replies", users+`.length === 2 && `+assistants+`.length === 2 && `+lastReply+`.dataset.state === 'done' && `+
		pendings+`.length === 0 && `+outboxKept+` === 0`)
	var texts []string
	for _, m := range g.messages(t, "x") {
		if m.Role == protocol.RoleUser {
			texts = append(texts, m.Text)
		}
	}
	if len(texts) != 2 || texts[0] != "Same" || texts[1] != "Same" {
		t.Errorf("stored the user messages %q, want both", texts)
	}
	checkStoredOnce(t, g, tb, "x")
}

// TestOutboxGuessRefusedShowsAgain is TestOutboxGuessIsUndone with the
// conversation's queue of turns full when the page sends its message:
// the gateway refuses it, and the page, which took the other's message
// for it, shows it again, with the refusal.
func TestOutboxGuessRefusedShowsAgain(t *testing.T) {
	_, g, gate, tb := offlineChat(t)
	tb.send("Same")
	tb.waitFor("the pending message", pendingTexts+`.join('|') === 'Same'`)
	g.post(t, "/v1/conversations/x/messages", `{"text":"Same","client_msg_id":"another client"}`, http.StatusAccepted)
	// The model holds the first turn; these wait behind it, as many as
	// the gateway queues by default.
	for i := range convo.DefaultMaxQueuedTurns {
		g.post(t, "/v1/conversations/x/messages", fmt.Sprintf(`{"text":"queued %d"}`, i), http.StatusAccepted)
	}
	tb.do(chromedp.Reload())
	tb.waitFor("the other's message, taken for the page's", pendings+`.length === 0 && `+
		users+`[0]?.querySelector('[data-testid=message-text]').textContent === 'Same'`)

	tb.reconnect(gate)
	tb.waitFor("the refusal on the message", pendingTexts+`.join('|') === 'Same' && `+pendings+`[0].dataset.state === 'failed' && `+
		pendings+`[0].querySelector('[data-testid=pending-error]').textContent.startsWith(`+js(protocol.CodeBusy+": ")+`)`)
	if kept := tb.text(`String(` + outboxKept + `)`); kept != "1" {
		t.Errorf("the outbox keeps %s messages, want the refused one", kept)
	}
}

// TestRefusedMessageDiscardedInAnotherTab shows a refused message in two
// tabs and discards it in one: it goes from the other too. "Send again",
// clicked in a tab that has not heard of the discard yet, neither sends
// it nor brings it back to the outbox; the message goes from that tab.
func TestRefusedMessageDiscardedInAnotherTab(t *testing.T) {
	g, first := refusedChat(t)
	second := newTab(t, "second")
	second.open(g.url, "/#/c/x")
	second.waitFor("the refused message", refusedFirst)

	first.click(`[data-testid=pending-discard]`)
	first.waitFor("the message to go", pendings+`.length === 0 && `+outboxKept+` === 0`)
	second.waitFor("the message to go there too", pendings+`.length === 0`)

	// Refused again, in both tabs; then taken out of the storage from
	// the first tab's document, which tells the other tabs but not itself,
	// as a discard it has not heard of yet.
	second.sendComposed(`'x'.repeat(70000)`)
	second.waitFor("the refusal on the message", refusedFirst)
	first.do(chromedp.Reload())
	first.waitConnected()
	first.waitFor("the refused message", refusedFirst)
	var ok bool
	first.eval(`Object.keys(localStorage).filter(k => k.startsWith('gateway.outbox/')).forEach(k => localStorage.removeItem(k)); true`, &ok)
	second.waitFor("the message to go from the other tab", pendings+`.length === 0`)
	first.click(`[data-testid=pending-retry]`)
	first.waitFor("the message to go", pendings+`.length === 0`)
	if kept := first.text(`String(` + outboxKept + `)`); kept != "0" {
		t.Errorf("after Send again in the first tab, the outbox keeps %s messages", kept)
	}
	if msgs := g.messages(t, "x"); len(msgs) != 0 {
		t.Errorf("stored %d messages, want none", len(msgs))
	}
}

// TestRefusedMessageSentAgainInAnotherTab shows a message the gateway
// refused (its queue of turns full) in two tabs and sends it again, once
// there is room, from one: the other shows the stored message once, and
// no longer the copy that says it was not sent.
func TestRefusedMessageSentAgainInAnotherTab(t *testing.T) {
	model, g, _, first := busyChat(t, "Mine")
	refused := pendingTexts + `.join('|') === 'Mine' && ` + pendings + `[0].dataset.state === 'failed'`
	second := newTab(t, "second")
	second.open(g.url, "/#/c/x")
	second.waitFor("the refused message", refused)

	// The first turn ends: one place in the queue.
	model.end(t, 1, 1)
	first.waitFor("the first turn to end", assistants+`[0]?.dataset.state === 'done'`)
	first.click(`[data-testid=pending-retry]`)
	first.waitUserMessage("Mine")
	second.waitUserMessage("Mine")
	second.waitFor("the refused copy to go", pendings+`.length === 0`)
	var shown int
	if second.eval(users+`.filter(e => e.querySelector('[data-testid=message-text]').textContent === 'Mine').length`, &shown); shown != 1 {
		t.Errorf("the second tab shows the message %d times", shown)
	}
}

// holdOutbox makes the tab's next change of its outbox stop between
// reading the entries and writing them back, until releaseOutbox. It
// imports the page's own module, from its versioned path.
func (tb *tab) holdOutbox() {
	tb.t.Helper()
	var ok bool
	tb.eval(`import(document.querySelector('link[rel=modulepreload][href$="/outbox.js"]').href).then(({Outbox}) => {
		Outbox.pause = () => {
			Outbox.pause = null;
			return new Promise((resolve) => { window.releaseOutbox = resolve; });
		};
		return true;
	})`, &ok, chromedp.EvalAwaitPromise)
}

// releaseOutbox lets the change holdOutbox held go on.
func (tb *tab) releaseOutbox() {
	tb.t.Helper()
	var ok bool
	tb.eval(`window.releaseOutbox(); true`, &ok)
}

// TestOutboxChangesInTwoTabsWaitForEachOther shows a refused message in
// two tabs; the first one's "Send again" is held between reading the
// outbox and writing the message back, while the second tab discards it.
// The discard waits for the first tab's change and comes after it: the
// message goes from both tabs and from the storage, and does not come
// back (written back over the discard, it would, refused again, in both).
func TestOutboxChangesInTwoTabsWaitForEachOther(t *testing.T) {
	g, first := refusedChat(t)
	second := newTab(t, "second")
	second.open(g.url, "/#/c/x")
	second.waitFor("the refused message", refusedFirst)

	first.holdOutbox()
	first.click(`[data-testid=pending-retry]`)
	first.waitFor("the send again held inside its change", `typeof window.releaseOutbox === 'function'`)
	second.click(`[data-testid=pending-discard]`)
	// The discard waits for the outbox's lock (or, without one, is done).
	second.waitFor("the discard to wait for the first tab's change", pendings+`.length === 0 && `+
		`(navigator.locks.query().then((s) => { window.outboxWaits = s.pending.length; }), window.outboxWaits > 0 || `+outboxKept+` === 0)`)
	first.releaseOutbox()

	first.waitFor("the message to go", pendings+`.length === 0 && `+outboxKept+` === 0`)
	// The first tab's send was answered (refused, as too long) once it
	// is connected again.
	first.waitConnected()
	second.waitFor("the message to stay gone", pendings+`.length === 0 && `+outboxKept+` === 0`)
	if msgs := g.messages(t, "x"); len(msgs) != 0 {
		t.Errorf("stored %d messages, want none", len(msgs))
	}
}

// pendingFirsts is the first character of each pending message's text,
// in the order shown.
const pendingFirsts = pendingTexts + `.map((s) => s[0]).join('')`

// TestOtherTabsMessageShowsInOrder writes a message in one tab, then one
// in another, both while offline and both too long for the gateway: once
// connected, each tab shows both refused, the first one's above the
// second's, however the refusal reached it (its own send, or the other
// tab's change of the outbox).
func TestOtherTabsMessageShowsInOrder(t *testing.T) {
	_, g, gate, first := offlineChat(t)
	second := openOffline(t, "second", g.url, "/#/c/x", "Outbox")
	first.sendComposed(`'a'.repeat(70000)`)
	first.waitFor("the pending message", pendingFirsts+` === 'a'`)
	// The second one is written after the first, even should the clock
	// say otherwise, once the second tab's storage has the first.
	second.waitFor("the first tab's message in the storage", outboxKept+` === 1`)
	second.sendComposed(`'b'.repeat(70000)`)
	second.waitFor("the pending message", pendingFirsts+` === 'b'`)

	for _, tb := range []*tab{first, second} {
		tb.reconnect(gate)
	}
	both := pendingFirsts + ` === 'ab' && ` + pendings + `.every((e) => e.dataset.state === 'failed')`
	for _, tb := range []*tab{first, second} {
		tb.waitFor("both messages refused, in the order they were written", both)
	}
}
