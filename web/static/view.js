// view.js renders one conversation's events into the message list. User
// text is only ever inserted as text nodes; model text (replies and
// thinking) is Markdown, rendered into sanitized fragments by markdown.js.
// It trusts its caller (socket.js) to pass each seq once, in order.

import { MarkdownBlock } from './markdown.js';

const STOP_NOTES = {
  cancelled: 'Stopped',
  interrupted: 'Interrupted — the gateway stopped during this reply',
  max_tokens: 'Cut off: the reply reached the token limit',
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
  turn_end: 'turnEnd',
};

// el makes an element with a class, optional test id and optional text.
function el(tag, className, { testid, text } = {}) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (testid) e.dataset.testid = testid;
  if (text !== undefined) e.textContent = text;
  return e;
}

function clock(ts) {
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return '';
  return d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

function prettyJSON(v) {
  if (v === undefined || v === null) return '';
  return typeof v === 'string' ? v : JSON.stringify(v, null, 2);
}

function seconds(ms) {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
}

// ConversationView renders the events of the open conversation into list
// (the message section). onRunning(turn or null) is told when a turn
// starts or ends, so the page can show or hide its Stop button.
export class ConversationView {
  constructor(list, { onRunning }) {
    this.list = list;
    this.onRunning = onRunning;
    this.reset(null);
  }

  // reset empties the view for conversation (null: none open).
  reset(conversation) {
    this.conversation = conversation;
    // turn id → {article, meta, actions, text and thinking (MarkdownBlocks), model}
    this.turns = new Map();
    this.running = null;
    this.list.replaceChildren(this.placeholder(conversation));
    this.onRunning(null);
  }

  placeholder(conversation) {
    const p = el('div', 'empty', { testid: 'empty' });
    p.append(el('p', 'empty-title', { text: conversation === null ? 'Start a conversation' : 'No messages yet' }));
    p.append(el('p', 'muted', { text: 'Type a message below. Replies stream in as the model writes them.' }));
    return p;
  }

  // apply renders ev if it belongs to the open conversation.
  apply(ev) {
    if (ev.conversation !== this.conversation) return;
    const stick = this.atBottom();
    this.list.querySelector(':scope > .empty')?.remove();
    const render = RENDERERS[ev.type];
    if (render !== undefined) this[render](ev);
    if (stick) this.list.scrollTop = this.list.scrollHeight;
  }

  atBottom() {
    const l = this.list;
    return l.scrollHeight - l.scrollTop - l.clientHeight < 80;
  }

  message(ev) {
    const m = ev.message ?? {};
    const role = m.role === 'assistant' ? 'assistant' : 'user';
    const a = el('article', `msg ${role}`, { testid: 'message' });
    a.dataset.role = role;
    a.dataset.seq = String(ev.seq);
    if (m.turn) a.dataset.turn = m.turn;
    a.append(el('div', 'meta', { text: `${role === 'user' ? 'You' : 'Assistant'} · ${clock(m.created_at ?? ev.ts)}` }));
    a.append(el('div', 'text', { testid: 'message-text', text: m.text ?? '' }));
    this.list.append(a);
  }

  turnStart(ev) {
    const t = this.turn(ev);
    t.model = ev.model ?? '';
    t.meta.textContent = `Assistant · ${t.model} · ${clock(ev.ts)}`;
    this.running = ev.turn;
    this.onRunning(ev.turn);
  }

  delta(ev) {
    this.turn(ev).text.append(ev.text ?? '');
  }

  // turn finds or makes the reply element of ev.turn.
  turn(ev) {
    let t = this.turns.get(ev.turn);
    if (t !== undefined) return t;
    const a = el('article', 'msg assistant', { testid: 'message' });
    a.dataset.role = 'assistant';
    a.dataset.turn = ev.turn ?? '';
    a.dataset.seq = String(ev.seq);
    a.dataset.state = 'streaming';
    const meta = el('div', 'meta', { text: 'Assistant' });
    const actions = el('div', 'actions');
    const body = el('div', 'text', { testid: 'reply-text' });
    a.append(meta, actions, body);
    this.list.append(a);
    t = { article: a, meta, actions, text: new MarkdownBlock(body), thinking: null, model: '' };
    this.turns.set(ev.turn, t);
    return t;
  }

  thinking(ev) {
    const t = this.turn(ev);
    if (t.thinking === null) {
      const d = el('details', 'thinking', { testid: 'thinking' });
      d.append(el('summary', '', { text: 'Thinking' }));
      const body = el('div', 'thinking-text', { testid: 'thinking-text' });
      d.append(body);
      t.meta.after(d);
      t.thinking = new MarkdownBlock(body);
    }
    t.thinking.append(ev.text ?? '');
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
    const t = ev.turn ? this.turns.get(ev.turn) : undefined;
    if (t !== undefined) {
      t.actions.append(card);
    } else {
      // An external agent's action outside a reply stands on its own.
      card.classList.add('standalone');
      this.list.append(card);
    }
  }

  turnEnd(ev) {
    const t = this.turn(ev);
    const a = t.article;
    const reason = ev.stop_reason ?? 'end_turn';
    a.dataset.state = 'done';
    a.dataset.stopReason = reason;
    a.dataset.seq = String(ev.seq);
    const stored = ev.message?.text;
    if (typeof stored === 'string' && stored !== t.text.source) {
      // The deltas should add up to the stored text; if they ever do not,
      // the stored text wins and the element says so (tests check it).
      a.dataset.mismatch = 'true';
      t.text.source = stored;
    }
    t.text.flush();
    t.thinking?.flush();
    if (STOP_NOTES[reason] !== undefined) {
      let note = STOP_NOTES[reason];
      if (reason === 'error' && ev.error) note = `Error (${ev.error.code}): ${ev.error.message}`;
      a.append(el('div', `turn-note ${reason}`, { testid: 'turn-note', text: note }));
    }
    const parts = [];
    if (t.model) parts.push(t.model);
    if (ev.usage) parts.push(`${ev.usage.input_tokens} in / ${ev.usage.output_tokens} out tokens`);
    // latency_ms is the time the model took to its first chunk.
    if (typeof ev.latency_ms === 'number') parts.push(`first token ${seconds(ev.latency_ms)}`);
    if (parts.length > 0) a.append(el('div', 'usage', { testid: 'usage', text: parts.join(' · ') }));
    if (this.running === ev.turn) {
      this.running = null;
      this.onRunning(null);
    }
  }
}
