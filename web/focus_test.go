package web_test

import (
	"net/http"
	"testing"
)

// focused is the data-testid of the element that has the keyboard.
const focused = `(document.activeElement?.dataset.testid ?? '')`

// TestFocusMovesOnlyWhenTheUserOpens opens a conversation from the
// sidebar: the composer takes the keyboard, for the message to type.
// Then, while the user types in the new chat form, another client deletes
// the open conversation: the page leaves it, but the keyboard stays where
// the user is typing.
func TestFocusMovesOnlyWhenTheUserOpens(t *testing.T) {
	g := startGateway(t, newStepModel(), gatewayConfig{})
	g.post(t, "/v1/conversations", `{"conversation":"x","title":"Soon gone"}`, http.StatusCreated)
	tb := newTab(t, "tab")
	tb.open(g.url, "/")
	tb.click(`[data-testid=conversation][href="#/c/x"]`)
	tb.waitFor("conversation x open", `document.querySelector('[data-testid=title]').textContent === 'Soon gone'`)
	if got := tb.text(focused); got != "composer" {
		t.Errorf("opened from the sidebar, the keyboard is on %q, want the composer", got)
	}

	tb.click(`[data-testid=new-conversation]`)
	tb.waitFor("the new chat form's title field to take the keyboard", focused+` === 'new-title'`)
	g.request(t, http.MethodDelete, "/v1/conversations/x", "", http.StatusOK)
	tb.waitFor("the page to leave the deleted conversation", `document.querySelector('[data-testid=title]').textContent === 'New conversation'`)
	if got := tb.text(focused); got != "new-title" {
		t.Errorf("after another client deleted the open conversation, the keyboard is on %q, want it left in the form's title field", got)
	}
}

// TestFocusAfterDeletingFromTheSidebar deletes, from the sidebar, the open
// conversation: the keyboard, which was on its delete button, goes to the
// conversation now in its place in the list, not to the page's body with
// the button. Deleting that one, the last, gives the keyboard to New chat.
func TestFocusAfterDeletingFromTheSidebar(t *testing.T) {
	g := startGateway(t, newStepModel(), gatewayConfig{})
	for _, id := range []string{"older", "newer"} {
		g.post(t, "/v1/conversations", `{"conversation":"`+id+`","title":"`+id+`"}`, http.StatusCreated)
	}
	tb := newTab(t, "tab")
	tb.open(g.url, "/#/c/newer")
	tb.waitFor("both listed, newer open", `document.querySelectorAll('[data-testid=conversation]').length === 2 && `+
		`document.querySelector('[data-testid=title]').textContent === 'newer'`)

	tb.deleteFromSidebar("newer")
	tb.waitFor("the page to leave the deleted conversation", `document.querySelector('[data-testid=title]').textContent === 'New conversation' && `+
		`document.querySelectorAll('[data-testid=conversation]').length === 1`)
	tb.waitFor("the keyboard on the conversation in its place", focused+` === 'conversation' && document.activeElement.getAttribute('href') === '#/c/older'`)

	tb.deleteFromSidebar("older")
	tb.waitFor("the list empty", `document.querySelectorAll('[data-testid=conversation]').length === 0`)
	tb.waitFor("the keyboard on New chat", focused+` === 'new-conversation'`)
}

// TestFocusAfterActingOnARefusedMessage has the gateway refuse a message
// (its queue of turns full): Send again, which draws the message anew as
// sending, and Discard, which removes it, each leave the keyboard in the
// composer, not on the page's body with the button clicked.
func TestFocusAfterActingOnARefusedMessage(t *testing.T) {
	_, _, _, tb := busyChat(t, "Mine")
	tb.click(`[data-testid=pending-retry]`)
	tb.waitFor("the keyboard in the composer, the message refused again", focused+` === 'composer' && `+
		pendings+`.length === 1 && `+pendings+`[0].dataset.state === 'failed'`)
	tb.click(`[data-testid=pending-discard]`)
	tb.waitFor("the keyboard in the composer, the message gone", focused+` === 'composer' && `+pendings+`.length === 0`)
}
