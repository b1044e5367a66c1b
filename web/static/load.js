// load.js fetches the messages a conversation opens with, and older ones,
// over HTTP: in bulk, and without waiting for the socket to connect.
// index.html runs it as a module script of its own, before the rest of the
// page's modules are in, so that the conversation the URL opens is on its
// way while they load; app.js takes that first load with loadLatest.

import { decoded, fetchConversation, fetchEvents, fetchHistory, takeToken } from './api.js';

// HISTORY_PAGE is how many messages a conversation opens with, and how
// many more each load of older ones brings.
const HISTORY_PAGE = 20;

// token is the tab's bearer token ("" for none), taken from the URL once.
export const token = takeToken();

// openedFromURL returns the conversation id the URL fragment (#/c/<id>)
// opens, or null.
// A fragment that is not valid percent-encoding (a mistyped or hostile
// link) opens none.
export function openedFromURL() {
  const m = /^#\/c\/([^/?#]+)$/.exec(location.hash);
  return m === null ? null : decoded(m[1]);
}

// LOAD_TRIES is how many times latest loads a conversation that is
// deleted (and maybe created again) while it loads.
const LOAD_TRIES = 3;

// latest fetches conversation id's object (info), its latest page of
// messages (found with history) and every event from the oldest of them
// up to the conversation's last seq when asked: {info, from, more,
// events}, where from is the seq the events follow and more says whether
// older messages exist. The events are those of the conversation info
// describes: should it be deleted before they are in, and another created
// under its id, the load starts over and shows that one (nothing of the
// first was shown yet); if none has the id, it fails with not_found.
async function latest(id) {
  for (let tries = 1; ; tries++) {
    const [info, h] = await Promise.all([fetchConversation(id, token), fetchHistory(id, 0, HISTORY_PAGE, token)]);
    const more = h.has_more && h.messages.length > 0;
    const from = more ? h.messages[0].seq - 1 : 0;
    try {
      const events = await fetchEvents(id, from, info.last_seq, info.created_at, token);
      return { info, from, more, events };
    } catch (err) {
      if (err.code !== 'not_found' || tries === LOAD_TRIES) throw err;
    }
  }
}

// early is the load of the conversation the page was opened at, started
// when this module ran.
let early = null;
{
  const id = openedFromURL();
  if (id !== null) {
    early = { id, load: latest(id) };
    // Whoever takes it sees a failure; until then it is not unhandled.
    early.load.catch(() => {});
  }
}

// loadLatest returns what latest does for conversation id: the load
// started early if it is for id (once), else a new one.
export function loadLatest(id) {
  const e = early;
  early = null;
  return e?.id === id ? e.load : latest(id);
}

// loadBefore fetches the page of messages before the event seq until, with
// their events: {from, more, events}, as latest. createdAt is the
// conversation's created_at: if it was deleted since, the load fails with
// not_found, whether or not another has its id now.
export async function loadBefore(id, until, createdAt) {
  const h = await fetchHistory(id, until + 1, HISTORY_PAGE, token);
  const more = h.has_more && h.messages.length > 0;
  const from = more ? h.messages[0].seq - 1 : 0;
  const events = await fetchEvents(id, from, until, createdAt, token);
  return { from, more, events };
}

// NEWER_EVENTS is how many events a load of newer ones brings at most.
const NEWER_EVENTS = 1000;

// loadAfter fetches the events after seq after, up to until, NEWER_EVENTS
// at most, oldest first; createdAt as for loadBefore.
export function loadAfter(id, after, until, createdAt) {
  return fetchEvents(id, after, Math.min(until, after + NEWER_EVENTS), createdAt, token);
}
