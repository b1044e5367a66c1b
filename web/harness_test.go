package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/storage"
	"github.com/chromedp/chromedp"
)

// stepTimeout bounds every wait of a browser test: one DOM condition, one
// chunk handed to the model. Generous, because -race and two cores make
// Chromium slow, and only hit when something is broken.
const stepTimeout = 20 * time.Second

// The browser the tests share: one Chromium process, a tab per page.
var shared struct {
	once sync.Once
	ctx  context.Context
	err  error
	stop func()
	// started is ctx once Chromium runs, for forgetOrigin, which must not
	// start it.
	mu      sync.Mutex
	started context.Context
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.stop != nil {
		shared.stop()
	}
	os.Exit(code)
}

func chromiumPath() string {
	if p := os.Getenv("CHROMIUM_PATH"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// browser returns the shared browser's context, starting Chromium on first
// use. Without a Chromium the test is skipped, unless
// GATEWAY_REQUIRE_BROWSER=1 (CI) makes that a failure.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := chromiumPath()
	if path == "" {
		if os.Getenv("GATEWAY_REQUIRE_BROWSER") == "1" {
			t.Fatal("no Chromium found (install chromium or set CHROMIUM_PATH), and GATEWAY_REQUIRE_BROWSER=1")
		}
		t.Skip("no Chromium found: install chromium or set CHROMIUM_PATH")
	}
	shared.once.Do(func() {
		dir, err := os.MkdirTemp("", "gateway-chromium-")
		if err != nil {
			shared.err = err
			return
		}
		opts := append(chromedp.DefaultExecAllocatorOptions[:],
			chromedp.ExecPath(path),
			chromedp.NoSandbox,
			chromedp.DisableGPU,
			chromedp.Flag("disable-quic", true),
			chromedp.Flag("disable-component-update", true),
			// A name for a page of another site that resolves to the
			// gateway, as after DNS rebinding (see crosssite_test.go).
			chromedp.Flag("host-resolver-rules", "MAP "+reboundName+" 127.0.0.1"),
			chromedp.UserDataDir(dir),
			chromedp.WindowSize(1280, 800),
		)
		allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
		ctx, cancel := chromedp.NewContext(allocCtx)
		shared.ctx = ctx
		shared.err = chromedp.Do(ctx) // starts Chromium; its life is ctx's
		if shared.err == nil {
			shared.mu.Lock()
			shared.started = ctx
			shared.mu.Unlock()
		}
		shared.stop = func() {
			cancel()
			cancelAlloc()
			os.RemoveAll(dir)
		}
	})
	if shared.err != nil {
		t.Fatalf("starting Chromium at %s: %v", path, shared.err)
	}
	return shared.ctx
}

// forgetOrigin clears what pages of origin (such as http://127.0.0.1:port)
// keep in the shared browser's local storage: a gateway that gets the port
// of an earlier test's starts with nothing the page kept for that one.
// Before Chromium starts there is nothing to clear: its profile is new.
func forgetOrigin(t *testing.T, origin string) {
	t.Helper()
	shared.mu.Lock()
	ctx := shared.started
	shared.mu.Unlock()
	if ctx == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	params := storage.ClearDataForOriginParams{Origin: origin, StorageTypes: "local_storage"}
	if _, err := chromedp.Call(ctx, storage.ClearDataForOrigin, params); err != nil {
		t.Fatalf("clearing the local storage of %s: %v", origin, err)
	}
}

// tab is one browser tab on the page.
type tab struct {
	t       *testing.T
	name    string
	ctx     context.Context
	dialogs atomic.Int32

	// cspExpected, when set, is in the console message of a CSP
	// violation the test causes on purpose, which does not fail it.
	cspExpected string

	mu      sync.Mutex
	console []chromedp.ConsoleMessage
}

// newTab opens a tab. When the test fails, the tab's screenshot is saved
// under a temporary directory and its path logged; its console is logged
// in any case, and an uncaught exception or a CSP violation fails the test.
func newTab(t *testing.T, name string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser(t))
	tb := &tab{t: t, name: name, ctx: ctx}
	t.Cleanup(cancel)
	err := chromedp.Listen(ctx, func(ev any) {
		if _, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			tb.dialogs.Add(1)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			tb.mu.Lock()
			tb.console = append(tb.console, m)
			tb.mu.Unlock()
		}
	}()
	t.Cleanup(tb.finish)
	return tb
}

func (tb *tab) finish() {
	t := tb.t
	tb.mu.Lock()
	console := tb.console
	tb.mu.Unlock()
	for _, m := range console {
		t.Logf("%s console %s: %s", tb.name, m.Type, m.Text)
		expected := tb.cspExpected != "" && strings.Contains(m.Text, tb.cspExpected)
		if m.Type == chromedp.ConsoleException || strings.Contains(m.Text, "Content Security Policy") && !expected {
			t.Errorf("%s: the page reported %s: %s", tb.name, m.Type, m.Text)
		}
	}
	if !t.Failed() {
		return
	}
	ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
	defer cancel()
	shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Logf("%s: no screenshot: %v", tb.name, err)
		return
	}
	dir, err := os.MkdirTemp("", "gateway-web-failure-")
	if err == nil {
		path := filepath.Join(dir, strings.ReplaceAll(t.Name(), "/", "_")+"-"+tb.name+".png")
		if err = os.WriteFile(path, shot, 0o644); err == nil {
			t.Logf("%s: screenshot of the failure: %s", tb.name, path)
			return
		}
	}
	t.Logf("%s: saving the screenshot: %v", tb.name, err)
}

// close closes the tab, as the user closing it would.
func (tb *tab) close() {
	tb.t.Helper()
	if err := chromedp.Cancel(tb.ctx); err != nil {
		tb.t.Fatalf("%s: closing the tab: %v", tb.name, err)
	}
}

// do runs actions in the tab, bounded by stepTimeout.
func (tb *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.t.Fatalf("%s: %v", tb.name, err)
	}
}

// eval evaluates a JavaScript expression in the tab and decodes its value
// into out.
func (tb *tab) eval(expr string, out any, opts ...chromedp.EvaluateOption) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
	defer cancel()
	raw, err := chromedp.Run(ctx, chromedp.Evaluate[[]byte](expr, opts...))
	if err == nil {
		err = json.Unmarshal(raw, out)
	}
	if err != nil {
		tb.t.Fatalf("%s: evaluating %s: %v", tb.name, expr, err)
	}
}

func (tb *tab) text(expr string) string {
	tb.t.Helper()
	var s string
	tb.eval(expr, &s)
	return s
}

// waitFor polls a JavaScript condition until it is true. It polls on a
// timer, not on animation frames, which a background tab may not get.
func (tb *tab) waitFor(what, cond string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout+time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](cond,
		chromedp.WithPollingInterval(20*time.Millisecond),
		chromedp.WithPollingTimeout(stepTimeout)))
	if err != nil {
		tb.t.Fatalf("%s: waiting for %s (%s): %v", tb.name, what, cond, err)
	}
}

// open loads the page at base+path (path such as "/" or "/#/c/ID") and
// waits until its socket is connected.
func (tb *tab) open(base, path string) {
	tb.t.Helper()
	tb.do(chromedp.Navigate(base + path))
	tb.waitConnected()
}

func (tb *tab) waitConnected() {
	tb.t.Helper()
	tb.waitFor("the connection", `document.querySelector('[data-testid=status]')?.dataset.state === 'connected'`)
}

// send types text into the composer and presses Enter.
func (tb *tab) send(text string) {
	tb.t.Helper()
	tb.do(chromedp.SendKeys(chromedp.CSS(`[data-testid=composer]`), text), pressEnter(0))
}

// pressEnter presses Enter with modifiers (such as kb.ModifierShift)
// the way a keyboard does: the text comes with the keydown, so that a
// handler that prevents the keydown's default also prevents the new line.
// (chromedp's KeyEvent sends the text as a separate char event, which
// types it whatever the keydown handler did.)
func pressEnter(modifiers chromedp.Modifier) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		key := input.DispatchKeyEventParams{Key: "Enter", Code: "Enter", WindowsVirtualKeyCode: 13,
			NativeVirtualKeyCode: 13, Modifiers: int64(modifiers)}
		down, up := key, key
		down.Type, down.Text, down.UnmodifiedText = input.DispatchKeyEventTypeKeyDown, "\r", "\r"
		up.Type = input.DispatchKeyEventTypeKeyUp
		for _, p := range []input.DispatchKeyEventParams{down, up} {
			if _, err := chromedp.Call(ctx, input.DispatchKeyEvent, p); err != nil {
				return err
			}
		}
		return nil
	})
}

// conversation is the id of the conversation the URL opens.
func (tb *tab) conversation() string {
	tb.t.Helper()
	tb.waitFor("a conversation in the URL", `location.hash.startsWith('#/c/')`)
	return tb.text(`decodeURIComponent(location.hash.slice(4))`)
}

// js quotes s as a JavaScript string literal.
func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// Expressions over the message list.
const (
	assistants = `[...document.querySelectorAll('[data-testid=messages] [data-role=assistant]')]`
	users      = `[...document.querySelectorAll('[data-testid=messages] [data-role=user]')]`
	lastReply  = assistants + `.at(-1)`
	// lastReplyTxt is the Markdown source the newest reply shows.
	lastReplyTxt = `(` + lastReply + `?.querySelector('[data-testid=reply-text]').markdownSource ?? null)`
)

// waitReply waits until the newest reply's text is exactly want.
func (tb *tab) waitReply(want string) {
	tb.t.Helper()
	tb.waitFor(fmt.Sprintf("reply text %q", want), lastReplyTxt+` === `+js(want))
}

// waitUserMessage waits until a user message with exactly text is shown.
func (tb *tab) waitUserMessage(text string) {
	tb.t.Helper()
	tb.waitFor(fmt.Sprintf("user message %q", text),
		users+`.some(e => e.querySelector('[data-testid=message-text]').textContent === `+js(text)+`)`)
}

// waitTurnEnd waits until the newest reply ended with stop reason.
func (tb *tab) waitTurnEnd(reason string) {
	tb.t.Helper()
	tb.waitFor("the turn to end as "+reason,
		lastReply+`?.dataset.state === 'done' && `+lastReply+`.dataset.stopReason === `+js(reason))
}

// click clicks the middle of the first element that matches the CSS
// selector sel, with the mouse, once it is visible. It holds no node id
// across steps (as chromedp.Click does between finding and clicking), so
// an element that the page draws again meanwhile is still clicked: the
// new one, where the old one was.
func (tb *tab) click(sel string) {
	tb.t.Helper()
	find := `document.querySelector(` + js(sel) + `)`
	tb.waitFor(sel+" to show", find+`?.checkVisibility({visibilityProperty: true}) === true`)
	var at struct{ X, Y float64 }
	tb.eval(`(() => {
		const e = `+find+`;
		e.scrollIntoView({block: 'nearest'});
		const r = e.getBoundingClientRect();
		return {X: r.x + r.width / 2, Y: r.y + r.height / 2};
	})()`, &at)
	tb.do(chromedp.MouseClickXY(at.X, at.Y))
}
