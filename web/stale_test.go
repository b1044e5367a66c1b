package web_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/chatgateway/gateway/protocol"
)

// TestEntryDeletedElsewhereGoesWhenOpened deletes a conversation from
// another client while the page shows it in its sidebar but has another
// open: the page is not subscribed to it, so nothing tells it. Opening the
// stale entry must say that the conversation does not exist and take it
// off the list, not leave it there to be clicked again.
func TestEntryDeletedElsewhereGoesWhenOpened(t *testing.T) {
	g := startGateway(t, newStepModel(), gatewayConfig{})
	g.post(t, "/v1/conversations", `{"conversation":"keep","title":"Keep"}`, http.StatusCreated)
	g.post(t, "/v1/conversations", `{"conversation":"gone","title":"Gone"}`, http.StatusCreated)
	tb := newTab(t, "tab")
	tb.open(g.url, "/")
	entry := `document.querySelector('li[data-id="gone"]')`
	tb.waitFor("both entries", entry+` !== null && document.querySelector('li[data-id="keep"]') !== null`)
	// Opened from the list, so that no refresh of it is on its way.
	var ok bool
	tb.eval(`location.hash = '#/c/keep'; true`, &ok)
	tb.waitFor("conversation keep", `document.querySelector('[data-testid=title]').textContent === 'Keep' && `+
		`document.querySelector('[data-testid=messages]').dataset.ready === 'true'`)

	g.request(t, http.MethodDelete, "/v1/conversations/gone", "", http.StatusOK)
	// Following the entry's link, as a click in a focused window does: a
	// click that focused the window would refresh the list on the way.
	tb.eval(`document.querySelector('li[data-id="gone"] a').click(); true`, &ok)
	tb.waitFor("the notice that it does not exist", `!document.getElementById('notice').hidden && `+
		`document.getElementById('notice').dataset.code === `+js(protocol.CodeNotFound))
	tb.waitFor("the stale entry to go", entry+` === null`)
	if text := tb.text(`document.querySelector('[data-testid=empty] .empty-title').textContent`); text != "Conversation not found" {
		t.Errorf("the message list says %q", text)
	}
	if tb.text(`document.querySelector('li[data-id="keep"]')?.dataset.id ?? ''`) != "keep" {
		t.Error("the other entry went too")
	}
}

// TestOlderMessagesLoadPerConversation holds the load of conversation
// a's earlier messages at the gateway, switches to conversation b and
// asks for its earlier messages: they must come, whatever a's load does.
func TestOlderMessagesLoadPerConversation(t *testing.T) {
	held := make(chan struct{}, 1)
	release := make(chan struct{})
	hold := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// The opening page of a conversation asks for before=0; an
			// older page for before=<seq>.
			if r.URL.Path == "/v1/conversations/a/messages" && r.URL.Query().Get("before") != "0" {
				select {
				case held <- struct{}{}:
				default:
				}
				<-release
			}
			next.ServeHTTP(w, r)
		})
	}
	// One text chunk a turn: a message and a reply each.
	g := startGateway(t, &floodModel{chunks: 1}, gatewayConfig{wrap: hold})
	// Before the gateway's cleanup, which waits for the held request.
	t.Cleanup(func() { close(release) })
	// 11 turns are 22 messages: more than the page opens with (20).
	const turns = 11
	for _, id := range []string{"a", "b"} {
		g.post(t, "/v1/conversations", `{"conversation":"`+id+`","title":"`+id+`"}`, http.StatusCreated)
		g.sendTurns(t, id, turns)
	}
	tb := newTab(t, "tab")
	ready := `document.querySelector('[data-testid=messages]').dataset.ready === 'true'`
	tb.open(g.url, "/#/c/a")
	tb.waitFor("conversation a", `document.querySelector('[data-testid=title]').textContent === 'a' && `+ready)
	tb.click(`[data-testid=load-older]`)
	select {
	case <-held:
	case <-time.After(stepTimeout):
		t.Fatal("the page did not ask for a's earlier messages")
	}

	var ok bool
	tb.eval(`location.hash = '#/c/b'; true`, &ok)
	tb.waitFor("conversation b", `document.querySelector('[data-testid=title]').textContent === 'b' && `+ready)
	tb.click(`[data-testid=load-older]`)
	tb.waitFor("all of b's messages", users+`.length === 11 && `+
		`document.querySelector('[data-testid=load-older]').parentElement.hidden`)
}

// TestOpeningSaysLoadingUntilTheMessagesCome holds the load of a
// conversation's messages: meanwhile the page says it is loading them,
// not that there are none. An empty conversation says so once it is open.
func TestOpeningSaysLoadingUntilTheMessagesCome(t *testing.T) {
	g, tb, history := openHeld(t, "/v1/conversations/x/messages", "Full", "question", 1)
	placeholder := `document.querySelector('[data-testid=empty] .empty-title')`
	tb.waitFor("the placeholder", placeholder+` !== null`)
	if text := tb.text(placeholder + `.textContent`); text != "Loading…" {
		t.Errorf("while its messages load, the conversation says %q", text)
	}
	history.let()
	tb.waitUserMessage("question 0")

	g.post(t, "/v1/conversations", `{"conversation":"y","title":"Empty"}`, http.StatusCreated)
	var ok bool
	tb.eval(`location.hash = '#/c/y'; true`, &ok)
	tb.waitFor("the empty conversation to say it has no messages", `document.querySelector('[data-testid=messages]').dataset.ready === 'true' && `+
		placeholder+`?.textContent === 'No messages yet'`)
}
