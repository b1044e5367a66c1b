// app.js wires the page: the socket's events go to the view, the sidebar
// and composer turn clicks and keys into requests, and the URL fragment
// (#/c/<id>) says which conversation is open.

import { fetchConversation, fetchInfo, refusal, tokenUser } from './api.js';
import { el } from './dom.js';
import { loadAfter, loadBefore, loadLatest, openedFromURL, token } from './load.js';
import { Outbox, OUTBOX_MAX_CHARS, stranded } from './outbox.js';
import { Sidebar } from './sidebar.js';
import { GatewaySocket, RequestError, wsURL } from './socket.js';
import { KINDS } from './tools.js';
import { ConversationView } from './view.js';

const $ = (id) => document.getElementById(id);

const STATUS_TEXT = {
  connecting: 'Connecting…',
  connected: 'Connected',
  reconnecting: 'Reconnecting…',
  refused: 'Not signed in',
};
const LIST_REFRESH_MS = 250;

let current = null;
// opened is the open conversation's object as opening it fetched it; the
// sidebar's, when it has it, is newer (see Sidebar.replace).
let opened = null;
// opening counts open calls, so that a slow history reply for a
// conversation left meanwhile is dropped.
let opening = 0;
// loading holds, for older and newer, the opening (its count) whose load
// of such messages is on its way, or 0: a load for a conversation left
// meanwhile must not stop the one open now from loading its own.
const loading = { older: 0, newer: 0 };
let defaultModel = '';
let listTimer = 0;
// The agents the gateway offers this user (none from a v1 gateway).
let agents = [];

// The messages sent and not yet acknowledged, kept across reloads and
// after the tab is closed, for this user's tabs.
const outbox = new Outbox(tokenUser(token));
outbox.onChange = outboxChanged;

// answered shows a failed answer to a tool call and passes the failure on
// to the card, which enables its buttons again.
function answered(promise) {
  return promise.catch((err) => {
    showNotice(err);
    throw err;
  });
}

const view = new ConversationView($('messages'), {
  onRunning: (turn) => {
    // Hidden with the focus, Stop would take the keyboard with it.
    if (turn === null && document.activeElement === $('stop')) $('input').focus();
    $('stop').hidden = turn === null;
  },
  answer: {
    approve: (call, approved, reason) => {
      const frame = { type: 'approve', conversation: current, call, approved };
      if (reason) frame.reason = reason;
      return answered(socket.request(frame));
    },
    output: (call, result) => answered(socket.request({ type: 'tool_output', conversation: current, call, ...result })),
  },
  loadOlder: () => loadMore('older', (id, createdAt) => {
    const until = view.from;
    return loadBefore(id, until, createdAt).then(({ from, more, events }) => () => view.prepend(events, from, more, until));
  }),
  loadNewer: () => loadMore('newer', (id, createdAt) => {
    const until = view.until;
    return loadAfter(id, until, view.lastSeq, createdAt).then((events) => () => view.catchUp(events, until));
  }),
  unsent: {
    retry: async (id) => {
      const e = outbox.get(id);
      // One whose conversation is gone goes to the one open.
      const entry = e !== undefined && stranded(e, current) ? await outbox.move(id, destination(e.text)) : await outbox.refused(id, null);
      // Discarded in another tab meanwhile.
      if (entry === undefined) {
        view.unpend(id);
        return;
      }
      view.update(entry);
      // Stranded meanwhile (see Outbox.strandOlder), it stays to send here.
      if (entry.error === null) deliver(entry);
    },
    discard: (id) => {
      view.unpend(id);
      outbox.remove(id);
    },
  },
  home: $('input'),
});
const sidebar = new Sidebar($('conversations'), {
  list: (before, limit) => {
    const frame = { type: 'list', limit };
    if (before !== null) frame.before = before;
    return socket.request(frame);
  },
  onDelete: remove,
  home: $('new-toggle'),
  onError: (err) => {
    if (err.code !== 'disconnected') showNotice(err);
  },
});
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
    // cancel names no turn: one kept for the reconnect would stop
    // whichever turn runs then, maybe a later one. Stop works connected.
    $('stop').disabled = state !== 'connected';
    if (state === 'connected') {
      refreshList();
      loadAgents();
      deliverKept();
    }
  },
  onGone: gone,
  // The gateway refuses the token (expired, invalid, missing): retrying
  // cannot help, a new token can.
  refused: async () => {
    const err = await refusal(token);
    if (err === null) return null;
    const text =
      token === ''
        ? 'This gateway needs a token: open the page as /#token=…'
        : `Your sign-in is invalid or has expired (${err.message}). Open the page again with a new token (/#token=…).`;
    return new RequestError('unauthorized', text);
  },
  onRefused: (err) => showNotice(err, err.message),
  onError: (err) => {
    if (err.conversation !== undefined && err.conversation === current && err.code === 'not_found') {
      notFound(err, current);
      return;
    }
    showNotice(err);
  },
});

// gone says that conversation id, which the page may show, was deleted
// (and maybe another created under its id since): missed, when the page
// learnt it later than the deleted frame would have told it.
async function gone(id, missed) {
  // Deleted elsewhere, its unsent messages are not lost with it: refused,
  // they show in the view the page opens instead, as in any other, to
  // send there or discard (shownHere); another conversation open shows
  // them at once. Deleted here, they go with it (remove).
  const unsent = deleting.has(id) ? 0 : await outbox.strand(id);
  if (id === current) {
    navigate(null);
    // A deleted frame comes while the page is connected, as the delete
    // happens; a delete the page missed while away it did not see.
    if (unsent > 0) showNotice({ code: 'not_found' }, `${DELETED} ${UNSENT_SHOWN}`);
    else if (missed) showNotice({ code: 'not_found' }, DELETED);
  } else if (unsent > 0) {
    showStranded();
  }
  refreshListSoon();
}

const NOT_FOUND = 'This conversation does not exist (any more).';
const DELETED = 'The conversation you had open was deleted.';
const UNSENT_SHOWN = 'Its messages not sent yet are shown below, to send here or discard.';

// noticeAbout is the conversation the notice shown is about (that it does
// not exist), null for other notices: opening another conversation hides
// it, which would otherwise seem to say that one does not exist.
let noticeAbout = null;

// notFound says that conversation id, being opened (or asked about by
// findGone), does not exist and takes it off the list: deleted elsewhere, it may still be listed here.
// Its unsent messages (it was deleted elsewhere while they waited) are
// not lost with it: the page opens a new chat's view instead, where they
// show, as gone() does.
async function notFound(err, id) {
  sidebar.remove(id);
  const unsent = await outbox.strand(id);
  // Left meanwhile: the view open now shows them, as gone() does.
  if (id !== current) {
    if (unsent > 0) showStranded();
    return;
  }
  if (unsent > 0) {
    navigate(null);
    showNotice(err, `${NOT_FOUND} ${UNSENT_SHOWN}`);
    return;
  }
  showNotice(err, NOT_FOUND, id);
  view.notFound();
}

// asking holds the conversations findGone is asking about.
const asking = new Set();

// alive holds the refused entries (their client_msg_ids) whose
// conversation findGone found to exist: it is not asked about again for
// them, at every refresh of a list that does not have it (not loaded
// that far, say), but only for an entry refused since.
const alive = new Set();

// findGone asks whether the conversations exist whose refused messages
// (busy, say) only their own view shows, when that view is not open and
// the list does not have them: deleted elsewhere while the page did not
// follow them, no deleted frame told it, and their messages, which no
// page sends again, could otherwise neither be seen nor discarded, and
// would fill the outbox for good. One found gone strands them, as
// notFound does; one found to exist is asked about again only for a
// message refused since (see alive).
function findGone() {
  const refused = outbox.entries.filter((e) => e.error !== null && e.error.code !== 'not_found' && e.create === undefined);
  // Those gone from the outbox (or refused no more) go from alive.
  const ids = new Set(refused.map((e) => e.id));
  for (const id of alive) {
    if (!ids.has(id)) alive.delete(id);
  }
  for (const id of new Set(refused.filter((e) => !alive.has(e.id)).map((e) => e.conversation))) {
    if (id === current || sidebar.get(id) !== undefined || asking.has(id)) continue;
    asking.add(id);
    const asked = refused.filter((e) => e.conversation === id);
    fetchConversation(id, token)
      .then((c) => {
        for (const e of asked) alive.add(e.id);
        return strandOlder([c]);
      })
      .catch((err) => {
        if (err.code === 'not_found') notFound(err, id);
      })
      .finally(() => asking.delete(id));
  }
}

// strandOlder strands the outbox's entries written to a conversation
// deleted since, whose id one of conversations (the gateway's objects)
// names now (see Outbox.strandOlder): that one is another conversation,
// not theirs. As those of a conversation found gone, they show in the
// open view, that one's too, to send there or discard.
async function strandOlder(conversations) {
  const older = await outbox.strandOlder(conversations);
  if (older.length === 0) return;
  for (const e of older) view.update(e);
  showStranded();
}

function showNotice(err, text, about = null) {
  noticeAbout = about;
  $('notice').dataset.code = err.code ?? '';
  $('notice-text').textContent = text ?? (err.code ? `${err.code}: ${err.message}` : err.message);
  $('notice').hidden = false;
}

// shownHere returns the outbox's entries the open view shows: the open
// conversation's messages (a new conversation's view: those of the
// conversations still to be created), and, in every view, those refused
// because their conversation is gone.
function shownHere() {
  const own = current === null ? outbox.uncreated() : outbox.of(current);
  const ids = new Set(own.map((e) => e.id));
  return [...own, ...outbox.entries.filter((e) => !ids.has(e.id) && stranded(e, current))];
}

// showPending shows the outbox's entries the open view shows that it
// does not show yet.
function showPending() {
  for (const entry of shownHere()) {
    if (!view.shows(entry.id)) view.pending(entry);
  }
}

// showStranded shows, in the open view, the messages that another
// conversation, found gone, left unsent, and says so.
function showStranded() {
  showPending();
  showNotice({ code: 'not_found' }, STRANDED);
}

// open shows conversation id (null: none): its latest page of messages
// with all their events (tool calls, thinking, a running turn), from
// loadLatest, then everything live from the socket. byUser, for a
// conversation the user opened, gives the composer the keyboard and
// closes the sidebar (shown over the page at phone width); one opened by
// the page (the open one was deleted elsewhere, a new one made) leaves
// both as the user has them.
async function open(id, { byUser = false } = {}) {
  if (id === current) return;
  if (current !== null) socket.unsubscribe(current);
  if (noticeAbout !== null && noticeAbout !== id) $('notice').hidden = true;
  current = id;
  const mine = ++opening;
  view.reset(id);
  showPending();
  // A full outbox's notice counts the messages this view shows.
  outboxChanged();
  sidebar.highlight(id);
  heading();
  if (byUser) {
    setSidebar(false);
    $('input').focus();
  }
  if (id === null) return;
  let from = 0;
  let more = false;
  let events = [];
  // The fetched events are of the conversation created then: subscribing
  // with its created_at, the page resumes that one and no other.
  let createdAt = '';
  // replaced says that the list had another conversation of the id.
  let replaced = false;
  try {
    const loaded = await loadLatest(id);
    if (mine !== opening) return;
    ({ from, more, events } = loaded);
    opened = loaded.info;
    createdAt = loaded.info.created_at;
    replaced = sidebar.replace(opened);
    strandOlder([opened]);
  } catch (err) {
    if (mine !== opening) return;
    if (err.code === 'not_found') {
      notFound(err, id);
      return;
    }
    // Otherwise (a lost connection, a failed fetch) the subscription
    // below replays the events instead.
    events = [];
  }
  if (mine !== opening) return;
  heading();
  // A conversation just made (or made elsewhere) is not listed yet, nor,
  // in its place, one made again under a listed id; its fetched events
  // went to the view without passing onEvent.
  if (replaced || sidebar.get(id) === undefined) refreshListSoon();
  view.start(from, more);
  for (const ev of events) view.apply(ev);
  const last = events.at(-1)?.seq ?? from;
  // With the fetched events shown, the conversation is open; later ones
  // come live. (After a failed fetch, it is open once the socket's replay
  // reaches the seq of its subscribed reply.)
  if (events.length > 0) view.ready(last);
  socket.subscribe(id, last, (seq) => view.ready(seq), createdAt);
}

// loadMore runs load(id, createdAt), a load of the open conversation's
// messages before or after the ones shown (way: older or newer, one of
// each at a time), and calls the function it resolves to, which shows
// them, unless the conversation was left meanwhile.
async function loadMore(way, load) {
  if (loading[way] === opening || current === null) return;
  const id = current;
  const mine = opening;
  loading[way] = mine;
  try {
    const show = await load(id, opened?.id === id ? opened.created_at : '');
    if (mine === opening) show();
  } catch (err) {
    if (mine !== opening) return;
    // The conversation shown is gone: as when a subscribe finds it so.
    if (err.code === 'not_found') gone(id, true);
    else showNotice(err);
  } finally {
    if (loading[way] === mine) loading[way] = 0;
  }
}

function navigate(id, options) {
  open(id, options);
  const hash = id === null ? '' : `#/c/${encodeURIComponent(id)}`;
  if (location.hash !== hash) history.pushState(null, '', hash === '' ? location.pathname : hash);
}

function heading() {
  const c = current === null ? undefined : (sidebar.get(current) ?? (opened?.id === current ? opened : undefined));
  $('title').textContent = current === null ? 'New conversation' : c?.title || 'Untitled';
  $('model').textContent = c?.model || defaultModel;
  const agent = c?.agent ? agents.find((a) => a.name === c.agent) : undefined;
  $('agent').hidden = !c?.agent;
  $('agent').textContent = c?.agent ?? '';
  $('agent').title = agent?.description ?? '';
  const tools = (agent?.tools ?? []).map((t) => {
    const chip = el('span', 'tool-chip', { testid: 'agent-tool', text: t.name });
    chip.dataset.kind = t.kind ?? '';
    chip.title = `${KINDS[t.kind] ?? t.kind ?? ''} tool${t.description ? `: ${t.description}` : ''}`;
    return chip;
  });
  $('agent-tools').replaceChildren(...tools);
}

// loadAgents asks for the agents this user may pick; a gateway without
// agents answers unknown_type, and the form then offers none.
async function loadAgents() {
  try {
    const reply = await socket.request({ type: 'agents' });
    agents = reply.agents ?? [];
  } catch {
    agents = [];
  }
  const select = $('new-form').elements.agent;
  const chosen = select.value;
  const options = agents.map((a) => {
    const o = el('option', '', { text: a.name });
    o.value = a.name;
    return o;
  });
  select.replaceChildren(select.options[0], ...options);
  select.value = agents.some((a) => a.name === chosen) ? chosen : '';
  $('agent-field').hidden = agents.length === 0;
  agentChosen();
  heading();
}

// agentChosen shows the chosen agent's description; with an agent, the
// system prompt and model are the agent's.
function agentChosen() {
  const form = $('new-form');
  const agent = agents.find((a) => a.name === form.elements.agent.value);
  $('agent-description').textContent = agent?.description ?? '';
  $('agent-description').hidden = agent === undefined;
  for (const name of ['system', 'model']) form.elements[name].disabled = agent !== undefined;
}

async function refreshList() {
  try {
    await sidebar.refresh();
    heading();
    strandOlder(outbox.entries.map((e) => sidebar.get(e.conversation)).filter((c) => c !== undefined));
    findGone();
  } catch (err) {
    if (err.code !== 'disconnected') showNotice(err);
  }
}

function refreshListSoon() {
  clearTimeout(listTimer);
  listTimer = setTimeout(refreshList, LIST_REFRESH_MS);
}

// randomID returns 32 random hex digits: a send's client_msg_id, which
// makes it idempotent, or a new conversation's id. crypto.randomUUID needs
// a secure context; this does not.
function randomID() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

// TITLE_MAX is how much of a first message titles its conversation.
const TITLE_MAX = 80;

function titleOf(text) {
  const line = text.trim().split('\n')[0];
  return line.length <= TITLE_MAX ? line : `${line.slice(0, TITLE_MAX - 1)}…`;
}

const OUTBOX_FULL =
  'Too many messages are waiting to be sent: this one stays in the box until some of them are sent, or discarded where they show:';
const TOO_LONG = 'This message is too long to send: it stays in the box, to shorten.';

// destination returns where message text, sent now, goes (as Outbox.add
// takes it): to the open conversation (with its created_at, if the page
// has loaded it), after the events shown. In a new conversation's view, a
// first message creates its conversation first (under an id the page
// chooses, so that the create can be sent again), titled as the gateway
// would title it; the next ones, until it is made, go to it too.
function destination(text) {
  if (current !== null) return { conversation: current, after: view.lastSeq, createdAt: opened?.id === current ? opened.created_at : undefined };
  const unmade = outbox.uncreated().find((e) => view.shows(e.id));
  if (unmade !== undefined) return { conversation: unmade.conversation };
  return { conversation: `c_${randomID()}`, create: { title: titleOf(text) } };
}

// submit puts the composer's text in the outbox, shows it pending and
// sends it.
function submit() {
  const input = $('input');
  const text = input.value;
  if (text.trim() === '') return;
  // A page whose credentials are refused has stopped: the text stays in
  // the composer rather than wait for a connection that cannot come.
  if (socket.refusal !== null) {
    showNotice(socket.refusal, socket.refusal.message);
    return;
  }
  // Longer than the whole outbox takes: it could never be kept, whatever
  // else waits.
  if (text.length > OUTBOX_MAX_CHARS) {
    showNotice({ code: 'too_large' }, TOO_LONG);
    return;
  }
  input.value = '';
  keeping = keeping.then(() => keep(text)).catch(showNotice);
}

// keeping is the last message's way into the outbox: each waits for the
// one before, so that the next message written in a new conversation's
// view goes to the conversation the first one creates.
let keeping = Promise.resolve();

// keep puts text, just sent, in the outbox, shows it pending and sends
// it. Refused by a full outbox, it goes back to the composer, unless
// something else was typed meanwhile.
async function keep(text) {
  const entry = await outbox.add(randomID(), text, destination(text));
  if (entry === null) {
    const input = $('input');
    if (input.value === '') input.value = text;
    refusedChars = text.length;
    showOutboxFull();
    return;
  }
  // Shown unless the user left its view meanwhile.
  if (shownHere().some((e) => e.id === entry.id)) view.pending(entry);
  deliver(entry);
}

// refusedChars is the length of the message the full outbox refused
// last: the notice that says so goes once the outbox takes one as long.
let refusedChars = 0;

// outboxChanged keeps the full outbox's notice, while it shows, true to
// the outbox and the view open, as both change: it counts the messages
// where they show now, or goes once the outbox has room.
function outboxChanged() {
  const notice = $('notice');
  if (notice.hidden || notice.dataset.code !== 'outbox_full') return;
  if (!outbox.takes(refusedChars)) {
    showOutboxFull();
    return;
  }
  // The keyboard, if it was on one of its links, goes to the composer.
  if (notice.contains(document.activeElement)) $('input').focus();
  notice.hidden = true;
}

// showOutboxFull says that the outbox is full, and where its messages
// show, to send or discard: how many here, and links to the other views
// that show them (their conversations', a new chat's for those of
// conversations still to create). Drawn again, it leaves the keyboard
// on the link it was on, or, if that one is gone, in the composer.
function showOutboxFull() {
  const focused = $('notice-text').contains(document.activeElement) ? document.activeElement.getAttribute('href') : null;
  showNotice({ code: 'outbox_full' }, OUTBOX_FULL);
  const here = shownHere();
  const ids = new Set(here.map((e) => e.id));
  const unmade = new Set(outbox.uncreated().map((e) => e.id));
  // The other views' links (#/c/<id>, # for a new chat's) → {title, count}.
  const elsewhere = new Map();
  for (const e of outbox.entries) {
    if (ids.has(e.id)) continue;
    const made = !unmade.has(e.id);
    const href = made ? `#/c/${encodeURIComponent(e.conversation)}` : '#';
    const title = made ? sidebar.get(e.conversation)?.title || e.conversation : 'New chat';
    const place = elsewhere.get(href) ?? { title, count: 0 };
    place.count++;
    elsewhere.set(href, place);
  }
  const places = here.length > 0 ? [`below (${here.length})`] : [];
  for (const [href, { title, count }] of elsewhere) {
    const a = el('a', '', { testid: 'outbox-place', text: `${title} (${count})` });
    a.href = href;
    places.push(a);
  }
  places.forEach((p, i) => $('notice-text').append(i === 0 ? ' ' : ', ', p));
  if (focused !== null) (places.find((p) => p.getAttribute?.('href') === focused) ?? $('input')).focus();
}

// sending is the last deliver's issue: each waits for the one before, so
// that the messages go out in the order they were sent, each after the
// create of its conversation.
let sending = Promise.resolve();

// delivering holds the client_msg_ids of the entries this tab is
// sending, from deliver until the gateway's answer.
const delivering = new Set();

// deliver sends the outbox's entry, after a reconnect too, with its
// client_msg_id: the gateway stores it once however often it comes.
// Acknowledged, it leaves the outbox (the view shows the stored message
// in its place); refused, it stays and shows why, until it is sent again
// or discarded.
function deliver(entry) {
  if (delivering.has(entry.id)) return;
  delivering.add(entry.id);
  sending = sending.then(() => issue(entry));
}

// deliverKept sends the outbox's entries that are to be sent and that
// this tab is not sending: those a reload interrupted, and those a tab
// closed before it could send them.
function deliverKept() {
  for (const entry of outbox.entries) {
    if (entry.error === null) deliver(entry);
  }
}

// issue sends entry, after creating its conversation if it is to be made
// (then opening it, if the new conversation's view shows the entry), and
// settles it when the answer comes.
async function issue(entry) {
  let ack;
  try {
    if (entry.create) {
      const made = await createConversation(entry.create, entry.conversation);
      await outbox.created(entry.id, made.created_at);
      if (current === null && view.shows(entry.id)) navigate(entry.conversation);
    }
    const frame = { type: 'send', conversation: entry.conversation, text: entry.text, client_msg_id: entry.id };
    ack = socket.request(frame, { retry: true });
  } catch (err) {
    delivering.delete(entry.id);
    unsent(entry, err);
    return;
  }
  ack
    .then((reply) => {
      // Told before the outbox's change: the message event, which comes
      // after the ack, may come meanwhile.
      view.acked(entry.id, reply.message?.seq);
      return outbox.remove(entry.id);
    }, (err) => unsent(entry, err))
    .finally(() => delivering.delete(entry.id));
}

// unsent shows the gateway's refusal of entry.
async function unsent(entry, err) {
  // Refused credentials stop the page (it says so): the message says so
  // too, and stays in the outbox as it was, to go when a page opens with
  // a valid token of the same user.
  const e = err === socket.refusal ? outbox.get(entry.id) : await outbox.refused(entry.id, err);
  if (e === undefined) return;
  const shown = err === socket.refusal ? { ...e, error: err } : e;
  // One the view took for a stored message (see ConversationView.copyOf)
  // was not: it shows again, with the refusal.
  if (view.shows(e.id)) view.update(shown);
  else if (shownHere().some((h) => h.id === e.id)) view.pending(shown);
  if (stranded(shown, current)) showNotice(err, STRANDED);
}

const STRANDED = 'A message was not sent: its conversation no longer exists. It is shown below, to send here or discard.';

// createConversation creates a conversation with the fields of frame and
// returns it (the gateway's conversation object). The page chooses the
// id, so that the create can be sent again when the connection is lost
// before its reply (or the outbox sends it again after a reload): if the
// first one was stored, the second answers bad_request (the id exists),
// and the conversation is there to fetch.
async function createConversation(frame, id = `c_${randomID()}`) {
  try {
    const reply = await socket.request({ ...frame, type: 'create', conversation: id }, { retry: true });
    return reply.info;
  } catch (err) {
    if (err.code !== 'bad_request') throw err;
    return fetchConversation(id, token).catch(() => {
      throw err;
    });
  }
}

async function create(form) {
  // Enter pressed twice, or a double click, would otherwise create two.
  if (form.dataset.busy === 'true') return;
  form.dataset.busy = 'true';
  const frame = {};
  for (const name of ['title', 'system', 'model', 'agent']) {
    const field = form.elements[name];
    const v = field.value.trim();
    if (v !== '' && !field.disabled) frame[name] = v;
  }
  try {
    const { id } = await createConversation(frame);
    form.reset();
    agentChosen();
    showForm(false);
    await refreshList();
    navigate(id, { byUser: true });
  } catch (err) {
    showNotice(err);
  } finally {
    form.dataset.busy = 'false';
  }
}

// deleting holds the conversations this tab is deleting, until the
// gateway answers: the deleted frame of one open here may come first.
const deleting = new Set();

async function remove(id) {
  deleting.add(id);
  try {
    await socket.request({ type: 'delete', conversation: id });
    // Its unsent messages go with it, whether or not it was open: no
    // page would show them any more.
    await outbox.drop(id);
    // The keyboard stays in the sidebar (see Sidebar.draw), where the
    // user is.
    if (id === current) navigate(null);
    await refreshList();
  } catch (err) {
    showNotice(err);
  } finally {
    deleting.delete(id);
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
  // A click on Send leaves the keyboard in the composer, for the next one.
  $('input').focus();
  submit();
});
$('input').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    submit();
  }
});
$('stop').addEventListener('click', () => {
  if (current === null || !socket.connected()) return;
  socket.request({ type: 'cancel', conversation: current }).catch(showNotice);
});
$('new-toggle').addEventListener('click', () => showForm($('new-form').hidden));
$('new-cancel').addEventListener('click', () => showForm(false));
$('new-form').elements.agent.addEventListener('change', agentChosen);
$('new-form').addEventListener('submit', (e) => {
  e.preventDefault();
  create(e.target);
});
$('notice-close').addEventListener('click', () => {
  $('notice').hidden = true;
});
$('menu').addEventListener('click', () => setSidebar(!document.body.classList.contains('sidebar-open')));
$('scrim').addEventListener('click', () => setSidebar(false));
// Other tabs change the outbox too (a tab is not told of its own
// changes): a message they sent or discarded, or send to a conversation
// this view does not show, goes from it; one they send again here shows
// as sending; one refused there that this view shows (its own, or one
// whose conversation is gone) shows here too, as after a reload. One that
// another tab sends to the open conversation does not: its message event
// is on its way.
addEventListener('storage', (e) => {
  const id = outbox.idOf(e.key);
  if (id === null) return;
  const entry = shownHere().find((h) => h.id === id);
  if (entry !== undefined && entry.error !== null && !view.shows(id)) view.pending(entry);
  else view.changedElsewhere(id, entry);
  outboxChanged();
});
// Back, forward and links all change the fragment; hashchange covers them.
addEventListener('hashchange', () => open(openedFromURL(), { byUser: true }));
addEventListener('focus', refreshListSoon);

// The messages a reload interrupted go out first once connected.
showPending();
deliverKept();
// The conversation the URL opens comes first: the socket, the sidebar and
// the gateway's info start once it is shown (or failed to be).
open(openedFromURL(), { byUser: true }).finally(() => {
  showInfo();
  findGone();
  socket.start();
});
