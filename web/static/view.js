// view.js renders one conversation's events into the message list. User
// text is only ever inserted as text nodes; model text (replies and
// thinking) is Markdown, rendered into sanitized fragments by markdown.js;
// tool calls are cards (tools.js). It trusts its caller (socket.js) to
// pass each seq once, in order.
//
// A long conversation is shown from a window: the view starts at a seq
// (after it, the events come live), and older events are rendered in
// chunks put above the others as the reader scrolls up. The window holds
// at most MAX_RENDERED messages: as new ones come to a reader at the
// bottom, the oldest go, to come back as older ones do; as older ones
// come to a reader scrolling up, or new ones to a reader who is not at
// the bottom, the newest go, and the window ends before the last seq
// until the reader scrolls down again.

import { clock, el, prettyJSON, seconds } from './dom.js';
import { exposeSource, MarkdownBlock } from './markdown.js';
import { order, stranded } from './outbox.js';
import { ToolCard } from './tools.js';

const STOP_NOTES = {
  cancelled: 'Stopped',
  interrupted: 'Interrupted — the gateway stopped during this reply',
  max_tokens: 'Cut off: the reply reached the token limit',
  max_steps: 'Stopped: the agent reached its step limit',
  content_filtered: 'Blocked by the content filter',
  error: 'Error',
};

// RENDERERS names the method that renders each event type; other types
// (from a newer gateway) are skipped.
const RENDERERS = {
  message: 'message',
  turn_start: 'turnStart',
  delta: 'delta',
  thinking: 'thinking',
  action: 'action',
  tool_call: 'toolCall',
  tool_approval: 'toolApproval',
  tool_progress: 'toolProgress',
  tool_result: 'toolResult',
  turn_end: 'turnEnd',
};

// Turn is the reply element of one turn: its text is a run of Markdown
// segments with the tool cards of each step between them, in the order the
// events came. The segments hold the text (one copy of it); the reply's
// element reads them when asked (markdownSource, for tests).
class Turn {
  constructor(ev, complete) {
    // complete: the view saw the turn from its turn_start, so its deltas
    // should add up to the stored text.
    this.complete = complete;
    this.model = '';
    this.agent = '';
    const a = el('article', 'msg assistant', { testid: 'message' });
    a.dataset.role = 'assistant';
    a.dataset.turn = ev.turn ?? '';
    a.dataset.seq = String(ev.seq);
    a.dataset.state = 'streaming';
    // The list is a live region: a reply announced at each delta would
    // be read again and again. Busy, it is read once, when it ends.
    a.setAttribute('aria-busy', 'true');
    this.meta = el('div', 'meta', { text: 'Assistant' });
    this.actions = el('div', 'actions');
    this.body = el('div', 'text', { testid: 'reply-text' });
    exposeSource(this.body, () => this.segments.map((s) => s.source).join(''));
    a.append(this.meta, this.actions, this.body);
    this.article = a;
    // segments are the text's MarkdownBlocks, in order; segment, the last
    // one while text may still join it (no card came after it).
    this.segments = [];
    this.segment = null;
    this.thinking = null;
  }

  appendText(text) {
    if (!text) return;
    if (this.segment === null) {
      const d = el('div', 'segment');
      this.body.append(d);
      this.segment = new MarkdownBlock(d);
      this.segments.push(this.segment);
    }
    this.segment.append(text);
  }

  // appendCard puts a tool card after the text so far; text after it
  // starts a new segment.
  appendCard(card) {
    this.segment?.flush();
    this.segment = null;
    this.body.append(card.element);
  }

  appendThinking(text) {
    if (this.thinking === null) {
      const d = el('details', 'thinking', { testid: 'thinking' });
      d.append(el('summary', '', { text: 'Thinking' }));
      const body = el('div', 'thinking-text', { testid: 'thinking-text' });
      d.append(body);
      this.meta.after(d);
      // Folded thinking renders when it is opened.
      this.thinking = new MarkdownBlock(body, { shown: () => d.open });
      d.addEventListener('toggle', () => this.thinking.flush());
    }
    this.thinking.append(text);
  }

  // shows reports whether the segments add up to text (without joining
  // them: a long reply's text is not copied to compare it).
  shows(text) {
    let at = 0;
    for (const s of this.segments) {
      if (!text.startsWith(s.source, at)) return false;
      at += s.source.length;
    }
    return at === text.length;
  }

  // finish shows the stored text: if the deltas do not add up to it (they
  // should, in a turn seen whole), it replaces them and the element says
  // so (tests check it).
  finish(stored) {
    if (typeof stored === 'string' && !this.shows(stored)) {
      if (this.complete) this.article.dataset.mismatch = 'true';
      for (const s of this.segments) s.element.remove();
      this.segments = [];
      this.segment = null;
      this.appendText(stored);
    }
    this.segment?.flush();
    this.thinking?.flush();
  }
}

// Renderer renders events into container, before end if given: the live
// part of the view, or a chunk of older events.
class Renderer {
  constructor(container, view, end = null) {
    this.container = container;
    this.end = end;
    this.view = view;
    // turn id → Turn; call id → ToolCard
    this.turns = new Map();
    this.cards = new Map();
    // top is the first element put in container, null before.
    this.top = null;
  }

  // add puts node, the element of the events from ev on, below the ones
  // added before.
  add(node, ev) {
    if (this.end === null) this.container.append(node);
    else this.end.before(node);
    this.top ??= node;
    this.view.spans.set(node, { first: ev.seq, last: ev.seq });
  }

  // addTop is add, above every element added before.
  addTop(node, ev) {
    if (this.top === null) {
      this.add(node, ev);
      return;
    }
    this.top.before(node);
    this.top = node;
    this.view.spans.set(node, { first: ev.seq, last: ev.seq });
  }

  // forget drops what the renderer knows of node, an element the view
  // removed.
  forget(node) {
    for (const [turn, t] of this.turns) {
      if (t.article === node) this.turns.delete(turn);
    }
    for (const [call, card] of this.cards) {
      if (node.contains(card.element)) this.cards.delete(call);
    }
  }

  // known returns the Turn (which: 'turns') or ToolCard ('cards') the
  // list shows as key: this renderer's, or another's (a reply begun in a
  // chunk of older events goes on there, where it shows), or undefined.
  known(which, key) {
    for (const r of [this, this.view.live, ...this.view.chunks]) {
      const v = r[which].get(key);
      if (v !== undefined) return v;
    }
    return undefined;
  }

  apply(ev) {
    const render = RENDERERS[ev.type];
    if (render !== undefined) this[render](ev);
  }

  message(ev) {
    const m = ev.message ?? {};
    const role = m.role === 'assistant' ? 'assistant' : 'user';
    const a = el('article', `msg ${role}`, { testid: 'message' });
    a.dataset.role = role;
    a.dataset.seq = String(ev.seq);
    if (m.turn) a.dataset.turn = m.turn;
    a.append(el('div', 'meta', { text: `${role === 'user' ? 'You' : 'Assistant'} · ${clock(m.created_at ?? ev.ts)}` }));
    a.append(el('div', 'text plain', { testid: 'message-text', text: m.text ?? '' }));
    this.add(a, ev);
  }

  // turn finds or makes the reply element of ev.turn. A turn seen from its
  // turn_start shows where it starts; one begun before the first event
  // rendered here (the view's window starts within it) began before all
  // of them, and shows above them: above the messages sent while it ran,
  // where it showed live.
  turn(ev) {
    let t = this.known('turns', ev.turn);
    if (t === undefined) {
      t = new Turn(ev, ev.type === 'turn_start');
      if (t.complete) this.add(t.article, ev);
      else this.addTop(t.article, ev);
      // Its events go on until its turn_end.
      this.view.spans.get(t.article).last = Infinity;
      this.turns.set(ev.turn, t);
    }
    return t;
  }

  turnStart(ev) {
    const t = this.turn(ev);
    t.model = ev.model ?? '';
    t.agent = ev.agent ?? '';
    t.meta.textContent = ['Assistant', t.agent, t.model, clock(ev.ts)].filter((s) => s !== '').join(' · ');
  }

  delta(ev) {
    this.turn(ev).appendText(ev.text ?? '');
  }

  thinking(ev) {
    this.turn(ev).appendThinking(ev.text ?? '');
  }

  action(ev) {
    const card = el('div', 'action', { testid: 'action' });
    card.dataset.seq = String(ev.seq);
    card.append(el('div', 'action-name', { testid: 'action-name', text: ev.name ?? 'action' }));
    for (const [label, value] of [['input', ev.input], ['output', ev.output]]) {
      const text = prettyJSON(value);
      if (text === '') continue;
      const row = el('div', 'action-row');
      row.append(el('span', 'action-label', { text: label }));
      row.append(el('pre', 'action-json', { testid: `action-${label}`, text }));
      card.append(row);
    }
    const t = ev.turn ? this.known('turns', ev.turn) : undefined;
    if (t !== undefined) {
      t.actions.append(card);
    } else {
      // An external agent's action outside a reply stands on its own.
      card.classList.add('standalone');
      this.add(card, ev);
    }
  }

  toolCall(ev) {
    const card = new ToolCard(ev, this.view.answer);
    this.cards.set(card.call, card);
    this.turn(ev).appendCard(card);
    this.view.watch(card);
  }

  // card finds the card of ev.call; one whose tool_call came before the
  // view's window is made from the later event.
  card(ev) {
    let card = this.known('cards', ev.call);
    if (card === undefined) {
      this.toolCall({ ...ev, type: 'tool_call', status: 'running' });
      card = this.cards.get(ev.call);
    }
    return card;
  }

  toolApproval(ev) {
    this.card(ev).approval(ev);
  }

  toolProgress(ev) {
    this.card(ev).progress(ev);
  }

  toolResult(ev) {
    this.card(ev).result(ev);
  }

  turnEnd(ev) {
    const t = this.turn(ev);
    const a = t.article;
    const reason = ev.stop_reason ?? 'end_turn';
    a.dataset.state = 'done';
    a.removeAttribute('aria-busy');
    a.dataset.stopReason = reason;
    a.dataset.seq = String(ev.seq);
    this.view.spans.get(a).last = ev.seq;
    t.finish(ev.message?.text);
    if (STOP_NOTES[reason] !== undefined) {
      let note = STOP_NOTES[reason];
      if (reason === 'error' && ev.error) note = `Error (${ev.error.code}): ${ev.error.message}`;
      a.append(el('div', `turn-note ${reason}`, { testid: 'turn-note', text: note }));
    }
    const parts = [];
    if (t.model) parts.push(t.model);
    if (typeof ev.steps === 'number' && ev.steps > 1) parts.push(`${ev.steps} steps`);
    if (ev.usage) parts.push(`${ev.usage.input_tokens} in / ${ev.usage.output_tokens} out tokens`);
    // latency_ms is the time the model took to its first chunk.
    if (typeof ev.latency_ms === 'number') parts.push(`first token ${seconds(ev.latency_ms)}`);
    if (parts.length > 0) a.append(el('div', 'usage', { testid: 'usage', text: parts.join(' · ') }));
  }
}

const TICK_MS = 1000;

// loader returns the box of a button that loads more messages, hidden.
function loader(testid, text, load) {
  const box = el('div', 'loader');
  const button = el('button', 'button', { testid, text });
  button.type = 'button';
  button.addEventListener('click', () => load());
  box.append(button);
  box.hidden = true;
  return box;
}

// MAX_RENDERED bounds the elements of events (messages, replies, actions
// outside a reply) the list keeps; CATCH_UP is how many more each load of
// newer events adds at most.
export const MAX_RENDERED = 100;
const CATCH_UP = 20;

// ConversationView renders the events of the open conversation into list
// (the message section). onRunning(turn or null) is told when a turn
// starts or ends, so the page can show or hide its Stop button; answer
// ({approve, output}) sends a tool card's answers; loadOlder() and
// loadNewer() are called when the reader wants the events before the
// window, or after it when it ends before the last seq; unsent ({retry,
// discard}, each given a client_msg_id) acts on a message the gateway
// refused; home (the composer) takes the keyboard from a pending message
// that no longer has the button it was on.
//
// Below the events, the view shows the messages sent but not yet
// acknowledged (pending(entry)), each until the message event it became
// is rendered; acknowledged, one says so while that event is not in.
export class ConversationView {
  constructor(list, { onRunning, answer, loadOlder, loadNewer, unsent, home }) {
    this.list = list;
    this.home = home;
    this.onRunning = onRunning;
    this.answer = answer;
    this.unsent = unsent;
    this.ticker = 0;
    // The pending messages' box, kept last in the list.
    this.outbox = el('div', 'outbox');
    this.older = loader('load-older', 'Show earlier messages', loadOlder);
    this.newer = loader('load-newer', 'Show newer messages', loadNewer);
    list.addEventListener('scroll', () => {
      if (!this.older.hidden && list.scrollTop < 200) loadOlder();
      if (!this.newer.hidden && list.scrollHeight - list.scrollTop - list.clientHeight < 200) loadNewer();
    });
    this.reset(null);
  }

  // reset empties the view for conversation (null: none open).
  reset(conversation) {
    this.conversation = conversation;
    // element → {first, last}: the seqs of the first and last events it
    // shows (last Infinity for a reply still running).
    this.spans = new WeakMap();
    this.live = new Renderer(this.list, this, this.newer);
    this.chunks = [];
    this.lastSeq = 0;
    this.from = 0;
    // until is the seq the list shows the events up to when it ends
    // before the last seq, else null.
    this.until = null;
    this.running = null;
    this.open = new Set();
    this.readyAt = null;
    // client_msg_id → {element, entry} of a pending message; seq → the
    // client_msg_id of the pending message acknowledged as that seq, not
    // rendered yet.
    this.pendings = new Map();
    this.awaiting = new Map();
    this.older.hidden = true;
    this.newer.hidden = true;
    delete this.list.dataset.ready;
    this.empty = this.placeholder(conversation);
    this.outbox.replaceChildren();
    this.list.replaceChildren(this.older, this.empty, this.newer, this.outbox);
    this.onRunning(null);
  }

  // placeholder is what an empty list shows. A conversation's says it
  // has no messages only once it is ready: until then they may be on
  // their way (or the gateway out of reach).
  placeholder(conversation) {
    const p = el('div', 'empty', { testid: 'empty' });
    const title = conversation === null ? 'Start a conversation' : 'Loading…';
    p.append(el('p', 'empty-title', { text: title }));
    p.append(el('p', 'muted', { text: 'Type a message below. Replies stream in as the model writes them.' }));
    return p;
  }

  // notFound says, in place of the placeholder's "Loading…", that the
  // conversation is not there to show.
  notFound() {
    this.empty.firstChild.textContent = 'Conversation not found';
    this.outbox.replaceChildren();
    this.pendings.clear();
    this.awaiting.clear();
    this.placeholderIfBlank();
  }

  // placeholderIfBlank shows the placeholder again in a list that shows
  // nothing else (its last pending message gone), rather than leave it
  // blank.
  placeholderIfBlank() {
    const blank = [...this.list.children].every((c) => c === this.older || c === this.newer || c === this.outbox);
    if (blank && this.outbox.childElementCount === 0) this.outbox.before(this.empty);
  }

  // pending shows entry, a message of this conversation sent but not yet
  // acknowledged ({id: its client_msg_id, text, after: the last seq the
  // page had when it was written, at: when, error: the gateway's refusal
  // or null}), below the events, among the others in the outbox's order
  // (whenever it comes: from another tab, say): "Sending…", or the
  // refusal with buttons to send it again or discard it.
  pending(entry) {
    const a = el('article', 'msg user pending', { testid: 'pending-message' });
    a.dataset.clientMsgId = entry.id;
    this.pendings.set(entry.id, { element: a, entry });
    this.update(entry);
    this.empty?.remove();
    const stick = this.atBottom();
    // Before the first one written after it (the box is in order).
    const next = [...this.outbox.children].find((c) => {
      const p = this.pendings.get(c.dataset.clientMsgId);
      return p !== undefined && order(p.entry, entry) > 0;
    });
    this.outbox.insertBefore(a, next ?? null);
    if (stick) this.list.scrollTop = this.list.scrollHeight;
  }

  // update shows entry's state on its pending element, if shown. The
  // keyboard, if it was on one of the element's buttons, stays on that
  // button drawn again, or, when there is none (the message sent again),
  // goes to home (the composer), not to the page's body.
  update(entry) {
    const p = this.pendings.get(entry.id);
    if (p === undefined) return;
    p.entry = entry;
    const a = p.element;
    const focus = a.contains(document.activeElement) ? document.activeElement.dataset.testid : null;
    a.dataset.state = entry.error ? 'failed' : 'sending';
    a.replaceChildren(...this.pendingParts(entry));
    if (focus !== null) (a.querySelector(`[data-testid=${focus}]`) ?? this.home).focus();
  }

  // pendingParts returns the elements that show pending message entry:
  // "Sending…", or the refusal with buttons to send it again or discard
  // it.
  pendingParts(entry) {
    const err = entry.error;
    const meta = el('div', 'meta');
    meta.append('You · ', el('span', 'pending-status', { testid: 'pending-status', text: err ? 'Not sent' : 'Sending…' }));
    const parts = [meta, el('div', 'text plain', { testid: 'message-text', text: entry.text })];
    if (!err) return parts;
    // One whose conversation is gone is sent to this one.
    const away = stranded(entry, this.conversation);
    const why = away ? 'Not sent: its conversation no longer exists.' : err.code ? `${err.code}: ${err.message}` : err.message;
    const actions = el('div', 'pending-actions');
    for (const [name, label] of [['retry', away ? 'Send here' : 'Send again'], ['discard', 'Discard']]) {
      const b = el('button', 'button', { testid: `pending-${name}`, text: label });
      b.type = 'button';
      b.addEventListener('click', () => this.unsent[name](entry.id));
      actions.append(b);
    }
    return [...parts, el('div', 'pending-error', { testid: 'pending-error', text: why }), actions];
  }

  // acked says that pending message id is stored as the message event
  // seq: its element goes once that event is rendered (at once if it is),
  // and says "Sent" until then, however long that event takes to come
  // (its conversation still loading, say).
  acked(id, seq) {
    const p = this.pendings.get(id);
    if (p === undefined) return;
    if (typeof seq === 'number' && seq > this.lastSeq) {
      p.element.dataset.state = 'acked';
      p.element.querySelector('.pending-status').textContent = 'Sent';
      this.awaiting.set(seq, id);
      return;
    }
    this.unpend(id);
  }

  // changedElsewhere shows what another tab made of pending message id:
  // entry, its state now, or undefined once this view no longer shows it
  // (acknowledged, and so stored, or discarded there, or sent to another
  // conversation). One acknowledged here says "Sent" until its message
  // event comes, as it is.
  changedElsewhere(id, entry) {
    const p = this.pendings.get(id);
    if (p === undefined || p.element.dataset.state === 'acked') return;
    if (entry === undefined) this.unpend(id);
    else this.update(entry);
  }

  // shows reports whether pending message id is shown.
  shows(id) {
    return this.pendings.has(id);
  }

  // unpend removes pending message id. The keyboard, if it was on it
  // (on Discard), goes to home.
  unpend(id) {
    const a = this.pendings.get(id)?.element;
    const focused = a?.contains(document.activeElement);
    a?.remove();
    this.pendings.delete(id);
    this.placeholderIfBlank();
    if (focused) this.home.focus();
  }

  // render renders ev in the live part of the list, and takes the
  // pending copy of a message event away, if any: a pending message shows
  // until its stored copy does.
  render(ev) {
    this.live.apply(ev);
    if (ev.type !== 'message') return;
    const id = this.awaiting.get(ev.seq) ?? this.copyOf(ev.seq, ev.message);
    this.awaiting.delete(ev.seq);
    if (id !== undefined) this.unpend(id);
  }

  // copyOf returns the client_msg_id of the pending message that message
  // m, stored as seq, is, as far as the view can tell: the oldest one
  // still sending with m's text and written after the events the page had
  // then. Stored messages do not carry their client_msg_id; its ack was
  // lost, or is not in yet (a reload while offline shows the message
  // fetched with the conversation). The outbox keeps the message until an
  // ack comes: should the guess be wrong (another client sent the same
  // text meanwhile), the message shows when the outbox sends it again.
  copyOf(seq, m) {
    if (m?.role !== 'user') return undefined;
    for (const [id, p] of this.pendings) {
      if (p.element.dataset.state === 'sending' && p.entry.text === m.text && p.entry.after < seq) return id;
    }
    return undefined;
  }

  // start says where the window begins: events with seq > from are to
  // come (the subscription starts there); hasMore, whether older messages
  // exist.
  start(from, hasMore) {
    this.from = from;
    this.lastSeq = from;
    this.older.hidden = !hasMore;
  }

  // ready marks the list ready (data-ready, and a performance mark) once
  // the events up to seq, the conversation's last when subscribing, are
  // rendered.
  ready(seq) {
    if (this.readyAt === null) this.readyAt = seq;
    this.checkReady();
  }

  checkReady() {
    if (this.readyAt === null || this.lastSeq < this.readyAt || this.list.dataset.ready !== undefined) return;
    this.list.dataset.ready = 'true';
    this.empty.firstChild.textContent = 'No messages yet';
    // One mark, the latest: a mark per opening would pile up for as long
    // as the tab stays open.
    performance.clearMarks('conversation-ready');
    performance.mark('conversation-ready', { detail: this.conversation });
    this.list.scrollTop = this.list.scrollHeight;
  }

  // apply renders ev if it belongs to the open conversation: at once,
  // unless the list ends before it (until), and shows it when the reader
  // gets there (catchUp).
  apply(ev) {
    if (ev.conversation !== this.conversation) return;
    this.lastSeq = ev.seq;
    this.follow(ev);
    if (this.until !== null) return;
    if (this.list.dataset.ready === undefined) {
      // Replaying: no layout until the replay is in (checkReady scrolls).
      this.empty?.remove();
      this.render(ev);
      this.trimTop();
      this.checkReady();
      return;
    }
    const stick = this.atBottom();
    this.empty?.remove();
    this.render(ev);
    // A reader elsewhere than at the end keeps the place they read: the
    // newest go instead, to be caught up with.
    if (!stick) {
      this.trimBottom();
      return;
    }
    this.trimTop();
    this.list.scrollTop = this.list.scrollHeight;
  }

  // follow tells onRunning of the turn ev starts or ends.
  follow(ev) {
    if (ev.type === 'turn_start') this.running = ev.turn;
    else if (ev.type === 'turn_end' && ev.turn === this.running) this.running = null;
    else return;
    this.onRunning(this.running);
  }

  // catchUp renders events, the ones after until that the list ends
  // with, below the rest: CATCH_UP elements' worth at most, the oldest
  // going for them. Once it shows the last seq, the list follows the
  // events as they come again.
  catchUp(events, until) {
    if (until !== this.until) return;
    const count = this.list.childElementCount;
    for (const ev of events) {
      if (this.list.childElementCount - count >= CATCH_UP) break;
      this.render(ev);
      this.until = ev.seq;
    }
    if (this.until >= this.lastSeq) {
      this.until = null;
      this.newer.hidden = true;
    }
    this.trimTop();
  }

  // shown returns the elements of events in the list, in order.
  shown() {
    return [...this.list.children].filter((c) => this.spans.has(c));
  }

  // cuts returns the indexes k at which the elements shown may be cut in
  // two (no element before k has events after any from k on), and the seq
  // that ends the events before k.
  cuts(shown) {
    // firstFrom[k]: the first seq of the elements from k on.
    const firstFrom = new Array(shown.length + 1).fill(Infinity);
    for (let k = shown.length - 1; k >= 0; k--) firstFrom[k] = Math.min(this.spans.get(shown[k]).first, firstFrom[k + 1]);
    const at = [];
    let last = 0;
    for (let k = 1; k < shown.length; k++) {
      last = Math.max(last, this.spans.get(shown[k - 1]).last);
      if (last < firstFrom[k]) at.push(k);
    }
    return { at, seq: (k) => firstFrom[k] - 1 };
  }

  // trimTop removes the oldest elements while the list holds more than
  // MAX_RENDERED, keeping what the reader sees in place; the window then
  // starts after them.
  trimTop() {
    const shown = this.shown();
    if (shown.length <= MAX_RENDERED) return;
    const { at, seq } = this.cuts(shown);
    const k = at.find((k) => k >= shown.length - MAX_RENDERED);
    if (k === undefined) return;
    const before = this.list.scrollHeight;
    this.drop(shown.slice(0, k));
    this.list.scrollTop -= before - this.list.scrollHeight;
    this.from = seq(k);
    this.older.hidden = false;
  }

  // trimBottom removes the newest elements while the list holds more
  // than MAX_RENDERED; the list then ends before them.
  trimBottom() {
    const shown = this.shown();
    if (shown.length <= MAX_RENDERED) return;
    const { at, seq } = this.cuts(shown);
    const k = at.findLast((k) => k <= MAX_RENDERED);
    if (k === undefined) return;
    this.drop(shown.slice(k));
    this.until = seq(k);
    this.newer.hidden = false;
  }

  // drop removes elements, and what the renderers know of them.
  drop(elements) {
    for (const e of elements) {
      e.remove();
      for (const r of [this.live, ...this.chunks]) r.forget(e);
    }
    if (this.live.top !== null && !this.live.top.isConnected) this.live.top = null;
    // A chunk is kept for its replies, which older events must not show
    // again (see prepend).
    this.chunks = this.chunks.filter((r) => r.turns.size > 0);
  }

  atBottom() {
    const l = this.list;
    return l.scrollHeight - l.scrollTop - l.clientHeight < 80;
  }

  // prepend renders events, the ones after from up to until, where the
  // window starts, above the rest, keeping what the reader sees in place,
  // and moves the window's start to from; the newest elements go for
  // them. The events of a reply already shown are skipped: that turn
  // began before the newer chunk and is shown there, with its stored
  // text. (Its user message is not part of it.)
  prepend(events, from, hasMore, until) {
    if (until !== this.from) return;
    const chunk = el('div', 'chunk');
    const r = new Renderer(chunk, this);
    const shown = (ev) => ev.type !== 'message' && ev.turn && this.live.known('turns', ev.turn) !== undefined;
    for (const ev of events) {
      if (ev.seq > from && ev.seq <= this.from && !shown(ev)) r.apply(ev);
    }
    this.chunks.unshift(r);
    const before = this.list.scrollHeight;
    this.empty?.remove();
    this.older.after(...chunk.childNodes);
    this.list.scrollTop += this.list.scrollHeight - before;
    this.from = from;
    this.older.hidden = !hasMore;
    this.trimBottom();
  }

  // watch keeps card's timer going while the call is open.
  watch(card) {
    if (!card.open) return;
    this.open.add(card);
    if (this.ticker !== 0) return;
    this.ticker = setInterval(() => {
      const now = Date.now();
      for (const c of this.open) {
        if (c.open && c.element.isConnected) c.tick(now);
        else this.open.delete(c);
      }
      if (this.open.size === 0) {
        clearInterval(this.ticker);
        this.ticker = 0;
      }
    }, TICK_MS);
  }
}
