package web_test

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/chatgateway/gateway/protocol"
)

// maxRendered is view.js's MAX_RENDERED.
const maxRendered = 100

// TestLongLiveConversationStaysBounded follows a conversation while 80
// turns (160 messages) stream into it: the list never holds more than
// the view's bound, neither then, the oldest messages going as new ones
// come, nor as the reader scrolls up to the first one, sends a message
// there, and scrolls down again to the last, the newest or the oldest
// going for the ones loaded; each shows in its place, once.
func TestLongLiveConversationStaysBounded(t *testing.T) {
	const turns = 80
	g := startGateway(t, &floodModel{chunks: 1}, gatewayConfig{})
	g.post(t, "/v1/conversations", `{"conversation":"live","title":"Streaming"}`, http.StatusCreated)
	tb := newTab(t, "tab")
	tb.open(g.url, "/#/c/live")
	tb.waitFor("the conversation", `document.querySelector('[data-testid=messages]').dataset.ready === 'true'`)
	var ok bool
	var shown struct{ Most, Now int }
	tb.eval(`window.most = 0;
		new MutationObserver(() => { most = Math.max(most, `+shownMessages+`.length); })
			.observe(document.querySelector('[data-testid=messages]'), {childList: true});
		true`, &ok)
	t.Cleanup(func() {
		if tb.eval(`most`, &shown.Most); shown.Most > maxRendered {
			t.Errorf("the list held up to %d messages, want at most %d", shown.Most, maxRendered)
		}
	})

	g.sendTurns(t, "live", turns)
	msgs := g.messages(t, "live")
	tb.waitFor("the last reply", lastReplyTxt+` === `+js(msgs[len(msgs)-1].Text)+` && `+lastReply+`.dataset.state === 'done'`)
	tb.eval(`({Most: most, Now: `+shownMessages+`.length})`, &shown)
	if shown.Most > maxRendered || shown.Now < maxRendered-2 {
		t.Errorf("following %d messages, the list held up to %d, and holds %d now; want at most %d, and about as many now",
			len(msgs), shown.Most, shown.Now, maxRendered)
	}
	// Scrolled up to the first message, the list holds the first ones;
	// another turn comes meanwhile; scrolled down again, it holds the last
	// ones, and follows the next turn as it comes.
	scrollToFirst(t, tb)
	checkShowsStored(t, tb, msgs, true)
	// A message sent from up there shows, pending, until its stored copy
	// does, down there.
	tb.eval(`window.vanished = false;
		new MutationObserver(() => {
			const shown = [...document.querySelectorAll('[data-testid=messages] [data-testid=message-text]')]
				.some(e => e.textContent === 'while away');
			if (!shown) vanished = true;
		}).observe(document.querySelector('[data-testid=messages]'), {childList: true, subtree: true});
		true`, &ok)
	tb.send("while away")
	tb.waitFor("the ack", pendings+`[0]?.dataset.state === 'acked'`)
	scrollToLast(t, tb)
	tb.waitFor("the reply to it", users+`.at(-1).querySelector('[data-testid=message-text]').textContent === 'while away' && `+
		lastReply+`.dataset.state === 'done' && +`+lastReply+`.dataset.seq > +`+users+`.at(-1).dataset.seq && `+pendings+`.length === 0`)
	var vanished bool
	if tb.eval(`vanished`, &vanished); vanished {
		t.Error("the message sent while the list ended before the last seq went from the list before its stored copy showed")
	}
	checkShowsStored(t, tb, g.messages(t, "live"), false)
	g.sendQuestions(t, "live", "back", 1)
	tb.waitUserMessage("back 0")
	msgs = g.messages(t, "live")
	tb.waitFor("the last reply", lastReplyTxt+` === `+js(msgs[len(msgs)-1].Text)+` && `+lastReply+`.dataset.state === 'done'`)
	checkShowsStored(t, tb, msgs, false)
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
	scrollUntilShown(t, tb, "load-older", `[0]`, `0`)
}

// scrollToLast scrolls the list down until it shows the conversation's
// last message, and stays there, to follow what comes.
func scrollToLast(t *testing.T, tb *tab) {
	t.Helper()
	scrollUntilShown(t, tb, "load-newer", `.at(-1)`, `l.scrollHeight`)
	var ok bool
	tb.eval(`(l => { l.scrollTop = l.scrollHeight; return true })(document.querySelector('[data-testid=messages]'))`, &ok)
}

// scrollUntilShown scrolls the list (l) to scrollTop, again each time
// the message at end (an accessor of the messages shown) changes, until
// the button with data-testid loader hides.
func scrollUntilShown(t *testing.T, tb *tab, loader, end, scrollTop string) {
	t.Helper()
	hidden := `document.querySelector('[data-testid=` + loader + `]').parentElement.hidden`
	var ok, done bool
	for !done {
		var seq string
		tb.eval(shownMessages+end+`.dataset.seq`, &seq)
		tb.eval(`(l => { l.scrollTop = `+scrollTop+`; return true })(document.querySelector('[data-testid=messages]'))`, &ok)
		tb.waitFor("more messages", shownMessages+end+`.dataset.seq !== `+js(seq)+` || `+hidden)
		tb.eval(hidden, &done)
	}
}

// checkShowsStored checks that the list shows a run of the stored
// messages msgs, the first ones (first) or the last ones, more than half
// as many as it holds at most, in order, once each, the replies with
// their stored text.
func checkShowsStored(t *testing.T, tb *tab, msgs []protocol.Message, first bool) {
	t.Helper()
	var seqs []int
	tb.eval(shownMessages+`.map(e => +e.dataset.seq)`, &seqs)
	if len(seqs) <= maxRendered/2 || len(seqs) > min(len(msgs), maxRendered) {
		t.Fatalf("%d messages shown of %d, want more than %d and at most %d", len(seqs), len(msgs), maxRendered/2, maxRendered)
	}
	want := msgs[len(msgs)-len(seqs):]
	if first {
		want = msgs[:len(seqs)]
	}
	var texts []string
	tb.eval(shownTexts, &texts)
	for i, m := range want {
		if texts[i] != m.Text || seqs[i] != int(m.Seq) {
			t.Fatalf("message %d shown shows %q as seq %d, want %q as seq %d", i, texts[i], seqs[i], m.Text, m.Seq)
		}
	}
}

// TestBoundedListKeepsRepliesWhole follows a conversation in which every
// message is sent while the reply before it streams, past the view's
// bound: each reply shows above the message sent during it, where it
// started, and the list drops the oldest only together with the messages
// sent during them, so that scrolling up shows the first replies whole,
// where they were, once.
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
	if got, w := strings.Join(texts, "|"), strings.Join(want[:min(len(want), len(texts))], "|"); len(texts) <= maxRendered/2 || got != w {
		t.Fatalf("the page shows\n%s\nwant\n%s", got, w)
	}
	var bad int
	tb.eval(assistants+`.filter(a => a.dataset.state !== 'done' || a.dataset.mismatch === 'true').length`, &bad)
	if bad != 0 {
		t.Errorf("%d replies show unfinished or corrected", bad)
	}
}

// TestReplyBegunInAnOlderChunkShowsOnce has a reply stream a little, then
// stay silent while as many messages as a page of history holds are sent
// (queued behind it): the conversation opens at them, without the reply,
// which shows once the reader loads the earlier messages, where it began.
// What the reply streams then goes on in it there, and it ends whole,
// rather than a second copy of it starting in the newer part of the list.
func TestReplyBegunInAnOlderChunkShowsOnce(t *testing.T) {
	const historyPage = 20 // load.js's HISTORY_PAGE
	model := newStepModel()
	g := startGateway(t, model, gatewayConfig{maxQueuedTurns: historyPage})
	g.post(t, "/v1/conversations", `{"conversation":"x","title":"Quiet reply"}`, http.StatusCreated)
	tb := newTab(t, "tab")
	tb.open(g.url, "/#/c/x")
	g.post(t, "/v1/conversations/x/messages", `{"text":"Q"}`, http.StatusAccepted)
	model.say(t, "begun ")
	// Shown, it is stored: the messages come after it.
	tb.waitReply("begun ")
	for i := range historyPage {
		g.post(t, "/v1/conversations/x/messages", `{"text":"queued `+strconv.Itoa(i)+`"}`, http.StatusAccepted)
	}
	tb.do(chromedp.Reload())
	tb.waitFor("the queued messages, without the reply", `document.querySelector('[data-testid=messages]').dataset.ready === 'true' && `+
		users+`.length === `+strconv.Itoa(historyPage)+` && `+assistants+`.length === 0`)
	tb.click(`[data-testid=load-older]`)
	tb.waitFor("the reply, above the queued messages", shownTexts+`.slice(0, 3).join('|') === 'Q|begun |queued 0'`)

	model.say(t, "and ended")
	model.end(t, 1, 1)
	tb.waitFor("the reply ended", assistants+`.some(a => a.dataset.state === 'done')`)
	// The next turn, queued 0's, may have begun: its reply is empty.
	var texts []string
	tb.eval(shownTexts+`.filter(s => s !== '')`, &texts)
	if len(texts) != historyPage+2 || texts[1] != "begun and ended" {
		t.Errorf("the page shows %q, want the reply once, whole, where it began", texts)
	}
}
