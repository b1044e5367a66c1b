package web_test

import (
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
	tb.conversation()
	model.say(t, "Yes.")
	model.end(t, 1, 1)
	tb.waitTurnEnd(protocol.StopEndTurn)
}
