// outbox.js keeps the messages the user sent that the gateway has not
// acknowledged yet, each with the client_msg_id it is sent with, in the
// browser's localStorage: a message typed while the gateway is out of
// reach survives a reload, and the tab being closed, and goes out, under
// the same id, once a page of the user's is connected again.
//
// Every tab of the page shares the storage, so every tab may send an
// entry: the gateway stores a send whose id it already has only once, and
// answers it with the first one's ack, so two tabs sending one entry store
// it once. Each entry is an item of its own (gateway.outbox/<user>/<id>),
// so that tabs adding and removing entries at once never write over each
// other's; an entry leaves only when acknowledged, or discarded by the
// user after a refusal. <user> is whom the tab's token signs in: another
// user's tab neither shows nor sends the entry.

const PREFIX = 'gateway.outbox/';

// The outbox holds at most OUTBOX_MAX messages, and at most
// OUTBOX_MAX_CHARS characters of text in all: a gateway that stays out of
// reach cannot make it grow without bound. A message beyond either limit
// is not taken (add returns null). 16: a conversation's whole outbox,
// sent at once, fits in the turns the gateway queues behind a running one.
export const OUTBOX_MAX = 16;
export const OUTBOX_MAX_CHARS = 512 * 1024;

// stranded reports whether entry is a message the gateway refused because
// its conversation does not exist (deleted, maybe elsewhere), while
// another is open: the page shows it in whichever is, to send there or
// discard.
export function stranded(entry, open) {
  return entry.error?.code === 'not_found' && entry.conversation !== open;
}

// DELETED is the refusal strand records.
const DELETED = { code: 'not_found', message: 'its conversation was deleted' };

// decode returns the entry stored as json under client_msg_id id, or null
// if it is not one (corrupt, or of an unknown shape).
function decode(id, json) {
  let e;
  try {
    e = JSON.parse(json);
  } catch {
    return null;
  }
  if (typeof e?.conversation !== 'string' || typeof e.text !== 'string' || typeof e.at !== 'number') return null;
  const error = e.error && typeof e.error === 'object' ? { code: String(e.error.code ?? ''), message: String(e.error.message ?? '') } : null;
  const entry = { id, conversation: e.conversation, text: e.text, error, after: Number(e.after) || 0, at: e.at };
  if (e.create && typeof e.create === 'object') entry.create = e.create;
  return entry;
}

// address makes entry a message to send to destination (as Outbox.add
// takes it), after every one of entries.
function address(entry, { conversation, after = 0, create }, entries) {
  entry.conversation = conversation;
  entry.after = after;
  entry.error = null;
  // After every entry there is, even should the clock go back.
  entry.at = Math.max(Date.now(), (entries.at(-1)?.at ?? 0) + 1);
  if (create === undefined) delete entry.create;
  else entry.create = create;
}

// browserStorage returns localStorage, or null where the browser keeps the
// page from it (reading it then throws).
function browserStorage() {
  try {
    return localStorage;
  } catch {
    return null;
  }
}

// Outbox is a user's list of unacknowledged messages, oldest first:
// {id (the client_msg_id), conversation, text, error: {code, message} of
// the gateway's refusal, or null while it is to be sent, after: the last
// seq of the conversation the page had when the message was written,
// at: when (to order them), and create: the fields of the create request
// that makes the conversation first, until it is made}.
//
// The storage is read at every call, so that the entries other tabs add
// and remove count. An entry the storage does not take (it is full, or
// off) is kept by the outbox for as long as the page is open.
export class Outbox {
  // user is whom the page's token signs in ("" without a token); null,
  // for a token that names no one, keeps the entries in the page only.
  constructor(user, storage = browserStorage()) {
    this.storage = user === null ? null : storage;
    this.prefix = `${PREFIX}${encodeURIComponent(user ?? '')}/`;
    // client_msg_id → the entries the storage did not take.
    this.unsaved = new Map();
  }

  // idOf returns the client_msg_id of the entry kept under storage key
  // key, or null for a key (or null) that is not one of this outbox's.
  idOf(key) {
    return key?.startsWith(this.prefix) ? key.slice(this.prefix.length) : null;
  }

  // entries returns every entry, oldest first. Unreadable items are
  // removed: they could never be sent, and would take room for ever.
  get entries() {
    const entries = [...this.unsaved.values()];
    for (const key of this.keys()) {
      const id = this.idOf(key);
      if (this.unsaved.has(id)) continue;
      const e = decode(id, this.read(key));
      if (e === null) this.remove(id);
      else entries.push(e);
    }
    return entries.sort((a, b) => a.at - b.at || (a.id < b.id ? -1 : 1));
  }

  keys() {
    const keys = [];
    try {
      for (let i = 0; i < (this.storage?.length ?? 0); i++) {
        const key = this.storage.key(i);
        if (this.idOf(key) !== null) keys.push(key);
      }
    } catch {
      // Storage off: only the unsaved entries.
    }
    return keys;
  }

  read(key) {
    try {
      return this.storage.getItem(key);
    } catch {
      return null;
    }
  }

  // write stores entry e, or keeps it in the page if the storage will not
  // take it: full, off, or none (this.storage null).
  write(e) {
    const { id, ...stored } = e;
    try {
      this.storage.setItem(this.prefix + id, JSON.stringify(stored));
      this.unsaved.delete(id);
    } catch {
      this.unsaved.set(id, e);
    }
  }

  // change applies fn to entry id, if the outbox (still) has it, and
  // stores it: an entry another tab removed meanwhile is not brought back.
  change(id, fn) {
    const e = this.get(id);
    if (e === undefined) return;
    fn(e);
    this.write(e);
  }

  // add takes text under client_msg_id id, to send to destination
  // ({conversation, after: the conversation's seq it was written after,
  // create: for the first message of a conversation to create, its
  // fields}), and returns its entry, or null when the outbox is full.
  add(id, text, destination) {
    const entries = this.entries;
    const chars = entries.reduce((n, e) => n + e.text.length, text.length);
    if (entries.length >= OUTBOX_MAX || chars > OUTBOX_MAX_CHARS) return null;
    const entry = { id, text };
    address(entry, destination, entries);
    this.write(entry);
    return entry;
  }

  // move makes entry id a message to send to destination (as add takes
  // it) now: one whose conversation does not exist any more, sent to
  // another.
  move(id, destination) {
    const entries = this.entries;
    this.change(id, (e) => address(e, destination, entries));
  }

  // of returns conversation's entries, oldest first.
  of(conversation) {
    return this.entries.filter((e) => e.conversation === conversation);
  }

  // uncreated returns the entries of the conversations still to create.
  uncreated() {
    const entries = this.entries;
    const unmade = new Set(entries.filter((e) => e.create !== undefined).map((e) => e.conversation));
    return entries.filter((e) => unmade.has(e.conversation));
  }

  // created says that entry id's conversation exists.
  created(id) {
    this.change(id, (e) => delete e.create);
  }

  // get returns entry id, or undefined if the outbox does not have it
  // (acknowledged or discarded, maybe in another tab).
  get(id) {
    return this.entries.find((e) => e.id === id);
  }

  // refused records the gateway's refusal of entry id (null: to be sent
  // again).
  refused(id, error) {
    this.change(id, (e) => {
      e.error = error === null ? null : { code: error.code ?? '', message: error.message ?? '' };
    });
  }

  // remove drops entry id: acknowledged, discarded, or unreadable.
  remove(id) {
    this.unsaved.delete(id);
    try {
      this.storage?.removeItem(this.prefix + id);
    } catch {
      // Storage off: nothing kept there.
    }
  }

  // strand records that conversation was deleted elsewhere, as the
  // gateway would refuse its entries (not_found), and returns how many it
  // had: they wait, refused, to be sent to another conversation or
  // discarded.
  strand(conversation) {
    const entries = this.of(conversation);
    for (const e of entries) this.refused(e.id, DELETED);
    return entries.length;
  }

  // drop removes every entry of conversation (it was deleted).
  drop(conversation) {
    for (const e of this.of(conversation)) this.remove(e.id);
  }
}
