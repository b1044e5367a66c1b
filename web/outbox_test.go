package web_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/chatgateway/gateway/protocol"
)

// Expressions over the messages sent and not yet acknowledged.
const (
	pendings = `[...document.querySelectorAll('[data-testid=messages] [data-testid=pending-message]')]`
	// pendingTexts are their texts, oldest first.
	pendingTexts = pendings + `.map(e => e.querySelector('[data-testid=message-text]').textContent)`
	// outboxKept is how many messages the outbox keeps in the local
	// storage the page's tabs share.
	outboxKept = `Object.keys(localStorage).filter(k => k.startsWith('gateway.outbox/')).length`
)

// gatedChat starts a gateway whose WebSockets for the page the test can
// refuse, and opens its conversation x, titled Outbox, in a tab.
func gatedChat(t *testing.T) (*stepModel, *gateway, *socketGate, *tab) {
	t.Helper()
	gate := &socketGate{}
	model := newStepModel()
	g := startGateway(t, model, gatewayConfig{wrap: gate.wrap})
	g.post(t, "/v1/conversations", `{"conversation":"x","title":"Outbox"}`, http.StatusCreated)
	tb := newTab(t, "tab")
	tb.open(g.url, "/#/c/x")
	tb.waitFor("conversation x open", `document.querySelector('[data-testid=messages]').dataset.ready === 'true'`)
	return model, g, gate, tb
}

// offlineChat is gatedChat with the page's socket cut: the page is
// offline, its HTTP requests still answered (as when the socket cannot get
// through, or the page itself came from the browser's cache).
func offlineChat(t *testing.T) (*stepModel, *gateway, *socketGate, *tab) {
	t.Helper()
	model, g, gate, tb := gatedChat(t)
	gate.close()
	tb.waitFor("the page to see the connection lost", `document.querySelector('[data-testid=status]').dataset.state === 'reconnecting'`)
	return model, g, gate, tb
}

// reconnect lets the page's socket through again and waits until it is
// connected, telling the page it is online (which makes it connect at once
// rather than after its backoff) until it is.
func (tb *tab) reconnect(gate *socketGate) {
	tb.t.Helper()
	gate.open()
	tb.waitFor("the page to connect again", `(dispatchEvent(new Event('online')), `+
		`document.querySelector('[data-testid=status]').dataset.state === 'connected')`)
}

// refreshList has the page refresh its conversation list, as it does
// when its window gets the focus, and waits until the list is drawn anew:
// the page has then checked its outbox against the list, and asked about
// the conversations of refused messages that the list does not have.
func (tb *tab) refreshList() {
	tb.t.Helper()
	first := `document.querySelector('[data-testid=conversations] li')`
	var ok bool
	tb.eval(first+`.dataset.drawn = 'before'; dispatchEvent(new Event('focus')); true`, &ok)
	tb.waitFor("the list drawn anew", first+`?.dataset.drawn === undefined`)
}

// TestMessageSentOfflineSurvivesAReload sends a message while the page is
// offline and reloads the tab before the connection is back: the message
// is still there, pending, and once the page connects it is stored
// exactly once and answered.
func TestMessageSentOfflineSurvivesAReload(t *testing.T) {
	model, g, gate, tb := offlineChat(t)
	tb.send("Sent offline")
	tb.waitFor("the pending message", pendingTexts+`.join('|') === 'Sent offline'`)

	tb.do(chromedp.Reload())
	// The page got the conversation over HTTP; the socket stays refused.
	tb.waitFor("the pending message after the reload", `document.querySelector('[data-testid=title]').textContent === 'Outbox' && `+
		pendingTexts+`.join('|') === 'Sent offline'`)
	if state := tb.text(`document.querySelector('[data-testid=status]').dataset.state`); state == "connected" {
		t.Fatal("the page connected while the test kept it offline")
	}
	tb.reconnect(gate)
	tb.waitUserMessage("Sent offline")
	model.say(t, "Got it.")
	model.end(t, 1, 1)
	tb.waitTurnEnd(protocol.StopEndTurn)
	tb.waitReply("Got it.")
	tb.waitFor("the pending message to go", pendings+`.length === 0 && `+outboxKept+` === 0`)

	msgs := g.messages(t, "x")
	if len(msgs) != 2 || msgs[0].Text != "Sent offline" || msgs[1].Text != "Got it." {
		t.Errorf("stored %+v, want the message sent offline once and its reply", msgs)
	}
	checkStoredOnce(t, g, tb, "x")
	var shown int
	if tb.eval(users+`.length`, &shown); shown != 1 {
		t.Errorf("%d user messages shown, want 1", shown)
	}
}

// TestMessageWhoseAckIsLostIsStoredOnce loses the connection just as the
// gateway acknowledges a message, keeps the page offline and reloads it:
// the message, stored but never acknowledged to the page, shows once (the
// stored copy the page fetched, not that and its pending copy), stays in
// the outbox, and is sent again once the page connects, with its
// client_msg_id, so that the gateway keeps the one copy it has.
func TestMessageWhoseAckIsLostIsStoredOnce(t *testing.T) {
	gate := &socketGate{}
	model := newStepModel()
	g := startGateway(t, model, gatewayConfig{wrap: gate.wrap})
	p := startProxy(t, g.url)
	g.post(t, "/v1/conversations", `{"conversation":"x","title":"Outbox"}`, http.StatusCreated)
	tb := newTab(t, "tab")
	tb.open(p.url(), "/#/c/x")
	tb.waitFor("conversation x open", `document.querySelector('[data-testid=messages]').dataset.ready === 'true'`)

	p.cutWhen(`"type":"ack"`)
	gate.refuseNew()
	tb.send("Only once")
	tb.waitFor("the page to see the connection lost", `document.querySelector('[data-testid=status]').dataset.state === 'reconnecting'`)
	if n := p.cutsMade(); n != 1 {
		t.Fatalf("the proxy cut the ack %d times, want 1", n)
	}
	tb.do(chromedp.Reload())
	// The page, still offline, shows the stored message it fetched, and
	// not the copy in its outbox too; the outbox keeps it until an ack
	// says it is stored.
	tb.waitFor("the stored message after the reload", users+`.length === 1`)
	var after struct{ Pending, Kept int }
	tb.eval(`({Pending: `+pendings+`.length, Kept: `+outboxKept+`})`, &after)
	if after.Pending != 0 || after.Kept != 1 {
		t.Errorf("offline after the reload, the page shows the stored message and %d pending copies, and keeps %d in its outbox; want none shown and 1 kept",
			after.Pending, after.Kept)
	}
	tb.reconnect(gate)
	tb.waitFor("the stored message in its place", users+`.length === 1 && `+pendings+`.length === 0 && `+outboxKept+` === 0`)
	model.say(t, "Once.")
	model.end(t, 1, 1)
	tb.waitTurnEnd(protocol.StopEndTurn)
	if msgs := g.messages(t, "x"); len(msgs) != 2 || msgs[0].Text != "Only once" || msgs[1].Text != "Once." {
		t.Errorf("stored %+v, want the message once and its reply", msgs)
	}
	checkStoredOnce(t, g, tb, "x")
}

// TestNewChatSentOfflineSurvivesAReload sends the first two messages of a
// new chat while the page is offline and reloads the tab: they stay
// pending in the new chat, and once the page connects the conversation is
// made, once, with both messages in the order they were typed.
func TestNewChatSentOfflineSurvivesAReload(t *testing.T) {
	gate := &socketGate{}
	model := newStepModel()
	g := startGateway(t, model, gatewayConfig{wrap: gate.wrap})
	tb := newTab(t, "tab")
	tb.open(g.url, "/")
	gate.close()
	tb.waitFor("the page to see the connection lost", `document.querySelector('[data-testid=status]').dataset.state === 'reconnecting'`)
	tb.send("First offline")
	tb.send("Second offline")
	both := `document.querySelector('[data-testid=title]').textContent === 'New conversation' && ` +
		pendingTexts + `.join('|') === 'First offline|Second offline'`
	tb.waitFor("both messages pending in the new chat", both)
	tb.do(chromedp.Reload())
	tb.waitFor("both messages pending after the reload", both)

	tb.reconnect(gate)
	id := tb.conversation()
	tb.waitFor("both messages stored", users+`.length === 2 && `+pendings+`.length === 0`)
	model.say(t, "One.")
	model.end(t, 1, 1)
	model.say(t, "Two.")
	model.end(t, 1, 1)
	tb.waitFor("both replies", assistants+`.length === 2 && `+lastReply+`.dataset.state === 'done'`)
	var texts []string
	for _, m := range g.messages(t, id) {
		if m.Role == protocol.RoleUser {
			texts = append(texts, m.Text)
		}
	}
	if got := strings.Join(texts, "|"); got != "First offline|Second offline" {
		t.Errorf("stored the user messages %q", got)
	}
	if l := g.list(t); len(l) != 1 || l[0].Title != "First offline" {
		t.Errorf("conversations %+v, want one titled by the first message", l)
	}
	checkStoredOnce(t, g, tb, id)
}

// TestPendingMessageBecomesTheStoredOne sends a message while the page is
// offline: it shows at once, marked as sending and set apart from the
// stored messages, and when the page connects again the stored message
// takes its place; at no moment are both shown.
func TestPendingMessageBecomesTheStoredOne(t *testing.T) {
	model, g, gate, tb := offlineChat(t)
	// Count every moment the list shows the message twice.
	var ok bool
	tb.eval(`window.twice = 0;
		new MutationObserver(() => {
			const shown = [...document.querySelectorAll('[data-testid=messages] [data-testid=message-text]')]
				.filter(e => e.textContent === 'Wait for me');
			if (shown.length > 1) twice++;
		}).observe(document.querySelector('[data-testid=messages]'), {childList: true, subtree: true, characterData: true});
		true`, &ok)
	tb.send("Wait for me")
	tb.waitFor("the pending message", pendingTexts+`.join('|') === 'Wait for me'`)
	var pending struct {
		State, Status, Composer string
		Opacity                 float64
		Users                   int
	}
	tb.eval(`(() => {
		const p = `+pendings+`[0];
		return {State: p.dataset.state, Status: p.querySelector('[data-testid=pending-status]').textContent,
			Composer: document.querySelector('[data-testid=composer]').value,
			Opacity: Number(getComputedStyle(p).opacity), Users: `+users+`.length};
	})()`, &pending)
	if pending.State != "sending" || pending.Status != "Sending…" || pending.Opacity >= 1 || pending.Users != 0 || pending.Composer != "" {
		t.Errorf("offline, the page shows %+v; want the message pending, saying Sending…, faded, "+
			"no stored message, and the composer empty", pending)
	}

	tb.reconnect(gate)
	tb.waitFor("the stored message in its place", users+`.length === 1 && `+pendings+`.length === 0`)
	tb.waitUserMessage("Wait for me")
	model.say(t, "Here.")
	model.end(t, 1, 1)
	tb.waitTurnEnd(protocol.StopEndTurn)
	var twice int
	if tb.eval(`twice`, &twice); twice != 0 {
		t.Errorf("the message showed twice at %d moments", twice)
	}
	if msgs := g.messages(t, "x"); len(msgs) != 2 || msgs[0].Text != "Wait for me" {
		t.Errorf("stored %+v, want the message once and its reply", msgs)
	}
}

// refusedFirst is true once the first pending message shows the
// gateway's too_large refusal.
const refusedFirst = pendings + `[0]?.dataset.state === 'failed' && ` +
	pendings + `[0].querySelector('[data-testid=pending-error]').textContent.startsWith("` + protocol.CodeTooLarge + `: ")`

// refusedChat starts a gateway, opens conversation x in a tab and sends a
// message over the gateway's size limit, waiting for its refusal.
func refusedChat(t *testing.T) (*gateway, *tab) {
	t.Helper()
	_, g, _, tb := gatedChat(t)
	tb.sendComposed(`'x'.repeat(70000)`) // over the gateway's 64 KiB
	tb.waitFor("the refusal on the message", refusedFirst)
	return g, tb
}

// sendComposed puts the value of the JavaScript expression expr in the
// composer and presses Enter: for long text, which typed key by key
// would take minutes.
func (tb *tab) sendComposed(expr string) {
	tb.t.Helper()
	var ok bool
	tb.eval(`(() => { const c = document.querySelector('[data-testid=composer]');
		c.value = `+expr+`; c.focus(); return true })()`, &ok)
	tb.do(pressEnter(0))
}

// TestRefusedMessageShowsWhyAndCanBeDiscarded sends a message over the
// gateway's size limit: the message stays in the list, saying it was not
// sent and why, also after a reload (it is not sent again by itself), until
// it is discarded.
func TestRefusedMessageShowsWhyAndCanBeDiscarded(t *testing.T) {
	g, tb := refusedChat(t)
	if text := tb.text(pendings + `[0].querySelector('[data-testid=pending-status]').textContent`); text != "Not sent" {
		t.Errorf("the refused message says %q", text)
	}

	tb.do(chromedp.Reload())
	tb.waitConnected()
	tb.waitFor("the refused message after the reload", refusedFirst)
	tb.click(`[data-testid=pending-discard]`)
	tb.waitFor("the message to go", pendings+`.length === 0 && `+outboxKept+` === 0`)
	// The list shows nothing else: it says so, rather than stay blank.
	tb.waitFor("the empty conversation's placeholder",
		`document.querySelector('[data-testid=messages] [data-testid=empty] .empty-title')?.textContent === 'No messages yet'`)
	tb.do(chromedp.Reload())
	tb.waitConnected()
	tb.waitFor("conversation x open", `document.querySelector('[data-testid=messages]').dataset.ready === 'true'`)
	var left int
	if tb.eval(pendings+`.length + `+users+`.length`, &left); left != 0 {
		t.Errorf("after discarding it and reloading, the page shows %d messages", left)
	}
	if msgs := g.messages(t, "x"); len(msgs) != 0 {
		t.Errorf("stored %d messages, want none", len(msgs))
	}
}

// TestOutboxIsBounded sends, while offline, one message more than the
// outbox keeps: that one stays in the composer, and the page says why,
// rather than the outbox growing for as long as the gateway is away.
func TestOutboxIsBounded(t *testing.T) {
	_, _, _, tb := offlineChat(t)
	const max = 16 // outbox.js's OUTBOX_MAX
	for i := range max {
		tb.send(fmt.Sprintf("message %d", i))
	}
	tb.waitFor("every message pending", pendings+`.length === `+fmt.Sprint(max))
	tb.send("one too many")
	tb.waitFor("the notice", `!document.querySelector('[data-testid=error]').hidden`)
	var got struct {
		Composer, Notice string
		Kept             int
	}
	tb.eval(`({Composer: document.querySelector('[data-testid=composer]').value,
		Notice: document.querySelector('[data-testid=error]').textContent,
		Kept: `+outboxKept+`})`, &got)
	if got.Composer != "one too many" || got.Kept != max || !strings.Contains(got.Notice, "waiting to be sent") {
		t.Errorf("with a full outbox, the page keeps %d messages, the composer holds %q and the notice says %q", got.Kept, got.Composer, got.Notice)
	}
}

// fullOutbox fills the outbox with messages of conversation x the
// gateway refuses (its queue of turns full), opens conversation y and
// sends one more there, which stays in the composer; the notice says why,
// and links to x. It returns the gateway, the tab, and the expression
// true once x's view shows every one of its messages, refused.
func fullOutbox(t *testing.T) (*gateway, *tab, string) {
	t.Helper()
	const max = 16 // outbox.js's OUTBOX_MAX
	_, g, _, tb := busyChat(t, "message 0")
	for i := 1; i < max; i++ {
		tb.send(fmt.Sprintf("message %d", i))
	}
	allRefused := pendings + `.length === ` + fmt.Sprint(max) + ` && ` + pendings + `.every(p => p.dataset.state === 'failed')`
	tb.waitFor("every message refused", allRefused)
	g.post(t, "/v1/conversations", `{"conversation":"y","title":"Other"}`, http.StatusCreated)
	var ok bool
	tb.eval(`location.hash = '#/c/y'; true`, &ok)
	tb.waitFor("conversation y open, without x's messages", `document.querySelector('[data-testid=messages]').dataset.ready === 'true' && `+
		`document.querySelector('[data-testid=title]').textContent === 'Other' && `+pendings+`.length === 0`)

	tb.send("one too many")
	tb.waitFor("the notice", `!document.querySelector('[data-testid=error]').hidden`)
	if got := tb.text(`[...document.querySelectorAll('[data-testid=error] [data-testid=outbox-place]')].map(a => a.textContent).join('|')`); got != "Outbox (16)" {
		t.Fatalf("the notice links to %q, want the conversation that holds the messages, Outbox (16)", got)
	}
	return g, tb, allRefused
}

// TestFullOutboxSaysWhereItsMessagesWait fills the outbox (fullOutbox):
// the notice links to x, where the messages show; there, it counts them
// below, and one discarded makes room for the one that stayed in the
// composer, and the notice goes.
func TestFullOutboxSaysWhereItsMessagesWait(t *testing.T) {
	const max = 16 // outbox.js's OUTBOX_MAX
	_, tb, allRefused := fullOutbox(t)
	tb.click(`[data-testid=error] [data-testid=outbox-place]`)
	tb.waitFor("x open, with its messages", `document.querySelector('[data-testid=title]').textContent === 'Outbox' && `+allRefused)
	// The notice, still true, counts them here now.
	tb.waitFor("the notice to count the messages below", `!document.querySelector('[data-testid=error]').hidden && `+
		`document.querySelector('[data-testid=error]').textContent.includes('below (16)') && `+
		`document.querySelector('[data-testid=error] [data-testid=outbox-place]') === null`)
	// The newest one's: the view, opened at its end, may still scroll
	// there as the click comes.
	tb.click(`[data-testid=pending-message]:last-of-type [data-testid=pending-discard]`)
	tb.waitFor("one discarded, and the notice gone with the outbox no longer full", outboxKept+` === `+fmt.Sprint(max-1)+
		` && document.querySelector('[data-testid=error]').hidden`)
	var ok bool
	tb.eval(`document.querySelector('[data-testid=composer]').focus(); true`, &ok)
	tb.do(pressEnter(0))
	tb.waitFor("the message that stayed in the composer, in the outbox", pendingTexts+`.at(-1) === 'one too many' && `+
		outboxKept+` === `+fmt.Sprint(max)+` && document.querySelector('[data-testid=composer]').value === ''`)
}

// TestFullOutboxNoticeFollowsOtherTabs fills the outbox (fullOutbox), and
// acts on x's messages in another tab: one sent again (and refused
// again) leaves the outbox full, and the first tab's notice, drawn again,
// leaves the keyboard on its link; one discarded makes room, and the
// notice, no longer true, goes.
func TestFullOutboxNoticeFollowsOtherTabs(t *testing.T) {
	g, first, allRefused := fullOutbox(t)
	link := `document.querySelector('[data-testid=error] [data-testid=outbox-place]')`
	var ok bool
	first.eval(link+`.dataset.drawn = 'before'; `+link+`.focus(); true`, &ok)
	second := newTab(t, "second")
	second.open(g.url, "/#/c/x")
	second.waitFor("x open, with its messages", `document.querySelector('[data-testid=title]').textContent === 'Outbox' && `+allRefused)
	second.click(`[data-testid=pending-message]:last-of-type [data-testid=pending-retry]`)
	first.waitFor("the notice drawn again, the keyboard on its link", link+`?.dataset.drawn === undefined && `+
		`document.activeElement === `+link+` && `+link+`.textContent === 'Outbox (16)'`)
	second.waitFor("the message refused again", allRefused)
	second.click(`[data-testid=pending-message]:last-of-type [data-testid=pending-discard]`)
	first.waitFor("the notice to go with the outbox no longer full", outboxKept+` === 15 && document.querySelector('[data-testid=error]').hidden`)
}

// TestAckedMessageSaysSent has the gateway acknowledge a message whose
// event the view does not get (the conversation, opened again, is still
// loading, held by the test): from the ack on, the pending message says it
// is sent, not "Sending…", and once the conversation is in, the stored
// message takes its place.
func TestAckedMessageSaysSent(t *testing.T) {
	var (
		holding atomic.Bool
		held    = make(chan struct{})
		release sync.Once
	)
	// The page's requests for conversation x wait while holding is set;
	// the test's own (not a browser's) go through.
	hold := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if holding.Load() && strings.HasPrefix(r.URL.Path, "/v1/conversations/x") && strings.Contains(r.UserAgent(), "Chrome") {
				select {
				case <-held:
				case <-r.Context().Done():
					return
				}
			}
			next.ServeHTTP(w, r)
		})
	}
	model := newStepModel()
	g := startGateway(t, model, gatewayConfig{wrap: hold})
	t.Cleanup(func() { release.Do(func() { close(held) }) })
	g.post(t, "/v1/conversations", `{"conversation":"x","title":"Held"}`, http.StatusCreated)
	tb := newTab(t, "tab")
	tb.open(g.url, "/#/c/x")
	tb.waitFor("conversation x open", `document.querySelector('[data-testid=messages]').dataset.ready === 'true'`)

	holding.Store(true)
	var ok bool
	tb.eval(`location.hash = '#/'; true`, &ok)
	tb.waitFor("the new conversation's view", `document.querySelector('[data-testid=title]').textContent === 'New conversation'`)
	tb.eval(`location.hash = '#/c/x'; true`, &ok)
	tb.waitFor("conversation x loading", `document.querySelector('[data-testid=title]').textContent === 'Held' && `+
		`document.querySelector('[data-testid=empty]')?.textContent.startsWith('Loading')`)
	tb.send("Acked early")
	tb.waitFor("the ack", pendings+`[0]?.dataset.state === 'acked'`)
	if status := tb.text(pendings + `[0].querySelector('[data-testid=pending-status]').textContent`); status != "Sent" {
		t.Errorf("acknowledged, the message says %q, want Sent", status)
	}

	holding.Store(false)
	release.Do(func() { close(held) })
	tb.waitFor("the stored message in its place", users+`.length === 1 && `+pendings+`.length === 0 && `+outboxKept+` === 0`)
	tb.waitUserMessage("Acked early")
	model.say(t, "Seen.")
	model.end(t, 1, 1)
	tb.waitTurnEnd(protocol.StopEndTurn)
	checkStoredOnce(t, g, tb, "x")
}

// TestFrameOverTheLimitIsRefused sends a message whose frame is over the
// gateway's frame limit (1 MiB), though within what the outbox keeps: the
// gateway closes the connection on it (1009). The page says the message
// was not sent and why, rather than sending it again on every new
// connection, for ever; the connection that follows serves the next
// message. A create whose system prompt is over the limit is refused
// likewise, and the form can be used again.
func TestFrameOverTheLimitIsRefused(t *testing.T) {
	model, g, _, tb := gatedChat(t)
	// 400,000 characters (under the outbox's 512 Ki), 1.2 MB of UTF-8.
	tb.sendComposed(`'漢'.repeat(400000)`)
	tb.waitFor("the refusal on the message", refusedFirst)
	tb.waitConnected()

	tb.send("A short one")
	tb.waitUserMessage("A short one")
	model.say(t, "Fine.")
	model.end(t, 1, 1)
	tb.waitTurnEnd(protocol.StopEndTurn)
	if msgs := g.messages(t, "x"); len(msgs) != 2 || msgs[0].Text != "A short one" {
		t.Errorf("stored %+v, want the short message and its reply", msgs)
	}

	tb.click(`[data-testid=new-conversation]`)
	var ok bool
	tb.eval(`(() => { const f = document.querySelector('[data-testid=new-form]');
		f.elements.system.value = '漢'.repeat(400000); return true })()`, &ok)
	tb.click(`[data-testid=create]`)
	tb.waitFor("the notice", `document.querySelector('[data-testid=error]').dataset.code === '`+protocol.CodeTooLarge+`'`)
	tb.waitConnected()
	tb.eval(`(() => { const f = document.querySelector('[data-testid=new-form]');
		f.elements.system.value = 'Be brief.'; f.elements.title.value = 'Brief'; return true })()`, &ok)
	tb.click(`[data-testid=create]`)
	tb.waitFor("the new conversation", `document.querySelector('[data-testid=title]').textContent === 'Brief'`)
}

// TestDeletingAConversationDropsItsUnsentMessages deletes, from the
// sidebar, a conversation that is not open and holds a refused message:
// the message goes with it, rather than staying in the outbox for good,
// where no page would show it (the conversation is not listed any more)
// and it would take one of the outbox's places.
func TestDeletingAConversationDropsItsUnsentMessages(t *testing.T) {
	_, tb := refusedChat(t)
	var ok bool
	tb.eval(`location.hash = '#/'; true`, &ok)
	tb.waitFor("the new conversation's view", `document.querySelector('[data-testid=title]').textContent === 'New conversation' && `+
		pendings+`.length === 0`)
	tb.deleteFromSidebar("x")
	tb.waitFor("the entry to go", `document.querySelector('[data-testid=conversation]') === null`)
	tb.waitFor("the refused message to leave the outbox", outboxKept+` === 0`)
}

// TestDeletingTheOpenConversationDropsItsUnsentMessages deletes, from the
// sidebar, the open conversation, which holds a refused message: the
// message goes with it, as the user chose, and does not show in the view
// the page opens instead, as one deleted elsewhere would.
func TestDeletingTheOpenConversationDropsItsUnsentMessages(t *testing.T) {
	_, tb := refusedChat(t)
	tb.deleteFromSidebar("x")
	tb.waitFor("the entry to go", `document.querySelector('[data-testid=conversation]') === null`)
	tb.waitFor("the refused message to leave the outbox", outboxKept+` === 0`)
	var left struct {
		Title   string
		Pending int
		Notice  bool
	}
	tb.eval(`({Title: document.querySelector('[data-testid=title]').textContent, Pending: `+pendings+`.length,
		Notice: !document.querySelector('[data-testid=error]').hidden})`, &left)
	if left.Title != "New conversation" || left.Pending != 0 || left.Notice {
		t.Errorf("after the delete, the page shows %q with %d pending messages (a notice: %v); want the new chat's view, "+
			"none pending, and no notice", left.Title, left.Pending, left.Notice)
	}
}

// TestMessageLongerThanTheOutboxTakes sends, with the outbox empty, one
// message longer than the outbox keeps: it stays in the composer, and the
// notice says it is too long, not that other messages are waiting.
func TestMessageLongerThanTheOutboxTakes(t *testing.T) {
	_, _, _, tb := gatedChat(t)
	tb.sendComposed(`'x'.repeat(600000)`)
	tb.waitFor("the notice", `!document.querySelector('[data-testid=error]').hidden`)
	var got struct {
		Code, Notice   string
		Composer, Kept int
	}
	tb.eval(`({Code: document.querySelector('[data-testid=error]').dataset.code,
		Notice: document.querySelector('[data-testid=error]').textContent,
		Composer: document.querySelector('[data-testid=composer]').value.length,
		Kept: `+outboxKept+`})`, &got)
	if got.Code != protocol.CodeTooLarge || strings.Contains(got.Notice, "waiting") || got.Composer != 600000 || got.Kept != 0 {
		t.Errorf("the notice (%s) says %q; the composer holds %d characters, the outbox %d messages", got.Code, got.Notice, got.Composer, got.Kept)
	}
}

// TestRefusedMessageOfANewChatStaysInIt sends a new chat's first three
// messages while the page is offline; once it connects, the gateway
// creates their conversation, runs the first one's turn, queues the
// second's and refuses the third (busy: it queues one turn). The third,
// written before the conversation was created, but for it, stays in its
// view, refused busy, to send again, also once the page lists the
// conversation: not as one written to an older conversation of that id.
func TestRefusedMessageOfANewChatStaysInIt(t *testing.T) {
	gate := &socketGate{}
	g := startGateway(t, newStepModel(), gatewayConfig{wrap: gate.wrap, maxQueuedTurns: 1})
	tb := newTab(t, "tab")
	tb.open(g.url, "/")
	gate.close()
	tb.waitFor("the page to see the connection lost", `document.querySelector('[data-testid=status]').dataset.state === 'reconnecting'`)
	for _, text := range []string{"One", "Two", "Three"} {
		tb.send(text)
	}
	tb.waitFor("the messages pending in the new chat", pendingTexts+`.join('|') === 'One|Two|Three'`)

	tb.reconnect(gate)
	id := tb.conversation()
	tb.waitFor("the third refused, and the conversation listed", pendingTexts+`.join('|') === 'Three' && `+
		pendings+`[0].dataset.state === 'failed' && `+
		`[...document.querySelectorAll('[data-testid=conversations] li')].some(li => li.dataset.id === `+js(id)+`)`)
	// A refresh of the list after the refusal checks the outbox against
	// it; that change is over once the test gets the outbox's Web Lock.
	tb.refreshList()
	var ok bool
	tb.eval(`navigator.locks.request('gateway.outbox//', () => true)`, &ok, chromedp.EvalAwaitPromise)
	var shown struct{ Error, Retry string }
	tb.eval(`({Error: `+pendings+`[0].querySelector('[data-testid=pending-error]').textContent,
		Retry: `+pendings+`[0].querySelector('[data-testid=pending-retry]').textContent})`, &shown)
	if !strings.HasPrefix(shown.Error, protocol.CodeBusy+": ") || shown.Retry != "Send again" {
		t.Errorf("the refused message says %q and offers %q; want the gateway's busy refusal, and to send it again", shown.Error, shown.Retry)
	}
}
