package web_test

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// hold holds the first request to the gateway whose path ends with
// suffix until let is called. A test passes wrap to startGateway and then
// registers let as a cleanup, so that it runs before the gateway's
// cleanup, which waits for the held request.
type hold struct {
	suffix        string
	held, release chan struct{}
	once, freed   sync.Once
}

func newHold(suffix string) *hold {
	return &hold{suffix: suffix, held: make(chan struct{}), release: make(chan struct{})}
}

func (h *hold) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, h.suffix) {
			first := false
			h.once.Do(func() { first = true })
			if first {
				close(h.held)
				<-h.release
			}
		}
		next.ServeHTTP(w, r)
	})
}

// wait waits until the held request has come.
func (h *hold) wait(t *testing.T, what string) {
	t.Helper()
	select {
	case <-h.held:
	case <-time.After(stepTimeout):
		t.Fatalf("the page did not ask for %s", what)
	}
}

// let lets the held request (and any to come) through.
func (h *hold) let() {
	h.freed.Do(func() { close(h.release) })
}

// openHeld starts a gateway that holds the first request whose path
// ends with suffix, with conversation x (title, and turns questions that
// start with prefix), and opens the page at x in a new tab; it returns
// once the page's request is held.
func openHeld(t *testing.T, suffix, title, prefix string, turns int) (*gateway, *tab, *hold) {
	t.Helper()
	h := newHold(suffix)
	g := startGateway(t, &floodModel{chunks: 1}, gatewayConfig{wrap: h.wrap})
	t.Cleanup(h.let)
	g.post(t, "/v1/conversations", `{"conversation":"x","title":`+js(title)+`}`, http.StatusCreated)
	g.sendQuestions(t, "x", prefix, turns)
	tb := newTab(t, "tab")
	tb.do(chromedp.Navigate(g.url + "/#/c/x"))
	h.wait(t, "the request to hold")
	return g, tb, h
}

// TestReplacedWhileOpening deletes the conversation the page is opening,
// while its events are on their way, and creates another under its id:
// the page shows the new one, its own title and messages, not the new
// one's events under the first one's title.
func TestReplacedWhileOpening(t *testing.T) {
	g, tb, events := openHeld(t, "/v1/conversations/x/events", "First", "first", 2)
	g.request(t, http.MethodDelete, "/v1/conversations/x", "", http.StatusOK)
	g.post(t, "/v1/conversations", `{"conversation":"x","title":"Second"}`, http.StatusCreated)
	g.sendQuestions(t, "x", "second", 1)
	events.let()

	tb.waitFor("the second conversation", `document.querySelector('[data-testid=title]').textContent === 'Second' && `+
		`document.querySelector('[data-testid=messages]').dataset.ready === 'true'`)
	var shown []string
	tb.eval(users+`.map(e => e.querySelector('[data-testid=message-text]').textContent)`, &shown)
	if len(shown) != 1 || shown[0] != "second 0" {
		t.Errorf("the page shows the user messages %q, want the second conversation's one", shown)
	}
	var hidden bool
	if tb.eval(`document.querySelector('[data-testid=error]').hidden`, &hidden); !hidden {
		t.Errorf("the page shows the notice %q", tb.text(`document.querySelector('[data-testid=error]').textContent`))
	}
}

// socketGate wraps the gateway's handler so that a test can cut the
// page's WebSocket, and keep it from connecting again, while its HTTP
// requests go on. The page's upgrades are the ones with an Origin (the
// test's own clients send none).
type socketGate struct {
	mu     sync.Mutex
	closed bool
	conns  []net.Conn
}

func (s *socketGate) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/ws" || r.Header.Get("Origin") == "" {
			next.ServeHTTP(w, r)
			return
		}
		s.mu.Lock()
		closed := s.closed
		s.mu.Unlock()
		if closed {
			http.Error(w, "the test closed the socket gate", http.StatusServiceUnavailable)
			return
		}
		next.ServeHTTP(gatedWriter{w, s}, r)
	})
}

// close cuts the WebSockets and refuses new ones.
func (s *socketGate) close() {
	s.refuseNew()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.Close()
	}
	s.conns = nil
}

// refuseNew refuses new WebSockets and leaves the open ones be.
func (s *socketGate) refuseNew() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
}

// open lets the page's WebSockets connect again.
func (s *socketGate) open() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = false
}

// gatedWriter records the connection of a WebSocket upgrade.
type gatedWriter struct {
	http.ResponseWriter
	gate *socketGate
}

func (w gatedWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err == nil {
		w.gate.mu.Lock()
		w.gate.conns = append(w.gate.conns, c)
		w.gate.mu.Unlock()
	}
	return c, rw, err
}

// TestOlderMessagesOfAReplacedConversation deletes the open conversation
// while the page is cut off, so that no deleted frame tells it, and
// creates another under its id: asked for earlier messages, the page
// learns that the conversation it shows is gone, leaves it and says so,
// as when its subscribe finds it gone, instead of showing the other's
// messages above the first one's.
func TestOlderMessagesOfAReplacedConversation(t *testing.T) {
	gate := &socketGate{}
	g := startGateway(t, &floodModel{chunks: 1}, gatewayConfig{wrap: gate.wrap})
	// 11 turns are 22 messages: more than the page opens with (20).
	const turns = 11
	g.post(t, "/v1/conversations", `{"conversation":"x","title":"First"}`, http.StatusCreated)
	g.sendQuestions(t, "x", "first", turns)
	tb := newTab(t, "tab")
	tb.open(g.url, "/#/c/x")
	tb.waitFor("the conversation", `document.querySelector('[data-testid=title]').textContent === 'First' && `+
		`document.querySelector('[data-testid=messages]').dataset.ready === 'true'`)

	gate.close()
	tb.waitFor("the page to notice", `document.querySelector('[data-testid=status]').dataset.state === 'reconnecting'`)
	g.request(t, http.MethodDelete, "/v1/conversations/x", "", http.StatusOK)
	g.post(t, "/v1/conversations", `{"conversation":"x","title":"Second"}`, http.StatusCreated)
	g.sendQuestions(t, "x", "second", turns)
	tb.click(`[data-testid=load-older]`)

	tb.waitFor("the notice or more messages", `!document.querySelector('[data-testid=error]').hidden || `+users+`.length > 10`)
	var shown []string
	tb.eval(users+`.map(e => e.querySelector('[data-testid=message-text]').textContent)`, &shown)
	for _, s := range shown {
		if strings.HasPrefix(s, "second") {
			t.Fatalf("the page shows %q, the other conversation's, among the first one's messages: %q", s, shown)
		}
	}
	if text := tb.text(`document.querySelector('[data-testid=error]').textContent`); !strings.Contains(text, "deleted") {
		t.Errorf("notice %q, want it to say the conversation was deleted", text)
	}
	tb.waitFor("the page to leave the conversation", `location.hash === '' && `+users+`.length === 0`)
}

// TestConversationReplacedUnseenOpens has the page, on conversation y,
// open conversation x, which another client deleted and created again
// under its id (titled anew) meanwhile, while the page, connected or not,
// did not follow x: no deleted frame told it, and its list, not refreshed
// since, has the first x. The page shows the x it loaded, in the header
// and in the list, rather than the first one's title over the new one's
// messages until the list is refreshed; connected, it refreshes the list,
// which has the new x first.
func TestConversationReplacedUnseenOpens(t *testing.T) {
	xTitle := `document.querySelector('[data-testid=conversations] li[data-id=x] .conversation-title')?.textContent`
	listed := `[...document.querySelectorAll('[data-testid=conversations] li')].map(li => li.dataset.id).join()`
	for _, c := range []struct {
		name string
		// state is the page's connection state meanwhile.
		state string
	}{
		{"connected", "connected"},
		{"offline", "reconnecting"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, g, gate, tb := gatedChat(t)
			leaveForY(t, g, tb)
			tb.waitFor("y listed, and the first x after it", listed+` === 'y,x' && `+xTitle+` === 'Outbox'`)
			offline := c.state != "connected"
			if offline {
				gate.close()
				tb.waitFor("the page to see the connection lost", `document.querySelector('[data-testid=status]').dataset.state === 'reconnecting'`)
			}
			g.request(t, http.MethodDelete, "/v1/conversations/x", "", http.StatusOK)
			g.post(t, "/v1/conversations", `{"conversation":"x","title":"Again"}`, http.StatusCreated)
			g.post(t, "/v1/conversations/x/messages", `{"text":"Hello again"}`, http.StatusAccepted)

			var ok bool
			tb.eval(`location.hash = '#/c/x'; true`, &ok)
			tb.waitFor("the new x open", `document.querySelector('[data-testid=messages]').dataset.ready === 'true' && `+
				users+`.map(e => e.querySelector('[data-testid=message-text]').textContent).join('|') === 'Hello again'`)
			var shown struct{ Header, Listed, State string }
			tb.eval(`({Header: document.querySelector('[data-testid=title]').textContent, Listed: `+xTitle+`,
				State: document.querySelector('[data-testid=status]').dataset.state})`, &shown)
			if shown.Header != "Again" || shown.Listed != "Again" || shown.State != c.state {
				t.Errorf("the header says %q and the list %q (the page %s); want the new x's title in both", shown.Header, shown.Listed, shown.State)
			}
			if !offline {
				tb.waitFor("the list refreshed, the new x first", listed+` === 'x,y'`)
			}
		})
	}
}
