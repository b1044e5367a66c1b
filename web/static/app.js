// app.js wires the page: the socket's events go to the view, the sidebar
// and composer turn clicks and keys into requests, and the URL fragment
// (#/c/<id>) says which conversation is open.

import { fetchInfo, takeToken } from './api.js';
import { Sidebar } from './sidebar.js';
import { GatewaySocket, wsURL } from './socket.js';
import { ConversationView } from './view.js';

const $ = (id) => document.getElementById(id);

const STATUS_TEXT = { connecting: 'Connecting…', connected: 'Connected', reconnecting: 'Reconnecting…' };
const LIST_REFRESH_MS = 250;

const token = takeToken();
let current = null;
let defaultModel = '';
let listTimer = 0;

const view = new ConversationView($('messages'), {
  onRunning: (turn) => {
    $('stop').hidden = turn === null;
  },
});
const sidebar = new Sidebar($('conversations'), { onDelete: remove });
const socket = new GatewaySocket({
  url: wsURL(token),
  onEvent: (ev) => {
    view.apply(ev);
    // A new message or reply moves its conversation to the top.
    if (ev.type === 'message' || ev.type === 'turn_end') refreshListSoon();
  },
  onStatus: (state) => {
    const s = $('status');
    s.dataset.state = state;
    s.textContent = STATUS_TEXT[state];
    if (state === 'connected') refreshList();
  },
  onGone: (id) => {
    if (id === current) navigate(null);
    refreshListSoon();
  },
  onError: (err) => {
    if (err.conversation !== undefined && err.conversation === current && err.code === 'not_found') {
      showNotice(err, 'This conversation does not exist (any more).');
      return;
    }
    showNotice(err);
  },
});

function showNotice(err, text) {
  $('notice').dataset.code = err.code ?? '';
  $('notice-text').textContent = text ?? (err.code ? `${err.code}: ${err.message}` : err.message);
  $('notice').hidden = false;
}

function openedFromURL() {
  const m = /^#\/c\/([^/?#]+)$/.exec(location.hash);
  return m === null ? null : decodeURIComponent(m[1]);
}

// open shows conversation id (null: none) and subscribes to it from seq 0,
// so the whole conversation renders from its event log.
function open(id) {
  if (id === current) return;
  if (current !== null) socket.unsubscribe(current);
  current = id;
  view.reset(id);
  sidebar.highlight(id);
  heading();
  if (id !== null) socket.subscribe(id, 0);
  setSidebar(false);
  $('input').focus();
}

function navigate(id) {
  open(id);
  const hash = id === null ? '' : `#/c/${encodeURIComponent(id)}`;
  if (location.hash !== hash) history.pushState(null, '', hash === '' ? location.pathname : hash);
}

function heading() {
  const c = current === null ? undefined : sidebar.get(current);
  $('title').textContent = current === null ? 'New conversation' : c?.title || 'Untitled';
  $('model').textContent = c?.model || defaultModel;
}

async function refreshList() {
  try {
    const reply = await socket.request({ type: 'list' });
    sidebar.render(reply.conversations ?? []);
    heading();
  } catch (err) {
    if (err.code !== 'disconnected') showNotice(err);
  }
}

function refreshListSoon() {
  clearTimeout(listTimer);
  listTimer = setTimeout(refreshList, LIST_REFRESH_MS);
}

// clientMsgID makes a send idempotent, so that it can be sent again after
// a reconnect. crypto.randomUUID needs a secure context; this does not.
function clientMsgID() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

async function submit() {
  const input = $('input');
  const text = input.value;
  if (text.trim() === '') return;
  input.value = '';
  try {
    if (current === null) {
      // Create first, so that the page is subscribed before its first
      // message event exists.
      const created = await socket.request({ type: 'create' });
      navigate(created.conversation);
    }
    await socket.request(
      { type: 'send', conversation: current, text, client_msg_id: clientMsgID() },
      { retry: true },
    );
  } catch (err) {
    if (input.value === '') input.value = text;
    showNotice(err);
  }
}

async function create(form) {
  // Enter pressed twice, or a double click, would otherwise create two.
  if (form.dataset.busy === 'true') return;
  form.dataset.busy = 'true';
  const frame = { type: 'create' };
  for (const name of ['title', 'system', 'model']) {
    const v = form.elements[name].value.trim();
    if (v !== '') frame[name] = v;
  }
  try {
    const created = await socket.request(frame);
    form.reset();
    showForm(false);
    await refreshList();
    navigate(created.conversation);
  } catch (err) {
    showNotice(err);
  } finally {
    form.dataset.busy = 'false';
  }
}

async function remove(id) {
  try {
    await socket.request({ type: 'delete', conversation: id });
    if (id === current) navigate(null);
    await refreshList();
  } catch (err) {
    showNotice(err);
  }
}

function showForm(show) {
  $('new-form').hidden = !show;
  $('new-toggle').setAttribute('aria-expanded', String(show));
  if (show) $('new-form').elements.title.focus();
}

function setSidebar(open) {
  document.body.classList.toggle('sidebar-open', open);
  $('scrim').hidden = !open;
  $('menu').setAttribute('aria-expanded', String(open));
}

async function showInfo() {
  try {
    const info = await fetchInfo(token);
    defaultModel = info.default_model ?? '';
    $('demo-badge').hidden = info.provider !== 'demo';
    $('version').textContent = `gateway ${info.version ?? ''} · ${info.provider ?? ''}`;
    $('new-form').elements.model.placeholder = defaultModel;
    heading();
    if (info.auth === 'jwt' && token === '') {
      showNotice({ code: 'unauthorized', message: 'This gateway needs a token: open the page as /#token=…' });
    }
  } catch (err) {
    showNotice(err);
  }
}

$('composer').addEventListener('submit', (e) => {
  e.preventDefault();
  submit();
});
$('input').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    submit();
  }
});
$('stop').addEventListener('click', () => {
  if (current === null) return;
  socket.request({ type: 'cancel', conversation: current }).catch(showNotice);
});
$('new-toggle').addEventListener('click', () => showForm($('new-form').hidden));
$('new-cancel').addEventListener('click', () => showForm(false));
$('new-form').addEventListener('submit', (e) => {
  e.preventDefault();
  create(e.target);
});
$('notice-close').addEventListener('click', () => {
  $('notice').hidden = true;
});
$('menu').addEventListener('click', () => setSidebar(!document.body.classList.contains('sidebar-open')));
$('scrim').addEventListener('click', () => setSidebar(false));
// Back, forward and links all change the fragment; hashchange covers them.
addEventListener('hashchange', () => open(openedFromURL()));
addEventListener('focus', refreshListSoon);

showInfo();
socket.start();
open(openedFromURL());
