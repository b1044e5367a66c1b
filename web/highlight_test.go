package web_test

import (
	"context"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/chatgateway/gateway/protocol"
)

// noCache makes the tab fetch every file from the gateway, so that a test
// can hold one.
func (tb *tab) noCache() {
	tb.t.Helper()
	tb.do(chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		_, err := chromedp.Call(ctx, network.SetCacheDisabled, network.SetCacheDisabledParams{CacheDisabled: true})
		return err
	}))
}

// TestHighlighterLeavesTheStreamingReplyInPlace holds highlight.js at the
// gateway while a reply streams a code block, selects the text before
// it, and lets highlight.js in: the code is coloured where it is, and the
// rest of the reply stays as it was (the same elements, the selection
// held), not drawn again.
func TestHighlighterLeavesTheStreamingReplyInPlace(t *testing.T) {
	highlighter := newHold("/highlight.min.js")
	model := newStepModel()
	g := startGateway(t, model, gatewayConfig{wrap: highlighter.wrap})
	t.Cleanup(highlighter.let)
	tb := newTab(t, "tab")
	tb.noCache()
	tb.open(g.url, "/")
	tb.send("Show me code")
	id := tb.conversation()

	// The intro and the code block are settled: the text after them
	// cannot join them.
	const first = "Here is the code:\n\n```go\nfunc main() {}\n```\n\nIt does"
	model.say(t, first+"\n")
	highlighter.wait(t, "highlight.js")
	reply := lastReply + `.querySelector('[data-testid=reply-text]')`
	tb.waitFor("the code, uncoloured", reply+`?.querySelector('pre code') != null && `+reply+`.querySelector('p') != null`)
	var ok bool
	tb.eval(`(() => {
		const r = `+reply+`;
		window.kept = {intro: r.querySelector('p'), pre: r.querySelector('pre'), code: r.querySelector('pre code')};
		getSelection().selectAllChildren(kept.intro);
		return kept.code.querySelector('.hljs-keyword') === null;
	})()`, &ok)
	if !ok {
		t.Fatal("the code is coloured before highlight.js is in")
	}

	highlighter.let()
	tb.waitFor("the code coloured", reply+`.querySelector('pre code .hljs-keyword') !== null`)
	var got struct {
		Intro, Pre, Code bool
		Selected, Text   string
	}
	tb.eval(`(() => {
		const r = `+reply+`;
		return {Intro: r.querySelector('p') === kept.intro, Pre: r.querySelector('pre') === kept.pre,
			Code: r.querySelector('pre code') === kept.code, Selected: getSelection().toString(),
			Text: kept.code.textContent};
	})()`, &got)
	if !got.Intro || !got.Pre || !got.Code {
		t.Errorf("the reply was drawn again when highlight.js came in: intro kept %v, code block kept %v, code element kept %v", got.Intro, got.Pre, got.Code)
	}
	if got.Selected != "Here is the code:" {
		t.Errorf("the selection is %q, want the intro still selected", got.Selected)
	}
	if got.Text != "func main() {}" {
		t.Errorf("the coloured code reads %q", got.Text)
	}

	model.say(t, " nothing.")
	model.end(t, 1, 1)
	tb.waitTurnEnd(protocol.StopEndTurn)
	tb.waitReply(first + "\n nothing.")
	checkStoredOnce(t, g, tb, id)
}
