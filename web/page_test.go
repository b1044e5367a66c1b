package web_test

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/chatgateway/gateway/internal/auth"
	"github.com/chatgateway/gateway/internal/demo"
	"github.com/chatgateway/gateway/protocol"
)

func TestThinkingAndActions(t *testing.T) {
	g := startGateway(t, demo.New(demo.Options{WordDelay: -1}), gatewayConfig{provider: "demo"})
	tb := newTab(t, "tab")
	tb.open(g.url, "/")
	tb.waitFor("the demo badge", `!document.querySelector('[data-testid=demo-badge]').hidden`)
	if badge := tb.text(`document.querySelector('[data-testid=demo-badge]').textContent`); badge != "Demo model — no AWS" {
		t.Errorf("demo badge %q", badge)
	}
	tb.waitFor("the default model", `document.querySelector('[data-testid=model]').textContent === `+js(testModelID))

	tb.send(demo.ThinkCommand + " why?")
	id := tb.conversation()
	tb.waitTurnEnd(protocol.StopEndTurn)
	thinking := lastReply + `.querySelector('[data-testid=thinking]')`
	var got struct {
		Open bool   `json:"open"`
		Text string `json:"text"`
	}
	tb.eval(`({open: `+thinking+`.open, text: `+thinking+`.querySelector('[data-testid=thinking-text]').markdownSource})`, &got)
	wantThought := "The user asked to see my reasoning. I am the demo model, so I will echo the message."
	if got.Open || got.Text != wantThought {
		t.Errorf("thinking section open=%v text %q, want closed with %q", got.Open, got.Text, wantThought)
	}
	tb.do(chromedp.Click(chromedp.CSS(`[data-testid=thinking] summary`)))
	tb.waitFor("the thinking section to open", thinking+`.open`)
	checkStoredOnce(t, g, tb, id)

	tb.send(demo.ToolCommand + " what time is it?")
	tb.waitFor("the second reply", assistants+`.length === 2 && `+lastReply+`.dataset.state === 'done'`)
	action := lastReply + `.querySelector('[data-testid=action]')`
	var card struct {
		Name, Input, Output string
	}
	tb.eval(`({Name: `+action+`.querySelector('[data-testid=action-name]').textContent,
		Input: `+action+`.querySelector('[data-testid=action-input]').textContent,
		Output: `+action+`.querySelector('[data-testid=action-output]').textContent})`, &card)
	if card.Name != "clock" || card.Input != "{\n  \"tz\": \"UTC\"\n}" || !strings.HasPrefix(card.Output, "{\n  \"time\": ") {
		t.Errorf("action card %+v, want clock with pretty JSON input and output", card)
	}

	// An external agent's action, outside any turn, stands on its own.
	g.post(t, "/v1/conversations/"+id+"/actions", `{"name":"deploy","input":{"env":"prod"},"output":{"ok":true}}`, http.StatusCreated)
	tb.waitFor("the agent's action card", `[...document.querySelectorAll('[data-testid=messages] > [data-testid=action]')].some(
		c => c.querySelector('[data-testid=action-name]').textContent === 'deploy')`)
}

func TestSidebarCreatesSwitchesAndDeletes(t *testing.T) {
	g := startGateway(t, demo.New(demo.Options{WordDelay: -1}), gatewayConfig{})
	tb := newTab(t, "tab")
	tb.open(g.url, "/")

	tb.do(
		chromedp.Click(chromedp.CSS(`[data-testid=new-conversation]`)),
		chromedp.SendKeys(chromedp.CSS(`[data-testid=new-title]`), "Trip planning"),
		chromedp.SendKeys(chromedp.CSS(`[data-testid=new-system]`), "Answer briefly."),
		chromedp.SendKeys(chromedp.CSS(`[data-testid=new-model]`), "custom.model-v2"),
		chromedp.Click(chromedp.CSS(`[data-testid=create]`)),
	)
	first := tb.conversation()
	tb.waitFor("the title", `document.querySelector('[data-testid=title]').textContent === 'Trip planning'`)
	tb.waitFor("the model", `document.querySelector('[data-testid=model]').textContent === 'custom.model-v2'`)
	tb.send("Where to?")
	tb.waitTurnEnd(protocol.StopEndTurn)
	usage := tb.text(lastReply + `.querySelector('[data-testid=usage]').textContent`)
	if !strings.HasPrefix(usage, "custom.model-v2 · ") {
		t.Errorf("usage line %q: want the conversation's model first", usage)
	}

	tb.do(chromedp.Click(chromedp.CSS(`[data-testid=new-conversation]`)), chromedp.Click(chromedp.CSS(`[data-testid=create]`)))
	tb.waitFor("a second conversation", `location.hash !== `+js("#/c/"+first))
	second := tb.conversation()
	tb.waitFor("two entries", `document.querySelectorAll('[data-testid=conversation]').length === 2`)
	tb.waitFor("the empty conversation", `document.querySelector('[data-testid=empty]') !== null`)

	tb.click(`[data-testid=conversation][href="#/c/` + first + `"]`)
	tb.waitUserMessage("Where to?")
	if tb.conversation() != first {
		t.Fatal("clicking the first entry did not open it")
	}
	// Back and forward open what the URL says.
	tb.do(chromedp.NavigateBack())
	tb.waitFor("the second conversation again", `location.hash === `+js("#/c/"+second)+` && document.querySelector('[data-testid=empty]') !== null`)
	tb.do(chromedp.NavigateForward())
	tb.waitFor("the first conversation again", `location.hash === `+js("#/c/"+first))
	tb.waitUserMessage("Where to?")

	// Delete takes two clicks on the same button. The list is drawn again
	// whenever it refreshes (here on focus, as when the user comes back to
	// the tab); the button stays armed through that.
	del := `li[data-id="` + first + `"] [data-testid=delete]`
	button := `document.querySelector(` + js(del) + `)`
	tb.click(del)
	tb.waitFor("the armed delete button", button+`.dataset.armed === 'true'`)
	// Armed, the button asks in words, all of them shown in the sidebar.
	var armed struct {
		Text          string
		Whole, Inside bool
	}
	tb.eval(`(() => {
		const b = `+button+`, r = b.getBoundingClientRect();
		return {Text: b.textContent, Whole: b.scrollWidth <= b.clientWidth,
			Inside: r.right <= document.getElementById('sidebar').getBoundingClientRect().right};
	})()`, &armed)
	if armed.Text != "Delete?" || !armed.Whole || !armed.Inside {
		t.Errorf("the armed delete button reads %q, shown whole %v, inside the sidebar %v", armed.Text, armed.Whole, armed.Inside)
	}
	var ok bool
	tb.eval(button+`.dataset.drawn = 'before'; dispatchEvent(new Event('focus')); true`, &ok)
	tb.waitFor("the list drawn again", button+`.dataset.drawn === undefined`)
	if armed := tb.text(`String(` + button + `.dataset.armed)`); armed != "true" {
		t.Errorf("after the list was drawn again, the delete button's armed is %q, want true", armed)
	}
	tb.click(del)
	tb.waitFor("the entry to go", `document.querySelectorAll('[data-testid=conversation]').length === 1`)
	tb.waitFor("the URL to leave it", `location.hash === ''`)
	var left string
	tb.eval(`document.querySelector('[data-testid=conversation]').getAttribute('href')`, &left)
	if left != "#/c/"+second {
		t.Errorf("remaining entry %q, want %q", left, "#/c/"+second)
	}
}

// deleteFromSidebar deletes conversation id with the delete button of its
// sidebar entry, which a first click arms.
func (tb *tab) deleteFromSidebar(id string) {
	tb.t.Helper()
	del := `li[data-id=` + js(id) + `] [data-testid=delete]`
	tb.click(del)
	tb.waitFor("the armed delete button", `document.querySelector(`+js(del)+`).dataset.armed === 'true'`)
	tb.click(del)
}

// TestDeleteInAnotherTab deletes the open conversation in one tab: the
// other tab leaves it and drops it from its sidebar.
func TestDeleteInAnotherTab(t *testing.T) {
	g := startGateway(t, demo.New(demo.Options{WordDelay: -1}), gatewayConfig{})
	a := newTab(t, "tab A")
	a.open(g.url, "/")
	a.send("Soon gone")
	a.waitTurnEnd(protocol.StopEndTurn)
	id := a.conversation()
	b := newTab(t, "tab B")
	b.open(g.url, "/#/c/"+id)
	b.waitUserMessage("Soon gone")

	a.deleteFromSidebar(id)
	b.waitFor("tab B to leave the conversation", `location.hash === ''`)
	b.waitFor("tab B's sidebar to drop it", `document.querySelectorAll('[data-testid=conversation]').length === 0`)
}

// TestReplacedWhileAway deletes the open conversation while the page is
// cut off and creates another under its id, with more events than the
// page saw of the first: on reconnecting, the page learns that the
// conversation it showed is gone, leaves it as for a deleted frame, and
// says so, instead of showing the new one's later events under the old
// one's messages.
func TestReplacedWhileAway(t *testing.T) {
	g := startGateway(t, demo.New(demo.Options{WordDelay: -1}), gatewayConfig{})
	p := startProxy(t, g.url)
	tb := newTab(t, "tab")
	tb.open(p.url(), "/")
	tb.send("The first one")
	tb.waitTurnEnd(protocol.StopEndTurn)
	id := tb.conversation()
	seen := g.list(t)[0].LastSeq

	p.setBackend("http://127.0.0.1:1") // nothing listens there: reconnections fail
	p.cut()
	tb.waitFor("the page to notice", `document.querySelector('[data-testid=status]').dataset.state === 'reconnecting'`)
	g.request(t, http.MethodDelete, "/v1/conversations/"+id, "", http.StatusOK)
	g.post(t, "/v1/conversations", `{"conversation":`+js(id)+`,"title":"The second one"}`, http.StatusCreated)
	for range seen + 2 {
		g.post(t, "/v1/conversations/"+id+"/actions", `{"name":"step"}`, http.StatusCreated)
	}
	p.setBackend(g.url)

	tb.waitFor("the page to leave the conversation", `location.hash === ''`)
	tb.waitFor("the notice", `!document.querySelector('[data-testid=error]').hidden`)
	if text := tb.text(`document.querySelector('[data-testid=error]').textContent`); !strings.Contains(text, "deleted") {
		t.Errorf("notice %q, want it to say the conversation was deleted", text)
	}
	if n := tb.text(`String(document.querySelectorAll('[data-testid=messages] [data-role]').length)`); n != "0" {
		t.Errorf("%s messages shown after leaving the conversation", n)
	}
	tb.waitFor("the new conversation in the sidebar", `[...document.querySelectorAll('[data-testid=conversation] .conversation-title')].map(e => e.textContent).join() === 'The second one'`)
}

func TestPhoneWidthCollapsesTheSidebar(t *testing.T) {
	g := startGateway(t, newStepModel(), gatewayConfig{})
	tb := newTab(t, "tab")
	tb.do(chromedp.EmulateViewport(390, 800))
	tb.open(g.url, "/")
	sidebarShown := `document.querySelector('#sidebar').getBoundingClientRect().right > 0`
	tb.waitFor("the sidebar off screen", `!(`+sidebarShown+`)`)
	tb.waitFor("the menu button", `getComputedStyle(document.querySelector('#menu')).display !== 'none'`)
	var composerWidth float64
	tb.eval(`document.querySelector('[data-testid=composer]').getBoundingClientRect().width`, &composerWidth)
	if composerWidth < 200 {
		t.Errorf("composer is %.0f px wide at 390 px, want most of the width", composerWidth)
	}
	tb.do(chromedp.Click(chromedp.CSS(`#menu`)))
	// Clicks need the sidebar where it stops sliding.
	tb.waitFor("the sidebar on screen", `document.querySelector('#sidebar').getBoundingClientRect().left === 0`)
	tb.do(chromedp.Click(chromedp.CSS(`[data-testid=new-conversation]`)), chromedp.Click(chromedp.CSS(`[data-testid=create]`)))
	tb.conversation()
	tb.waitFor("the sidebar to close", `!(`+sidebarShown+`)`)
}

// sidebarOpen is true while the sidebar is open over the page at phone
// width, as the menu button says.
const sidebarOpen = `document.body.classList.contains('sidebar-open') && ` +
	`document.querySelector('#menu').getAttribute('aria-expanded') === 'true'`

// TestPhoneSidebarStaysOpenWhenThePageLeaves opens the sidebar at phone
// width, and another client deletes the open conversation: the page
// leaves it for a new chat by itself, and the sidebar the user opened
// stays open.
func TestPhoneSidebarStaysOpenWhenThePageLeaves(t *testing.T) {
	g := startGateway(t, newStepModel(), gatewayConfig{})
	g.post(t, "/v1/conversations", `{"conversation":"x","title":"Soon gone"}`, http.StatusCreated)
	tb := newTab(t, "tab")
	tb.do(chromedp.EmulateViewport(390, 800))
	tb.open(g.url, "/#/c/x")
	tb.waitFor("conversation x open", `document.querySelector('[data-testid=messages]').dataset.ready === 'true'`)
	tb.click(`#menu`)
	tb.waitFor("the sidebar open", sidebarOpen)

	g.request(t, http.MethodDelete, "/v1/conversations/x", "", http.StatusOK)
	tb.waitFor("the page to leave the deleted conversation", `document.querySelector('[data-testid=title]').textContent === 'New conversation'`)
	if tb.text(`String(`+sidebarOpen+`)`) != "true" {
		t.Error("the page closed the sidebar when it left the deleted conversation by itself")
	}
}

func TestErrorsAreShown(t *testing.T) {
	model := newStepModel()
	g := startGateway(t, model, gatewayConfig{})
	tb := newTab(t, "tab")
	tb.open(g.url, "/#/c/no-such-conversation")
	tb.waitFor("the error notice", `!document.querySelector('[data-testid=error]').hidden`)
	var notice struct{ Code, Text string }
	tb.eval(`({Code: document.querySelector('[data-testid=error]').dataset.code,
		Text: document.querySelector('[data-testid=error]').textContent})`, &notice)
	if notice.Code != protocol.CodeNotFound || !strings.Contains(notice.Text, "does not exist") {
		t.Errorf("notice %+v, want not_found saying the conversation does not exist", notice)
	}

	tb.open(g.url, "/")
	tb.send("Fail, please")
	model.say(t, "Partial ")
	model.fail(t, errors.New("upstream throttled"))
	tb.waitTurnEnd(protocol.StopError)
	note := tb.text(lastReply + `.querySelector('[data-testid=turn-note]').textContent`)
	if note != "Error (model_error): upstream throttled" {
		t.Errorf("turn note %q", note)
	}
	tb.waitReply("Partial ")
}

func TestTokenFromTheFragment(t *testing.T) {
	const token = "s3cret.token"
	user := func(r *http.Request) (auth.Caller, error) {
		if r.URL.Query().Get("token") != token {
			return auth.Caller{}, protocol.Errorf(protocol.CodeUnauthorized, "bad token")
		}
		return auth.Caller{User: "alice"}, nil
	}
	g := startGateway(t, newStepModel(), gatewayConfig{user: user})
	tb := newTab(t, "tab")
	tb.open(g.url, "/#token="+token)
	if hash := tb.text(`location.hash`); hash != "" {
		t.Errorf("the token stayed in the URL: %q", hash)
	}
	// The tab keeps the token across a reload.
	tb.do(chromedp.Reload())
	tb.waitConnected()
}

// TestNewChatEnterTwiceCreatesOne presses Enter twice quickly in the new
// chat form: one conversation is created, not two.
func TestNewChatEnterTwiceCreatesOne(t *testing.T) {
	g := startGateway(t, newStepModel(), gatewayConfig{})
	tb := newTab(t, "tab")
	tb.open(g.url, "/")
	tb.do(chromedp.Click(chromedp.CSS(`[data-testid=new-conversation]`)),
		chromedp.SendKeys(chromedp.CSS(`[data-testid=new-title]`), "Only one"),
		pressEnter(0), pressEnter(0))
	tb.conversation()
	// The page opens the conversation after its list request is answered;
	// the gateway answers one connection's frames in order, so a second
	// create, sent at the second Enter, would be stored by now.
	if n := len(g.list(t)); n != 1 {
		t.Fatalf("%d conversations after pressing Enter twice, want 1", n)
	}
}

// TestSidebarShowsAPageAtATime lists more conversations than one list
// request returns by default: the sidebar asks for 50, and for the next
// 50 as it is scrolled to its end, until it has them all. When it lists
// again (as when the tab gets the focus back), a new conversation, an
// updated one and a deleted one, all from elsewhere, show where they are
// now, and the entries loaded stay loaded.
func TestSidebarShowsAPageAtATime(t *testing.T) {
	g := startGateway(t, newStepModel(), gatewayConfig{})
	const n = 120
	for i := range n {
		g.post(t, "/v1/conversations", fmt.Sprintf(`{"conversation":"c-%03d","title":"Conversation %d"}`, i, i), http.StatusCreated)
	}
	tb := newTab(t, "tab")
	// The oldest is open, not on the first page, and still has its title.
	tb.open(g.url, "/#/c/c-000")
	tb.waitFor("the open conversation's title", `document.querySelector('[data-testid=title]').textContent === 'Conversation 0'`)
	entries := `document.querySelectorAll('[data-testid=conversation]').length`
	titles := `[...document.querySelectorAll('[data-testid=conversation] .conversation-title')].map(e => e.textContent)`
	tb.waitFor("the first page", entries+` === 50`)
	if title := tb.text(titles + `[0]`); title != fmt.Sprintf("Conversation %d", n-1) {
		t.Errorf("first entry %q, want the newest", title)
	}
	scroll := `(() => { const ul = document.querySelector('[data-testid=conversations]'); ul.scrollTop = ul.scrollHeight; return true })()`
	var ok bool
	tb.eval(scroll, &ok)
	tb.waitFor("the second page", entries+` === 100`)
	tb.eval(scroll, &ok)
	tb.waitFor("the rest", entries+` === `+strconv.Itoa(n))
	tb.waitFor("the button to go", `document.querySelector('[data-testid=more-conversations]') === null`)
	var got []string
	tb.eval(titles, &got)
	for i, title := range got {
		if want := fmt.Sprintf("Conversation %d", n-1-i); title != want {
			t.Fatalf("entry %d is %q, want %q", i, title, want)
		}
	}

	g.post(t, "/v1/conversations", `{"conversation":"c-new","title":"New elsewhere"}`, http.StatusCreated)
	g.post(t, "/v1/conversations/c-000/actions", `{"name":"touch"}`, http.StatusCreated)
	g.request(t, http.MethodDelete, "/v1/conversations/c-001", "", http.StatusOK)
	tb.eval(`dispatchEvent(new Event('focus')); true`, &ok)
	tb.waitFor("the list as it is now", titles+`.slice(0, 2).join('|') === 'Conversation 0|New elsewhere'`)
	tb.eval(titles, &got)
	if len(got) != n || slices.Contains(got, "Conversation 1") || got[n-1] != "Conversation 2" {
		t.Errorf("after listing again, %d entries from %q to %q (Conversation 1 listed: %v), want %d to Conversation 2 without Conversation 1",
			len(got), got[0], got[len(got)-1], slices.Contains(got, "Conversation 1"), n)
	}
}

// TestCreateWhoseReplyIsLostCreatesOne breaks the connection just before
// the create's reply reaches the page: the page sends the create again
// on the new connection and goes on with the one conversation it made.
func TestCreateWhoseReplyIsLostCreatesOne(t *testing.T) {
	g := startGateway(t, newStepModel(), gatewayConfig{})
	p := startProxy(t, g.url)
	tb := newTab(t, "tab")
	tb.open(p.url(), "/")
	p.cutWhen(`"type":"created"`)
	tb.send("Only once")
	tb.conversation()
	tb.waitUserMessage("Only once")
	if n := p.cutsMade(); n != 1 {
		t.Fatalf("the proxy cut the create's reply %d times, want 1", n)
	}
	if n := len(g.list(t)); n != 1 {
		t.Errorf("%d conversations, want 1", n)
	}
	if notice := tb.text(`document.querySelector('[data-testid=error]').hidden ? '' : document.querySelector('[data-testid=error]').textContent`); notice != "" {
		t.Errorf("the page shows the notice %q", notice)
	}
}
