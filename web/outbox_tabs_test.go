package web_test

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/chatgateway/gateway/internal/auth"
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

// TestOutboxSurvivesBadStorage starts the page with unreadable outbox
// entries in its storage and sends a message, offline, with the storage
// full: the page drops the unreadable entries, keeps the message for as
// long as it is open, and sends it once it connects.
func TestOutboxSurvivesBadStorage(t *testing.T) {
	gate := &socketGate{}
	model := newStepModel()
	g := startGateway(t, model, gatewayConfig{wrap: gate.wrap})
	g.post(t, "/v1/conversations", `{"conversation":"x","title":"Outbox"}`, http.StatusCreated)
	tb := newTab(t, "tab")
	tb.open(g.url, "/#/c/x")
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

	// Fill the storage until it takes no more.
	tb.eval(`(() => { try { for (let i = 0; ; i++) localStorage.setItem('filler' + i, 'x'.repeat(1 << 20)); }
		catch { return true; } })()`, &ok)
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
