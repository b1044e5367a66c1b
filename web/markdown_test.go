package web_test

import (
	"fmt"
	"strings"
	"testing"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/chatgateway/gateway/protocol"
)

// hostileMarkdown is a reply that tries every way model text could run
// script or load something: raw HTML of all kinds, script URLs in Markdown
// links, images (remote and same-origin), and SVG with an event handler.
const hostileMarkdown = "# Plan\n\n" +
	"Some **bold**, `inline code` and a [good link](https://example.com/docs).\n\n" +
	"A [bad link](javascript:alert(1)), a [data link](data:text/html;base64,PHNjcmlwdD5hbGVydCgyKTwvc2NyaXB0Pg==) " +
	"and <a href=\"javascript:alert(3)\">a raw one</a>.\n\n" +
	"| step | done |\n|---|---|\n| pack | yes |\n\n" +
	"```go\nfunc main() { fmt.Println(\"hi\") }\n```\n\n" +
	"![remote](http://127.0.0.1:9/pixel.png) ![local](/favicon.svg)\n\n" +
	"<img src=x onerror=alert(4)>\n\n" +
	"<svg onload=alert(5)><circle r=5></circle></svg>\n\n" +
	"<script>alert(6)</script>\n\n" +
	"<iframe src=\"/\"></iframe><style>body{display:none}</style>\n"

func TestMarkdownIsRenderedAndSanitized(t *testing.T) {
	const userText = "**not bold** <i>nor italic</i>"
	model, g, tb, id := startChat(t, "tab", userText)
	// Streamed in two parts: the code block is open after the first.
	cut := strings.Index(hostileMarkdown, "func main")
	model.say(t, hostileMarkdown[:cut])
	tb.waitFor("the open code block to render", lastReply+`?.querySelector('[data-testid=reply-text] pre code') != null`)
	model.say(t, hostileMarkdown[cut:])
	model.end(t, 5, 50)
	tb.waitTurnEnd(protocol.StopEndTurn)
	tb.waitReply(hostileMarkdown)
	checkStoredOnce(t, g, tb, id)

	reply := lastReply + `.querySelector('[data-testid=reply-text]')`
	// highlight.js loads with the first code block; the block renders
	// again, coloured, once it is in.
	tb.waitFor("the code coloured", reply+`.querySelector('pre code .hljs-keyword') !== null`)
	var got struct {
		Heading, Strong, Code, Table string
		Keyword                      bool
		Links                        [][3]string
		Dangerous                    []string
		Handlers, Styles             int
		Text                         string
		Foreign                      []string
		UserHTML                     int
		UserText                     string
	}
	tb.eval(`(() => {
		const r = `+reply+`;
		const all = [...document.querySelectorAll('[data-testid=messages] *')];
		return {
			Heading: r.querySelector('h1')?.textContent ?? '',
			Strong: r.querySelector('strong')?.textContent ?? '',
			Code: r.querySelector('pre code.hljs.language-go')?.textContent ?? '',
			Keyword: r.querySelector('pre code .hljs-keyword') !== null,
			Table: [...r.querySelectorAll('table th, table td')].map(c => c.textContent).join(','),
			Links: [...r.querySelectorAll('a')].map(a => [a.textContent, a.getAttribute('href') ?? '', a.rel + ' ' + a.target]),
			Dangerous: all.filter(e => e.matches('img, svg, script, iframe, style, object, embed, form')).map(e => e.tagName),
			Handlers: all.filter(e => [...e.attributes].some(a => a.name.startsWith('on'))).length,
			Styles: all.filter(e => e.hasAttribute('style')).length,
			Text: r.textContent,
			Foreign: performance.getEntriesByType('resource').map(e => e.name).filter(n => !n.startsWith(location.origin)),
			UserHTML: `+users+`[0].querySelectorAll('[data-testid=message-text] *').length,
			UserText: `+users+`[0].querySelector('[data-testid=message-text]').textContent,
		};
	})()`, &got)

	if got.Heading != "Plan" || got.Strong != "bold" || got.Table != "step,done,pack,yes" {
		t.Errorf("rendered heading %q, strong %q, table %q: want Markdown rendered", got.Heading, got.Strong, got.Table)
	}
	if got.Code != "func main() { fmt.Println(\"hi\") }" || !got.Keyword {
		t.Errorf("code block %q (keyword coloured: %v), want the Go code highlighted", got.Code, got.Keyword)
	}
	wantLinks := map[string]string{
		"good link":       "https://example.com/docs",
		"bad link":        "",
		"data link":       "",
		"[image: remote]": "http://127.0.0.1:9/pixel.png",
		"[image: local]":  "/favicon.svg",
	}
	for _, l := range got.Links {
		want, ok := wantLinks[l[0]]
		if !ok {
			t.Errorf("unexpected link %q", l)
			continue
		}
		delete(wantLinks, l[0])
		if l[1] != want || (want != "" && l[2] != "noopener noreferrer nofollow _blank") {
			t.Errorf("link %q: href %q, rel+target %q; want href %q opening in a new tab without referrer", l[0], l[1], l[2], want)
		}
	}
	if len(wantLinks) != 0 {
		t.Errorf("links missing: %v", wantLinks)
	}
	if len(got.Dangerous) != 0 || got.Handlers != 0 || got.Styles != 0 {
		t.Errorf("the message list holds elements %v, %d with event handlers, %d with style attributes: want none",
			got.Dangerous, got.Handlers, got.Styles)
	}
	for _, raw := range []string{`<a href="javascript:alert(3)">a raw one</a>`, `<img src=x onerror=alert(4)>`,
		`<svg onload=alert(5)><circle r=5></circle></svg>`, `<script>alert(6)</script>`} {
		if !strings.Contains(got.Text, raw) {
			t.Errorf("raw HTML %q is not shown as text", raw)
		}
	}
	if len(got.Foreign) != 0 {
		t.Errorf("the page loaded from other origins: %v", got.Foreign)
	}
	if got.UserHTML != 0 || got.UserText != userText {
		t.Errorf("user message shows %q with %d elements, want its plain text", got.UserText, got.UserHTML)
	}
	if n := tb.dialogs.Load(); n != 0 {
		t.Errorf("%d JavaScript dialogs opened", n)
	}

	// The copy button puts the code on the clipboard.
	for _, perm := range []string{"clipboard-read", "clipboard-write"} {
		_, err := chromedp.CallBrowser(tb.ctx, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{
			Permission: &cdpbrowser.PermissionDescriptor{Name: perm}, Setting: cdpbrowser.PermissionSettingGranted, Origin: g.url})
		if err != nil {
			t.Fatal(err)
		}
	}
	tb.click(`[data-testid=messages] pre [data-testid=copy]`)
	tb.waitFor("the copy button to confirm", lastReply+`.querySelector('[data-testid=copy]').textContent === 'Copied'`)
	var clip string
	tb.eval(`navigator.clipboard.readText()`, &clip, chromedp.EvalAwaitPromise)
	if clip != "func main() { fmt.Println(\"hi\") }" {
		t.Errorf("clipboard holds %q, want the code block", clip)
	}
}

// TestStreamingRendersOnlyTheLastBlocks streams a reply paragraph by
// paragraph, with a reader's selection in the first: the blocks that
// cannot change any more stay as they are (rendering only what follows
// them keeps the cost of each render bounded by the last blocks, not the
// whole reply), so the selection holds while the reply grows. Hostile
// Markdown streamed after them is sanitized as it comes, not only at the
// end.
func TestStreamingRendersOnlyTheLastBlocks(t *testing.T) {
	model, _, tb, _ := startChat(t, "tab", "Write a lot")
	reply := lastReply + `?.querySelector('[data-testid=reply-text]')`
	model.say(t, "First paragraph.\n\nSecond paragraph.\n\n")
	tb.waitFor("two paragraphs", reply+`?.querySelectorAll('p').length === 2`)
	var ok bool
	tb.eval(`(() => {
		const p = `+reply+`.querySelector('p');
		window.firstP = p;
		const r = document.createRange();
		r.selectNodeContents(p);
		getSelection().removeAllRanges();
		getSelection().addRange(r);
		return getSelection().toString() === 'First paragraph.';
	})()`, &ok)
	if !ok {
		t.Fatal("could not select the first paragraph")
	}
	// The code block is left out: highlight.js, loading with the first
	// one, renders its block again whole once it is in.
	var sent strings.Builder
	for i, part := range strings.SplitAfter(hostileMarkdown, "\n\n") {
		if strings.Contains(part, "```") {
			continue
		}
		sent.WriteString(part)
		model.say(t, part)
		tb.waitFor(fmt.Sprintf("part %d to render", i), lastReplyTxt+`.endsWith(`+js(part)+`)`)
	}
	// Rendered as it streams: the last part's (iframe and style) text,
	// shown as text.
	tb.waitFor("the last part shown", reply+`.textContent.includes('body{display:none}')`)
	var got struct {
		Same      bool
		Selection string
		Dangerous int
	}
	tb.eval(`({
		Same: window.firstP === `+reply+`.querySelector('p') && window.firstP.isConnected,
		Selection: getSelection().toString(),
		Dangerous: `+reply+`.querySelectorAll('script, img, iframe, svg, style, [onerror], [onload], a[href^="javascript:"], a[href^="data:"]').length,
	})`, &got)
	if !got.Same || got.Selection != "First paragraph." {
		t.Errorf("the first paragraph was rendered again as the reply grew (same node: %v, selection now %q)", got.Same, got.Selection)
	}
	if got.Dangerous != 0 {
		t.Errorf("%d dangerous elements in the streaming reply", got.Dangerous)
	}
	model.end(t, 1, 1)
	tb.waitTurnEnd(protocol.StopEndTurn)
	tb.waitReply("First paragraph.\n\nSecond paragraph.\n\n" + sent.String())
}
