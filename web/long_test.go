package web_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/chatgateway/gateway/internal/convo"
	"github.com/chatgateway/gateway/protocol"
)

// floodModel answers every turn with chunks alternating between thinking
// and text, which the gateway stores as one event each.
type floodModel struct {
	chunks int
}

func (m *floodModel) Stream(ctx context.Context, _ convo.ModelRequest, emit func(convo.Chunk)) (convo.Result, error) {
	for i := range m.chunks {
		kind := convo.ChunkText
		if i%2 == 1 {
			kind = convo.ChunkThinking
		}
		emit(convo.Chunk{Kind: kind, Text: fmt.Sprintf("w%d ", i)})
	}
	return convo.Result{StopReason: protocol.StopEndTurn, Usage: protocol.Usage{InputTokens: 1, OutputTokens: int64(m.chunks)}}, nil
}

// TestLongConversationOpensFast fills a conversation with 10,000 events
// (100 turns of 100), opens it, and reports how long the page took to
// show it: the latest page of messages, with the rest loading as the
// reader scrolls up.
func TestLongConversationOpensFast(t *testing.T) {
	const turns, perTurn = 100, 100
	model := &floodModel{chunks: perTurn - 3} // + message, turn_start, turn_end
	g := startGateway(t, model, gatewayConfig{})
	const id = "long"
	g.post(t, "/v1/conversations", `{"conversation":"long","title":"A long one"}`, http.StatusCreated)
	g.sendTurns(t, id, turns)
	msgs := g.messages(t, id)
	if len(msgs) != 2*turns {
		t.Fatalf("%d messages stored, want %d", len(msgs), 2*turns)
	}

	// Opening from the page (a fragment change), then by loading the page,
	// GATEWAY_PAGE_RUNS times (default once; docs/PERFORMANCE.md reports
	// the median of 15).
	runs := 1
	if s := os.Getenv("GATEWAY_PAGE_RUNS"); s != "" {
		var err error
		if runs, err = strconv.Atoi(s); err != nil || runs < 1 {
			t.Fatalf("GATEWAY_PAGE_RUNS=%q: want a count", s)
		}
	}
	tb := newTab(t, "tab")
	tb.open(g.url, "/")
	ready := `document.querySelector('[data-testid=messages]').dataset.ready === 'true'`
	var switches, loads []float64
	var ok bool
	for i := range runs {
		if i > 0 {
			tb.eval(`location.hash = ''; true`, &ok)
			tb.waitFor("no conversation open", `document.querySelector('[data-testid=empty]') !== null`)
		}
		tb.eval(`window.t0 = performance.now(); location.hash = '#/c/long'; true`, &ok)
		tb.waitFor("the conversation", ready)
		var switchMS float64
		tb.eval(`performance.getEntriesByName('conversation-ready').at(-1).startTime - t0`, &switchMS)
		tb.do(chromedp.Reload())
		tb.waitFor("the conversation after a reload", ready)
		var loadMS float64
		tb.eval(`performance.getEntriesByName('conversation-ready').at(-1).startTime`, &loadMS)
		switches, loads = append(switches, switchMS), append(loads, loadMS)
	}
	slices.Sort(switches)
	slices.Sort(loads)
	t.Logf("a conversation of %d events, %d runs: shown %.0f ms (median; all: %.0f) after opening it from the page, %.0f ms (median; all: %.0f) after a reload's navigation started",
		turns*perTurn, runs, switches[runs/2], switches, loads[runs/2], loads)
	// A reload takes the modules from the browser's cache, without asking
	// the gateway (transferSize 0).
	var modules struct{ N, Fetched int }
	tb.eval(`(() => {
		const js = performance.getEntriesByType('resource').filter(e => /\.m?js$/.test(new URL(e.name).pathname));
		return {N: js.length, Fetched: js.filter(e => e.transferSize > 0).length};
	})()`, &modules)
	if modules.N < 10 || modules.Fetched != 0 {
		t.Errorf("after a reload, %d of %d modules came from the gateway, want all of them (at least 10) from the cache", modules.Fetched, modules.N)
	}

	// The latest page shows: the last 10 turns, the last reply whole.
	var shown struct {
		Replies, Users int
		Last           string
		Older          bool
	}
	tb.eval(`({Replies: `+assistants+`.length, Users: `+users+`.length, Last: `+lastReplyTxt+`,
		Older: !document.querySelector('[data-testid=load-older]').parentElement.hidden})`, &shown)
	if shown.Replies != 10 || shown.Users != 10 || shown.Last != msgs[len(msgs)-1].Text || !shown.Older {
		t.Fatalf("shown %+v: want the last 10 turns, the last reply %q, and a way to older ones", shown, msgs[len(msgs)-1].Text)
	}

	// Scrolling up shows older pages, in order, until the first message.
	tb.eval(`document.querySelector('[data-testid=messages]').scrollTop = 0; true`, &ok)
	tb.waitFor("older messages", users+`.length === 20`)
	scrollToFirst(t, tb)
	checkShowsStored(t, tb, msgs, true)
}

// sendTurns sends turns messages to conversation id over a WebSocket,
// each once the turn before has ended, so that the log is whole turns one
// after the other: "question 0", "question 1" and so on.
func (g *gateway) sendTurns(t *testing.T, id string, turns int) {
	t.Helper()
	g.sendQuestions(t, id, "question", turns)
}

// sendQuestions is sendTurns with messages that start with prefix.
func (g *gateway) sendQuestions(t *testing.T, id, prefix string, turns int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*stepTimeout)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(g.url, "http")+"/v1/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	ws.SetReadLimit(-1)
	for i := range turns {
		if err := wsjson.Write(ctx, ws, map[string]string{"type": "send", "conversation": id, "text": fmt.Sprintf("%s %d", prefix, i)}); err != nil {
			t.Fatal(err)
		}
		for {
			var f protocol.ServerFrame
			if err := wsjson.Read(ctx, ws, &f); err != nil {
				t.Fatalf("turn %d: %v", i, err)
			}
			if f.Type == protocol.EventTurnEnd {
				break
			}
		}
	}
}

// TestReplyBeforeTheWindowKeepsItsPlace opens a conversation whose
// latest page of messages starts with one sent while the reply before it
// was streaming: that reply, begun before the page, shows above the
// message, where it showed live, not below it as if it answered it; so
// it does once the earlier messages are in too.
func TestReplyBeforeTheWindowKeepsItsPlace(t *testing.T) {
	model := newStepModel()
	g := startGateway(t, model, gatewayConfig{})
	g.post(t, "/v1/conversations", `{"conversation":"x","title":"Queued"}`, http.StatusCreated)
	send := func(text string) {
		g.post(t, "/v1/conversations/x/messages", `{"text":"`+text+`"}`, http.StatusAccepted)
	}
	send("A")
	model.say(t, "reply ")
	send("B") // waits behind A's turn, streaming
	model.say(t, "A")
	model.end(t, 1, 1)
	model.say(t, "reply B")
	model.end(t, 1, 1)
	want := []string{"A", "reply A", "B", "reply B"}
	// 8 more turns, and a ninth message, whose turn runs on: 21 messages,
	// B the oldest of the 20 the page opens with.
	for i := range 8 {
		q := fmt.Sprintf("C%d", i)
		send(q)
		model.say(t, "reply "+q)
		model.end(t, 1, 1)
		want = append(want, q, "reply "+q)
	}
	send("last")
	model.say(t, "going")
	want = append(want, "last", "going")

	tb := newTab(t, "tab")
	tb.open(g.url, "/#/c/x")
	tb.waitFor("conversation x", `document.querySelector('[data-testid=messages]').dataset.ready === 'true'`)
	shown := `[...document.querySelectorAll('[data-testid=messages] [data-testid=message]')].map(a => a.dataset.role === 'user' ?
		a.querySelector('[data-testid=message-text]').textContent : a.querySelector('[data-testid=reply-text]').markdownSource).join('|')`
	if got, w := tb.text(shown), strings.Join(want[1:], "|"); got != w {
		t.Errorf("opened, the page shows\n%s\nwant\n%s", got, w)
	}
	tb.click(`[data-testid=load-older]`)
	tb.waitFor("every message", users+`.length === 11`)
	if got, w := tb.text(shown), strings.Join(want, "|"); got != w {
		t.Errorf("with the earlier messages, the page shows\n%s\nwant\n%s", got, w)
	}
	model.end(t, 1, 1)
	tb.waitTurnEnd(protocol.StopEndTurn)
}
