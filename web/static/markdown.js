// markdown.js turns model text (Markdown) into a sanitized DOM fragment:
// marked parses it, highlight.js colours code blocks, and DOMPurify cleans
// every fragment before it reaches the page. Raw HTML in the Markdown is
// shown as text, never parsed; images become links and load nothing;
// links open in a new tab without a referrer.
//
// highlight.js loads when the first code block in a known language is
// rendered, not with the page: evaluating it takes longer than the rest
// of the page's modules together (~60 ms here), in the way of opening a
// conversation. Until it is in, code shows uncoloured; then the code
// blocks that showed so are coloured where they are, and nothing else of
// the text is drawn again (a selection in it holds, a streaming reply
// does not flicker).

import { Marked } from './vendor/marked/marked.esm.js';
import DOMPurify from './vendor/dompurify/purify.es.mjs';

const ESCAPES = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

function escapeHTML(s) {
  return String(s).replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

// Code longer than this is shown uncoloured: highlighting runs on every
// render of a streaming reply.
const HIGHLIGHT_MAX = 20000;

// hljs is highlight.js once loaded; loadingHljs, its import on the way;
// noHljs says it failed to load (code then stays uncoloured).
let hljs = null;
let loadingHljs = null;
let noHljs = false;
// uncoloured is set by a render that showed code uncoloured, waiting for
// highlight.js; waiting holds the blocks that did, to colour.
let uncoloured = false;
const waiting = new Set();

function loadHighlighter() {
  loadingHljs ??= import('./vendor/highlight/highlight.min.js').then(
    (m) => {
      hljs = m.default;
      for (const block of waiting) colour(block.element);
      waiting.clear();
    },
    () => {
      noHljs = true;
      waiting.clear();
    },
  );
}

const marked = new Marked({
  gfm: true,
  async: false,
  renderer: {
    // Raw HTML, block or inline, is text.
    html({ text, block }) {
      return block ? `<p>${escapeHTML(text)}</p>\n` : escapeHTML(text);
    },
    // An image is a link to it, so that nothing loads by itself.
    image({ href, text }) {
      return `<a href="${escapeHTML(href)}">${escapeHTML(`[image: ${text || href}]`)}</a>`;
    },
    code({ text, lang }) {
      const language = (lang ?? '').trim().split(/\s+/)[0].toLowerCase();
      let body = escapeHTML(text);
      // data-uncoloured marks code to colour once highlight.js is in.
      let mark = '';
      if (language !== '' && text.length <= HIGHLIGHT_MAX) {
        if (hljs === null) {
          uncoloured = true;
          mark = ` data-uncoloured="${escapeHTML(language)}"`;
        } else if (hljs.getLanguage(language) !== undefined) {
          body = highlighted(text, language);
        }
      }
      const cls = language === '' ? 'hljs' : `hljs language-${escapeHTML(language)}`;
      return `<pre><code class="${cls}"${mark}>${body}</code></pre>\n`;
    },
  },
});

const PURIFY = {
  USE_PROFILES: { html: true },
  FORBID_TAGS: ['style', 'img', 'picture', 'source', 'video', 'audio', 'iframe', 'form', 'button', 'textarea', 'select'],
  FORBID_ATTR: ['style', 'srcset', 'src', 'action', 'formaction'],
  RETURN_DOM_FRAGMENT: true,
};

function highlighted(text, language) {
  return hljs.highlight(text, { language, ignoreIllegals: true }).value;
}

// colour colours the code that element shows uncoloured (highlight.js
// being in now), in place: the code element and everything around it
// stay. The colours are highlight.js's markup of the code's text, which
// is sanitized as every render is.
function colour(element) {
  if (!element.isConnected) return;
  for (const code of element.querySelectorAll('code[data-uncoloured]')) {
    const language = code.dataset.uncoloured;
    delete code.dataset.uncoloured;
    if (hljs.getLanguage(language) === undefined) continue;
    const frag = DOMPurify.sanitize(`<pre><code>${highlighted(code.textContent, language)}</code></pre>`, PURIFY);
    code.replaceChildren(...frag.querySelector('code').childNodes);
  }
}

DOMPurify.addHook('afterSanitizeAttributes', (node) => {
  if (node.tagName === 'A' && node.hasAttribute('href')) {
    node.setAttribute('target', '_blank');
    node.setAttribute('rel', 'noopener noreferrer nofollow');
  }
});

// DEEP matches a line that opens more than about a hundred levels of lists
// or block quotes (indentation, list markers and quote marks): marked's
// time grows much faster than such text (a list nested 600 deep, 360 KB,
// takes it ten seconds), and it runs at every render of a streaming
// reply. Real Markdown nests a few levels.
const DEEP = /^[ \t>*+-]{256}/m;

// renderMarkdown returns the sanitized fragment for text, code blocks with
// a copy button.
// Text nested too deep for the parser (see DEEP) is shown as plain text,
// and so is text it fails on: an exception here would stop the events
// after it from rendering.
export function renderMarkdown(text) {
  let html = null;
  if (!DEEP.test(text)) {
    try {
      html = marked.parse(text);
    } catch {
      // shown as text below
    }
  }
  if (html === null) {
    const p = document.createElement('p');
    p.className = 'unrendered';
    p.textContent = text;
    const frag = document.createDocumentFragment();
    frag.append(p);
    return frag;
  }
  const frag = DOMPurify.sanitize(html, PURIFY);
  for (const pre of frag.querySelectorAll('pre')) pre.append(copyButton(pre));
  return frag;
}

function copyButton(pre) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = 'button copy';
  b.dataset.testid = 'copy';
  b.textContent = 'Copy';
  b.addEventListener('click', async () => {
    const code = pre.querySelector('code')?.textContent ?? '';
    b.textContent = (await copyText(code)) ? 'Copied' : 'Copy failed';
    setTimeout(() => {
      b.textContent = 'Copy';
    }, 1500);
  });
  return b;
}

// copyText puts text on the clipboard: with the Clipboard API where the
// page is a secure context, else with a selection and execCommand.
async function copyText(text) {
  try {
    if (navigator.clipboard !== undefined) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    // fall through to the selection
  }
  const area = document.createElement('textarea');
  area.value = text;
  area.className = 'offscreen';
  document.body.append(area);
  area.select();
  const ok = document.execCommand('copy');
  area.remove();
  return ok;
}

// RENDER_MS is how long a streaming block gathers text before it renders
// again: a burst of deltas (a replay) costs one render, not one each.
const RENDER_MS = 40;

// FENCE is a line that opens or closes a fenced code block: three or more
// backticks or tildes, indented at most three spaces.
const FENCE = /^ {0,3}(`{3,}|~{3,})/;
// CONTINUES is a line that, after a blank line, may still belong to the
// block before it: indented (a list item's paragraph, indented code), a
// quote, or a list item (the list before goes on).
const CONTINUES = /^(?:[\s>]|[-+*](?:\s|$)|\d{1,9}[.)](?:\s|$))/;

// settled returns where, in text from the position from (outside any
// fenced code), the last block starts that text appended later cannot
// join with the blocks before it: the start of a whole line, outside
// fenced code, that follows a blank line and neither is indented nor
// continues a list or quote. The blocks before it render the same
// whatever comes after (but for a link reference defined later, which
// the final render of the whole text picks up).
function settled(text, from) {
  let cut = from;
  let fence = '';
  let blank = false;
  for (let i = from; ; ) {
    const nl = text.indexOf('\n', i);
    // The last line may still grow: "1" may become "1. item".
    if (nl === -1) return cut;
    const line = text.slice(i, nl);
    const m = FENCE.exec(line);
    if (fence !== '') {
      if (m !== null && m[1][0] === fence[0] && m[1].length >= fence.length && line.trim() === m[1]) fence = '';
    } else {
      if (blank && line.trim() !== '' && !CONTINUES.test(line)) cut = i;
      if (m !== null) fence = m[1];
    }
    blank = fence === '' && line.trim() === '';
    i = nl + 1;
  }
}

// exposeSource gives element a markdownSource property that returns
// get(), the Markdown it shows, for tests to read: computed when read, so
// that the page holds no copy of the text for them (a data attribute
// would be one per element, and a long reply's text is long).
export function exposeSource(element, get) {
  Object.defineProperty(element, 'markdownSource', { get, configurable: true });
}

// MarkdownBlock is an element that shows Markdown which may grow: append
// adds text and renders soon, flush renders now. Its source is the one
// copy of the text the page keeps (the element's markdownSource reads
// it). While shown() is false (a folded section), rendering waits for the
// flush that follows.
//
// While the text grows, a render parses only the text after the blocks
// that settled (see settled): those are rendered once and stay as they
// are, so a long reply costs in all about its length, not its length
// times its renders, and a selection in its earlier blocks holds. A
// flush renders the whole text again.
export class MarkdownBlock {
  constructor(element, { shown = () => true } = {}) {
    this.element = element;
    this.shown = shown;
    this.source = '';
    // stale says that source has text the element does not show yet.
    this.stale = false;
    this.timer = 0;
    // settledAt is how much of source the element shows for good; tail,
    // the nodes that show the rest, replaced at each render.
    this.settledAt = 0;
    this.tail = [];
    element.classList.add('markdown');
    exposeSource(element, () => this.source);
  }

  append(text) {
    if (!text) return;
    this.source += text;
    this.stale = true;
    if (this.timer === 0) this.timer = setTimeout(() => this.flush(false), RENDER_MS);
  }

  // flush renders now: the whole text, or (while it streams) the text
  // after the settled blocks.
  flush(whole = true) {
    clearTimeout(this.timer);
    this.timer = 0;
    if (this.shown() && this.stale) this.render(whole);
  }

  // render shows source: whole, or only the text after the settled
  // blocks, which stay.
  render(whole) {
    uncoloured = false;
    if (whole) {
      this.element.replaceChildren();
      this.settledAt = 0;
      this.tail = [];
    }
    for (const n of this.tail) n.remove();
    const cut = whole ? 0 : settled(this.source, this.settledAt);
    if (cut > this.settledAt) {
      this.element.append(renderMarkdown(this.source.slice(this.settledAt, cut)));
      this.settledAt = cut;
    }
    const tail = renderMarkdown(this.source.slice(this.settledAt));
    this.tail = [...tail.childNodes];
    this.element.append(tail);
    this.stale = false;
    if (uncoloured && !noHljs) {
      waiting.add(this);
      loadHighlighter();
    }
  }
}
