// tools.js renders one tool call of an agent's turn as a card that lives
// through its states: running (a timer, and a progress bar once
// tool_progress comes), awaiting approval (Approve / Deny with a reason),
// awaiting the client (Yes / No, or a JSON answer), then the result. The
// card only shows what the events say, so every tab shows the same state;
// its buttons send requests through the callbacks it is given, and the
// events those cause update it.

import { el, prettyJSON, seconds } from './dom.js';

const STATUS_TEXT = {
  running: 'Running',
  awaiting_approval: 'Waiting for approval',
  awaiting_client: 'Waiting for your answer',
  ok: 'Done',
  error: 'Error',
  denied: 'Denied',
  timeout: 'Timed out',
  cancelled: 'Cancelled',
  interrupted: 'Interrupted',
};

// Output longer than this is folded: shown by a click.
const FOLD_LINES = 12;
const FOLD_CHARS = 800;

// KINDS is how the header names a tool's kind.
export const KINDS = { http: 'HTTP', mcp: 'MCP', client: 'client' };

// folded shows text under label, folded when long.
function folded(label, text, testid) {
  const pre = el('pre', 'tool-json', { testid, text });
  const lines = text.split('\n').length;
  if (lines <= FOLD_LINES && text.length <= FOLD_CHARS) {
    const box = el('div', 'tool-section');
    box.append(el('div', 'tool-label muted', { text: label }), pre);
    return box;
  }
  const d = el('details', 'tool-fold');
  d.append(el('summary', 'tool-label', { text: `${label} (${lines} lines)` }), pre);
  return d;
}

// REASON_MAX_BYTES is the protocol's limit on an approval's reason, in
// UTF-8 bytes (not characters: CJK text takes three bytes a character).
const REASON_MAX_BYTES = 1024;
const utf8 = new TextEncoder();

// NULL_OUTPUT says why a client tool's answer cannot be JSON null.
const NULL_OUTPUT = 'null is no answer: the gateway takes a null output as none. Answer with another JSON value, such as {"answer": null}.';

// SHORT_INPUT is the longest input shown on one line.
const SHORT_INPUT = 60;

function inputText(input) {
  const line = JSON.stringify(input ?? {});
  return line.length <= SHORT_INPUT ? line : prettyJSON(input);
}

// ToolCard is the card of one call. answer is {approve(call, approved,
// reason), output(call, {output} or {error})}, each returning a promise.
export class ToolCard {
  constructor(ev, answer) {
    this.call = ev.call ?? '';
    this.answer = answer;
    this.started = Date.parse(ev.ts);
    this.status = '';
    const c = el('div', 'tool-card', { testid: 'tool-card' });
    c.dataset.call = this.call;
    const head = el('div', 'tool-head');
    head.append(el('span', 'tool-name', { testid: 'tool-name', text: ev.name ?? 'tool' }));
    if (typeof ev.step === 'number') head.append(el('span', 'tool-step muted', { text: `step ${ev.step}` }));
    this.statusEl = el('span', 'tool-status', { testid: 'tool-status' });
    this.timer = el('span', 'tool-timer muted', { testid: 'tool-timer' });
    head.append(this.statusEl, this.timer);
    c.append(head);
    c.append(folded('Input', inputText(ev.input), 'tool-input'));
    this.element = c;
    this.setStatus(ev.status ?? 'running', ev);
  }

  // open tells whether the call is not over yet.
  get open() {
    return !this.element.dataset.result;
  }

  setStatus(status, ev) {
    this.status = status;
    this.element.dataset.status = status;
    this.statusEl.textContent = STATUS_TEXT[status] ?? status;
    this.panel?.remove();
    this.panel = null;
    if (status === 'awaiting_approval') this.panel = this.approvalPanel();
    if (status === 'awaiting_client') this.panel = this.clientPanel(ev.input);
    if (this.panel !== null) this.element.append(this.panel);
    this.tick(Date.now());
  }

  // tick shows how long the call has been running.
  tick(now) {
    if (this.element.dataset.result) return;
    if (Number.isNaN(this.started)) return;
    this.timer.textContent = `${Math.floor(Math.max(0, now - this.started) / 1000)} s`;
  }

  approvalPanel() {
    const p = el('div', 'tool-panel', { testid: 'tool-approval' });
    const reason = el('input', 'tool-reason', { testid: 'tool-reason' });
    reason.placeholder = 'Reason (optional)';
    // A character takes at least one byte: a longer one cannot fit.
    reason.maxLength = REASON_MAX_BYTES;
    const yes = el('button', 'button primary', { testid: 'tool-approve', text: 'Approve' });
    const no = el('button', 'button danger', { testid: 'tool-deny', text: 'Deny' });
    const problem = el('div', 'tool-problem', { testid: 'tool-reason-error' });
    const send = (approved) => {
      const why = reason.value.trim();
      const bytes = utf8.encode(why).length;
      if (bytes > REASON_MAX_BYTES) {
        problem.textContent = `The reason is too long: ${bytes} bytes in UTF-8, at most ${REASON_MAX_BYTES} fit. Shorten it.`;
        return;
      }
      problem.textContent = '';
      this.send(p, this.answer.approve(this.call, approved, why));
    };
    yes.addEventListener('click', () => send(true));
    no.addEventListener('click', () => send(false));
    p.append(reason, yes, no, problem);
    return p;
  }

  clientPanel(input) {
    const p = el('div', 'tool-panel client', { testid: 'tool-client' });
    const question = input?.question ?? input?.message ?? input?.prompt;
    if (typeof question === 'string') p.append(el('div', 'tool-question', { testid: 'tool-question', text: question }));
    const yes = el('button', 'button primary', { testid: 'tool-confirm', text: 'Yes' });
    const no = el('button', 'button', { testid: 'tool-decline', text: 'No' });
    yes.addEventListener('click', () => this.send(p, this.answer.output(this.call, { output: { confirmed: true } })));
    no.addEventListener('click', () => this.send(p, this.answer.output(this.call, { output: { confirmed: false } })));
    const form = el('details', 'tool-answer');
    form.append(el('summary', '', { text: 'Answer with JSON' }));
    const area = el('textarea', 'tool-json-input', { testid: 'tool-json' });
    area.rows = 3;
    area.spellcheck = false;
    area.placeholder = '{"answer": …}';
    const problem = el('div', 'tool-problem', { testid: 'tool-json-error' });
    const send = el('button', 'button', { testid: 'tool-send', text: 'Send' });
    send.addEventListener('click', () => {
      let value;
      try {
        value = JSON.parse(area.value);
      } catch (err) {
        problem.textContent = `Not JSON: ${err.message}`;
        return;
      }
      // The protocol takes a null field as absent: sent, it would be a
      // tool_output with neither output nor error, which is refused.
      if (value === null) {
        problem.textContent = NULL_OUTPUT;
        return;
      }
      problem.textContent = '';
      this.send(p, this.answer.output(this.call, { output: value }));
    });
    form.append(area, send, problem);
    const row = el('div', 'tool-buttons');
    row.append(yes, no);
    p.append(row, form);
    return p;
  }

  // send disables the panel's controls while its answer is on the way;
  // the event it causes replaces the panel, a failure enables them again.
  send(panel, promise) {
    const controls = panel.querySelectorAll('button, input, textarea');
    for (const c of controls) c.disabled = true;
    promise.catch(() => {
      for (const c of controls) c.disabled = false;
    });
  }

  approval(ev) {
    const who = ev.by ? ` by ${ev.by}` : '';
    const why = ev.reason ? `: ${ev.reason}` : '';
    const note = el('div', `tool-note ${ev.approved ? 'approved' : 'denied'}`, {
      testid: 'tool-approval-note',
      text: `${ev.approved ? 'Approved' : 'Denied'}${who}${why}`,
    });
    this.element.querySelector('.tool-note')?.remove();
    this.element.querySelector('.tool-head').after(note);
    this.element.dataset.approved = String(Boolean(ev.approved));
    if (ev.approved) {
      this.started = Date.parse(ev.ts);
      this.setStatus('running', ev);
    } else {
      this.setStatus('denied', ev);
    }
  }

  progress(ev) {
    if (this.bar === undefined) {
      const row = el('div', 'tool-progress-row');
      this.bar = el('progress', 'tool-progress', { testid: 'tool-progress' });
      this.barText = el('span', 'tool-progress-text muted', { testid: 'tool-progress-text' });
      row.append(this.bar, this.barText);
      this.element.querySelector('.tool-head').after(row);
    }
    const total = typeof ev.total === 'number' && ev.total > 0 ? ev.total : null;
    if (total === null) {
      // Without a total the bar is indeterminate.
      this.bar.removeAttribute('value');
    } else {
      this.bar.max = total;
      this.bar.value = Math.min(ev.progress ?? 0, total);
    }
    const parts = [];
    if (total !== null) parts.push(`${ev.progress ?? 0} / ${total}`);
    else if (typeof ev.progress === 'number') parts.push(String(ev.progress));
    if (ev.message) parts.push(ev.message);
    this.barText.textContent = parts.join(' · ');
  }

  result(ev) {
    const status = ev.status ?? 'ok';
    this.setStatus(status, ev);
    this.element.dataset.result = status;
    this.timer.textContent = typeof ev.duration_ms === 'number' ? seconds(ev.duration_ms) : '';
    if (this.bar !== undefined && status === 'ok' && this.bar.hasAttribute('value')) this.bar.value = this.bar.max;
    const box = el('div', 'tool-result');
    if (ev.error !== undefined && ev.error !== null && ev.error !== '') {
      box.append(el('div', 'tool-error', { testid: 'tool-error', text: String(ev.error) }));
    }
    if (ev.output !== undefined && ev.output !== null) box.append(folded('Output', prettyJSON(ev.output), 'tool-output'));
    if (box.childElementCount > 0) this.element.append(box);
  }
}
