package web_test

import (
	"net/http"
	"testing"

	"github.com/chromedp/chromedp"
)

// TestSubscribeRefusedForNowIsSentAgain has the page's socket module, on
// a gateway that lets a connection follow one conversation at a time,
// subscribe to "b" and then to "a", which the gateway refuses as busy,
// and then leave "b": the refusal is temporary, so the socket keeps the
// subscription to "a" and sends it again, and a's events, the one stored
// before and the ones after, all come, in order, without an error.
func TestSubscribeRefusedForNowIsSentAgain(t *testing.T) {
	g := startGateway(t, newStepModel(), gatewayConfig{maxSubscriptions: 1})
	tb := newTab(t, "tab")
	tb.open(g.url, "/")
	var ok bool
	tb.eval(`(async () => {
		const { GatewaySocket, wsURL } = await import('/socket.js');
		window.got = [];
		window.errors = [];
		window.sock = new GatewaySocket({ url: wsURL(''), onEvent: (ev) => got.push(ev.seq),
			onStatus: () => {}, onError: (err) => errors.push(err.code), onGone: () => errors.push('gone') });
		sock.start();
		return true;
	})()`, &ok, chromedp.EvalAwaitPromise)
	tb.waitFor("the test socket to connect", `sock.connected()`)
	tb.eval(`Promise.all(['a', 'b'].map((c) => sock.request({ type: 'create', conversation: c }))).then(() => true)`,
		&ok, chromedp.EvalAwaitPromise)
	g.post(t, "/v1/conversations/a/actions", `{"name":"before"}`, http.StatusCreated)

	// The gateway reads the frames in order: the subscribe to "a" comes
	// while "b" fills the connection's one place, and "b" leaves after.
	tb.eval(`sock.subscribe('b'); sock.subscribe('a'); sock.unsubscribe('b'); true`, &ok)
	tb.waitFor("a's stored event", `got.join() === '1'`)
	g.post(t, "/v1/conversations/a/actions", `{"name":"after"}`, http.StatusCreated)
	tb.waitFor("a's live event", `got.join() === '1,2'`)
	var errs []string
	tb.eval(`errors`, &errs)
	if len(errs) != 0 {
		t.Errorf("the socket reported %v for a subscribe refused for now, which it sends again", errs)
	}
}
