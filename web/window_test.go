package web_test

import (
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/chatgateway/gateway/protocol"
)

// maxRendered is view.js's MAX_RENDERED.
const maxRendered = 100

// TestLongLiveConversationStaysBounded follows a conversation while 80
// turns (160 messages) stream into it: the list never holds more than
// the view's bound, the oldest messages going as new ones come, and
// scrolling up brings every one of them back, in order, once each.
func TestLongLiveConversationStaysBounded(t *testing.T) {
	const turns = 80
	g := startGateway(t, &floodModel{chunks: 1}, gatewayConfig{})
	g.post(t, "/v1/conversations", `{"conversation":"live","title":"Streaming"}`, http.StatusCreated)
	tb := newTab(t, "tab")
	tb.open(g.url, "/#/c/live")
	tb.waitFor("the conversation", `document.querySelector('[data-testid=messages]').dataset.ready === 'true'`)
	var ok bool
	tb.eval(`window.most = 0;
		new MutationObserver(() => { most = Math.max(most, `+shownMessages+`.length); })
			.observe(document.querySelector('[data-testid=messages]'), {childList: true});
		true`, &ok)

	g.sendTurns(t, "live", turns)
	msgs := g.messages(t, "live")
	tb.waitFor("the last reply", lastReplyTxt+` === `+js(msgs[len(msgs)-1].Text)+` && `+lastReply+`.dataset.state === 'done'`)
	var shown struct{ Most, Now int }
	tb.eval(`({Most: most, Now: `+shownMessages+`.length})`, &shown)
	if shown.Most > maxRendered || shown.Now < maxRendered-2 {
		t.Errorf("following %d messages, the list held up to %d, and holds %d now; want at most %d, and about as many now",
			len(msgs), shown.Most, shown.Now, maxRendered)
	}
	scrollToFirst(t, tb)
	checkShowsStored(t, tb, msgs)
}

// shownMessages are the elements of the messages and replies shown.
const shownMessages = `[...document.querySelectorAll('[data-testid=messages] [data-role]')]`

// shownTexts are the texts of the messages and replies shown, in order.
const shownTexts = shownMessages + `.map(e => e.dataset.role === 'user' ? e.querySelector('[data-testid=message-text]').textContent : ` +
	`e.querySelector('[data-testid=reply-text]').markdownSource)`

// scrollToFirst scrolls the list up until it shows the conversation's
// first message.
func scrollToFirst(t *testing.T, tb *tab) {
	t.Helper()
	older := `document.querySelector('[data-testid=load-older]').parentElement.hidden`
	var ok, first bool
	for !first {
		var n int
		tb.eval(shownMessages+`.length`, &n)
		tb.eval(`document.querySelector('[data-testid=messages]').scrollTop = 0; true`, &ok)
		tb.waitFor("older messages", shownMessages+`.length > `+strconv.Itoa(n)+` || `+older)
		tb.eval(older, &first)
	}
}

// checkShowsStored checks that the list shows every one of the stored
// messages msgs, in order, once each, the replies with their stored text.
func checkShowsStored(t *testing.T, tb *tab, msgs []protocol.Message) {
	t.Helper()
	var seqs []int
	tb.eval(shownMessages+`.map(e => +e.dataset.seq)`, &seqs)
	if len(seqs) != len(msgs) || !sort.IntsAreSorted(seqs) {
		t.Fatalf("%d messages shown, seqs in order: %v; want all %d in order", len(seqs), sort.IntsAreSorted(seqs), len(msgs))
	}
	var texts []string
	tb.eval(shownTexts, &texts)
	for i, m := range msgs {
		if texts[i] != m.Text || seqs[i] != int(m.Seq) {
			t.Fatalf("message %d shows %q as seq %d, stored %q as seq %d", i, texts[i], seqs[i], m.Text, m.Seq)
		}
	}
}

// TestBoundedListKeepsRepliesWhole follows a conversation in which every
// message is sent while the reply before it streams, past the view's
// bound: each reply shows above the message sent during it, where it
// started, and the list drops the oldest only together with the messages
// sent during them, so that scrolling up shows every reply whole, where
// it was, once.
func TestBoundedListKeepsRepliesWhole(t *testing.T) {
	const turns = maxRendered/2 + 10
	model := newStepModel()
	g := startGateway(t, model, gatewayConfig{})
	g.post(t, "/v1/conversations", `{"conversation":"x","title":"Queued"}`, http.StatusCreated)
	tb := newTab(t, "tab")
	tb.open(g.url, "/#/c/x")
	tb.waitFor("the conversation", `document.querySelector('[data-testid=messages]').dataset.ready === 'true'`)
	send := func(i int) {
		g.post(t, "/v1/conversations/x/messages", `{"text":"Q`+strconv.Itoa(i)+`"}`, http.StatusAccepted)
	}
	var want []string
	send(0)
	for i := range turns {
		model.say(t, "reply ")
		if i+1 < turns {
			send(i + 1)
		}
		model.say(t, strconv.Itoa(i))
		model.end(t, 1, 1)
		want = append(want, "Q"+strconv.Itoa(i), "reply "+strconv.Itoa(i))
	}
	tb.waitFor("the last reply", lastReplyTxt+` === `+js(want[len(want)-1])+` && `+lastReply+`.dataset.state === 'done'`)
	var n int
	if tb.eval(shownMessages+`.length`, &n); n > maxRendered {
		t.Errorf("the list holds %d messages, want at most %d", n, maxRendered)
	}
	scrollToFirst(t, tb)
	var texts []string
	tb.eval(shownTexts, &texts)
	if got, w := strings.Join(texts, "|"), strings.Join(want, "|"); got != w {
		t.Fatalf("the page shows\n%s\nwant\n%s", got, w)
	}
	var bad int
	tb.eval(assistants+`.filter(a => a.dataset.state !== 'done' || a.dataset.mismatch === 'true').length`, &bad)
	if bad != 0 {
		t.Errorf("%d replies show unfinished or corrected", bad)
	}
}
