package web_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/coder/websocket"

	"github.com/chatgateway/gateway/internal/demo"
)

// TestCSPRefusesOtherOrigins checks, in Chromium, that the page's CSP
// keeps script on the page from opening a WebSocket to another origin, a
// server on another port of the same host that accepts any upgrade: the
// browser refuses it with a connect-src violation, and the server sees
// no upgrade. The page's own socket, to its own origin, is connected.
func TestCSPRefusesOtherOrigins(t *testing.T) {
	t.Parallel()
	g := startGateway(t, demo.New(demo.Options{WordDelay: -1}), gatewayConfig{})
	var upgrades atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upgrades.Add(1)
		ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
		if err == nil {
			_ = ws.Close(websocket.StatusNormalClosure, "")
		}
	}))
	t.Cleanup(other.Close)
	target := strings.Replace(other.URL, "http", "ws", 1) + "/exfiltrate"

	tb := newTab(t, "csp")
	tb.cspExpected = target
	tb.open(g.url, "/")
	// Whichever comes first: the violation, or the socket open.
	got := tb.evalAsync(`new Promise(resolve => {
		document.addEventListener('securitypolicyviolation',
			(e) => resolve(e.effectiveDirective + ' ' + e.blockedURI));
		try {
			new WebSocket(` + js(target) + `).onopen = () => resolve('open');
		} catch (e) {
			resolve('threw ' + e.name);
		}
	})`)
	if origin := strings.TrimSuffix(target, "/exfiltrate"); !strings.HasPrefix(got, "connect-src "+origin) {
		t.Errorf("a WebSocket to another origin: %s; want a connect-src violation for %s", got, origin)
	}
	if n := upgrades.Load(); n != 0 {
		t.Errorf("the other origin got %d upgrade requests, want none", n)
	}
}
