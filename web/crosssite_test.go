package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/chatgateway/gateway/internal/demo"
)

// reboundName is a name of another site that Chromium resolves to
// 127.0.0.1 (see browser): a page that rebinds its own DNS name to the
// gateway's address looks to the gateway like this.
const reboundName = "rebound.test"

// evalAsync evaluates a JavaScript expression that yields a promise in
// the tab and returns what it resolves to.
func (tb *tab) evalAsync(expr string) string {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.t.Fatalf("%s: evaluating %s: %v", tb.name, expr, err)
	}
	return s
}

// getJSON decodes the answer to GET path into v, failing the test unless
// it is a 200.
func (g *gateway) getJSON(t *testing.T, path string, v any) {
	t.Helper()
	res, err := http.Get(g.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if err := json.NewDecoder(res.Body).Decode(v); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d, %v", path, res.StatusCode, err)
	}
}

// TestPagesOfOtherSitesCannotWrite checks, in Chromium, that a page served
// from another local port cannot write to a gateway in its default mode
// (-auth none) with the requests a page may send without asking the
// gateway first, nor with a JSON request, nor open a WebSocket.
func TestPagesOfOtherSitesCannotWrite(t *testing.T) {
	t.Parallel()
	g := startGateway(t, demo.New(demo.Options{WordDelay: -1}), gatewayConfig{loopback: true})
	g.post(t, "/v1/conversations", `{"conversation":"mine"}`, 201)
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "<!doctype html><title>another site</title>")
	}))
	t.Cleanup(evil.Close)

	tb := newTab(t, "evil")
	tb.do(chromedp.Navigate(evil.URL))
	attempts := map[string]string{
		"no-cors create": `fetch(GW + '/v1/conversations', {method: 'POST', mode: 'no-cors', body: '{"conversation":"pwned1"}'})`,
		"no-cors send as text/plain": `fetch(GW + '/v1/conversations/mine/messages', {method: 'POST', mode: 'no-cors',
			headers: {'Content-Type': 'text/plain'}, body: '{"text":"injected"}'})`,
		"no-cors action as a form": `fetch(GW + '/v1/conversations/mine/actions', {method: 'POST', mode: 'no-cors',
			body: new URLSearchParams({name: 'injected'})})`,
		"cors JSON create": `fetch(GW + '/v1/conversations', {method: 'POST', headers: {'Content-Type': 'application/json'},
			body: '{"conversation":"pwned2"}'})`,
		"cors delete": `fetch(GW + '/v1/conversations/mine', {method: 'DELETE'})`,
	}
	for name, expr := range attempts {
		// Every attempt ends one way or another; what counts is what
		// the gateway stored, checked below.
		got := tb.evalAsync(`(async () => { const GW = ` + js(g.url) + `;
			try { const r = await ` + expr + `; return 'answered ' + r.type + ' ' + r.status; }
			catch (e) { return 'failed: ' + e.message; } })()`)
		t.Logf("%s: %s", name, got)
	}
	ws := tb.evalAsync(`new Promise(resolve => {
		const ws = new WebSocket(` + js(strings.Replace(g.url, "http", "ws", 1)+"/v1/ws") + `);
		ws.onopen = () => { ws.send('{"type":"create","conversation":"pwned3"}'); resolve('open'); };
		ws.onerror = () => resolve('refused');
	})`)
	if ws != "refused" {
		t.Errorf("a WebSocket from another site: %s, want refused", ws)
	}

	var list struct{ Conversations []struct{ ID string } }
	g.getJSON(t, "/v1/conversations", &list)
	if len(list.Conversations) != 1 || list.Conversations[0].ID != "mine" {
		t.Errorf("conversations after the attempts: %+v, want only mine", list.Conversations)
	}
	var events []struct{ Type string }
	g.getJSON(t, "/v1/conversations/mine/events", &events)
	if len(events) != 0 {
		t.Errorf("events stored in mine by another site: %+v", events)
	}
}

// TestReboundNameIsRefused checks, in Chromium, that script running on a
// page whose name resolves to the gateway (DNS rebinding, so same-origin
// with the gateway's port) can neither read nor write nor connect.
func TestReboundNameIsRefused(t *testing.T) {
	t.Parallel()
	g := startGateway(t, demo.New(demo.Options{WordDelay: -1}), gatewayConfig{loopback: true})
	g.post(t, "/v1/conversations", `{"conversation":"secret","title":"private"}`, 201)
	port := g.url[strings.LastIndex(g.url, ":")+1:]
	rebound := fmt.Sprintf("http://%s:%s", reboundName, port)

	tb := newTab(t, "rebound")
	tb.do(chromedp.Navigate(rebound + "/"))
	for name, expr := range map[string]string{
		"list":   `fetch('/v1/conversations')`,
		"create": `fetch('/v1/conversations', {method: 'POST', headers: {'Content-Type': 'application/json'}, body: '{}'})`,
		"page":   `fetch('/')`,
	} {
		got := tb.evalAsync(`(async () => { const r = await ` + expr + `;
			return r.status + ' ' + (await r.text()); })()`)
		if !strings.HasPrefix(got, "403 ") || strings.Contains(got, "private") {
			t.Errorf("%s through the rebound name answered %.80q…, want 403", name, got)
		}
	}
	ws := tb.evalAsync(`new Promise(resolve => {
		const ws = new WebSocket('ws://' + location.host + '/v1/ws');
		ws.onopen = () => resolve('open');
		ws.onerror = () => resolve('refused');
	})`)
	if ws != "refused" {
		t.Errorf("a WebSocket through the rebound name: %s, want refused", ws)
	}
}
