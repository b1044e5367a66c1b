package web_test

import (
	"net/http"
	"testing"

	"github.com/chromedp/chromedp"
)

// busySocket opens the page at base, on a gateway that lets a connection
// follow one conversation at a time, and starts a second socket of the
// page's socket module in it (window.sock): it passes the seqs of the
// events it delivers to window.got, and the codes of the errors it
// reports to window.errors; window.failed counts its upgrades that
// failed. Conversations "a" and "b" exist, "a" with one event.
func busySocket(t *testing.T, g *gateway, base string) *tab {
	t.Helper()
	tb := newTab(t, "tab")
	tb.open(base, "/")
	var ok bool
	tb.eval(`(async () => {
		const { GatewaySocket, wsURL } = await import('/socket.js');
		window.got = [];
		window.errors = [];
		window.failed = 0;
		window.sock = new GatewaySocket({ url: wsURL(''), onEvent: (ev) => got.push(ev.seq),
			onStatus: () => {}, onError: (err) => errors.push(err.code), onGone: () => errors.push('gone'),
			refused: async () => { failed++; return null; } });
		sock.start();
		return true;
	})()`, &ok, chromedp.EvalAwaitPromise)
	tb.waitFor("the test socket to connect", `sock.connected()`)
	tb.eval(`Promise.all(['a', 'b'].map((c) => sock.request({ type: 'create', conversation: c }))).then(() => true)`,
		&ok, chromedp.EvalAwaitPromise)
	g.post(t, "/v1/conversations/a/actions", `{"name":"before"}`, http.StatusCreated)
	return tb
}

// checkNoErrors fails t if the test socket reported an error.
func checkNoErrors(t *testing.T, tb *tab) {
	t.Helper()
	var errs []string
	tb.eval(`errors`, &errs)
	if len(errs) != 0 {
		t.Errorf("the socket reported %v for a subscribe refused for now, which it sends again", errs)
	}
}

// TestSubscribeRefusedForNowIsSentAgain has the page's socket module
// subscribe to "b" and then to "a", which the gateway refuses as busy,
// and then leave "b": the refusal is temporary, so the socket keeps the
// subscription to "a" and sends it again, and a's events, the one stored
// before and the ones after, all come, in order, without an error.
func TestSubscribeRefusedForNowIsSentAgain(t *testing.T) {
	g := startGateway(t, newStepModel(), gatewayConfig{maxSubscriptions: 1})
	tb := busySocket(t, g, g.url)

	// The gateway reads the frames in order: the subscribe to "a" comes
	// while "b" fills the connection's one place, and "b" leaves after.
	var ok bool
	tb.eval(`sock.subscribe('b'); sock.subscribe('a'); sock.unsubscribe('b'); true`, &ok)
	tb.waitFor("a's stored event", `got.join() === '1'`)
	g.post(t, "/v1/conversations/a/actions", `{"name":"after"}`, http.StatusCreated)
	tb.waitFor("a's live event", `got.join() === '1,2'`)
	checkNoErrors(t, tb)
}

// TestSubscribeRefusedForNowResumesAtTheReconnect has the gateway refuse
// the socket's subscribe to "a" as busy and then loses the connection,
// for longer than the socket waits before sending the subscribe again:
// that retry finds no connection. Meanwhile "b" is left and "a" gets an
// event. The subscription to "a" is kept and sent at the reconnect, and
// a's events, before, during and after the outage, all come, in order,
// without an error.
func TestSubscribeRefusedForNowResumesAtTheReconnect(t *testing.T) {
	g := startGateway(t, newStepModel(), gatewayConfig{maxSubscriptions: 1})
	p := startProxy(t, g.url)
	tb := busySocket(t, g, p.url())

	var ok bool
	tb.eval(`sock.subscribe('b'); sock.subscribe('a'); true`, &ok)
	tb.waitFor("the refusal of a's subscribe", `sock.subs.get('a').refusals > 0`)
	p.refuseConns(true)
	p.cut()
	// After n refusals in a row, the retry is due within 500 * 2^(n-1)
	// ms of the last one; the reconnects wait at least 250, 500, 1000 …
	// ms: once n+1 of them failed, the retry has run, offline, and sent
	// nothing.
	tb.waitFor("the retry to have found no connection", `!sock.connected() && failed > sock.subs.get('a').refusals`)
	tb.eval(`sock.unsubscribe('b'); true`, &ok)
	g.post(t, "/v1/conversations/a/actions", `{"name":"during"}`, http.StatusCreated)
	p.refuseConns(false)
	tb.waitFor("the test socket to connect again", `(dispatchEvent(new Event('online')), sock.connected())`)
	tb.waitFor("a's stored events", `got.join() === '1,2'`)
	g.post(t, "/v1/conversations/a/actions", `{"name":"after"}`, http.StatusCreated)
	tb.waitFor("a's live event", `got.join() === '1,2,3'`)
	checkNoErrors(t, tb)
}
