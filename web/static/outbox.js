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
//
// Changing an entry reads it and writes it back: two tabs changing the
// outbox at once could write over each other's change (an entry one tab
// removed coming back from the other, say). So every change takes the
// outbox's Web Lock (navigator.locks, shared by the page's tabs), and the
// tabs' changes run one after the other. Where the browser offers no Web
// Locks (an older one, or a page that is not a secure context), they run
// one after the other within the tab only, as they are written.

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

// fits reports whether the outbox, holding entries, takes a message of
// chars characters.
function fits(entries, chars) {
  return entries.length < OUTBOX_MAX && entries.reduce((n, e) => n + e.text.length, chars) <= OUTBOX_MAX_CHARS;
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
  // Kept by pages since made was added; older ones' entries lack it.
  if (typeof e.made === 'number') entry.made = e.made;
  return entry;
}

// order sorts entries oldest first: by when they were written, then by
// client_msg_id.
export function order(a, b) {
  return a.at - b.at || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

// madeIn returns when a message written now to a conversation created
// at createdAt (its created_at, "" or undefined if unknown) was made: now,
// and never before the conversation was created, should the page's clock
// be behind the gateway's.
function madeIn(createdAt) {
  return Math.max(Date.now(), Date.parse(createdAt) || 0);
}

// address makes entry a message to send to destination (as Outbox.add
// takes it), after every one of entries.
function address(entry, { conversation, after = 0, create, createdAt }, entries) {
  entry.conversation = conversation;
  entry.after = after;
  entry.error = null;
  // After every entry there is, even should the clock go back.
  entry.at = Math.max(Date.now(), (entries.at(-1)?.at ?? 0) + 1);
  entry.made = madeIn(createdAt);
  if (create === undefined) delete entry.create;
  else entry.create = create;
}

// older returns the refused entries among entries written to a
// conversation deleted since, whose id one of conversations (conversation
// objects of the gateway's: id, created_at) names now: made before it was
// created. Those of a conversation still to create (made before it, to be
// sent to it) are not, nor those an older page kept, which do not say
// when they were made. Those to be sent are left to go, as the gateway
// cannot tell them from the new one's: a tab may be sending them.
function older(entries, conversations) {
  const since = new Map(conversations.map((c) => [c.id, Date.parse(c.created_at)]));
  const unmade = new Set(entries.filter((e) => e.create !== undefined).map((e) => e.conversation));
  return entries.filter((e) => e.error !== null && !unmade.has(e.conversation) && e.made < since.get(e.conversation));
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
// {id (the client_msg_id), conversation ("" for one whose conversation
// was deleted and whose id names a newer one now), text, error: {code,
// message} of the gateway's refusal, or null while it is to be sent,
// after: the last seq of the conversation the page had when the message
// was written, at: when (to order them), made: when it was written to its
// conversation (in ms since the epoch; a conversation created later is
// another, made under the same id; missing in the entries of older
// pages), and create: the fields of the create request that makes the
// conversation first, until it is made}.
//
// The storage is read at every call, so that the entries other tabs add
// and remove count. An entry the storage does not take (it is full, or
// off) is kept by the outbox for as long as the page is open. The changes
// (add, move, created, refused, remove, strand, drop) return promises,
// settled once made: each runs alone (see above), on the entries as they
// are when it runs.
export class Outbox {
  // pause, when a test sets it, is called by every change between reading
  // the entries and writing them, and awaited: the test holds a tab's
  // change there while another tab changes the outbox.
  static pause = null;

  // user is whom the page's token signs in ("" without a token); null,
  // for a token that names no one, keeps the entries in the page only.
  constructor(user, storage = browserStorage()) {
    this.storage = user === null ? null : storage;
    this.prefix = `${PREFIX}${encodeURIComponent(user ?? '')}/`;
    // client_msg_id → the entries the storage did not take.
    this.unsaved = new Map();
    // The tab's changes, one after the other, in the order they were asked.
    this.queue = Promise.resolve();
    // onChange, set by the page, is called after each of the tab's
    // changes is made (other tabs' come as storage events).
    this.onChange = null;
  }

  // idOf returns the client_msg_id of the entry kept under storage key
  // key, or null for a key (or null) that is not one of this outbox's.
  idOf(key) {
    return key?.startsWith(this.prefix) ? key.slice(this.prefix.length) : null;
  }

  // entries returns every entry, oldest first. Unreadable items are
  // removed (no tab writes them, so this needs no lock): they could never
  // be sent, and would take room for ever.
  get entries() {
    const entries = [...this.unsaved.values()];
    for (const key of this.keys()) {
      const id = this.idOf(key);
      if (this.unsaved.has(id)) continue;
      const e = decode(id, this.read(key));
      if (e === null) this.erase(id);
      else entries.push(e);
    }
    return entries.sort(order);
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

  // erase removes entry id from the storage and the page.
  erase(id) {
    this.unsaved.delete(id);
    try {
      this.storage?.removeItem(this.prefix + id);
    } catch {
      // Storage off: nothing kept there.
    }
  }

  // change runs decide(entries) on the entries as they are, alone (in no
  // other tab's change, nor another of this tab's, at the same time), and
  // makes the changes it returns: {put: entries to store, drop:
  // client_msg_ids to remove, result: what change resolves with}.
  change(decide) {
    const run = async () => {
      const { put = [], drop = [], result } = decide(this.entries);
      await Outbox.pause?.();
      for (const e of put) this.write(e);
      for (const id of drop) this.erase(id);
      this.onChange?.();
      return result;
    };
    const locks = globalThis.navigator?.locks;
    const done = this.queue.then(() => (locks ? locks.request(this.prefix, run) : run()));
    this.queue = done.catch(() => {});
    return done;
  }

  // edit changes entry id with fn(entry, entries), if the outbox (still)
  // has it, and resolves with it as changed, or undefined: an entry
  // another tab removed meanwhile is not brought back.
  edit(id, fn) {
    return this.change((entries) => {
      const e = entries.find((x) => x.id === id);
      if (e === undefined) return {};
      fn(e, entries);
      return { put: [e], result: e };
    });
  }

  // add takes text under client_msg_id id, to send to destination
  // ({conversation, after: the conversation's seq it was written after,
  // createdAt: the conversation's created_at, if known, create: for the
  // first message of a conversation to create, its fields}), and
  // resolves with its entry, or null when the outbox is full.
  add(id, text, destination) {
    return this.change((entries) => {
      if (!fits(entries, text.length)) return { result: null };
      const entry = { id, text };
      address(entry, destination, entries);
      return { put: [entry], result: entry };
    });
  }

  // takes reports whether the outbox takes a message of chars characters
  // now.
  takes(chars) {
    return fits(this.entries, chars);
  }

  // move makes entry id a message to send to destination (as add takes
  // it) now: one whose conversation does not exist any more, sent to
  // another. It resolves as edit does.
  move(id, destination) {
    return this.edit(id, (e, entries) => address(e, destination, entries));
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

  // created says that entry id's conversation exists, created at
  // createdAt (its created_at): its entries, written before, were made
  // for it.
  created(id, createdAt) {
    return this.change((entries) => {
      const e = entries.find((x) => x.id === id);
      if (e === undefined) return {};
      delete e.create;
      const put = entries.filter((x) => x.conversation === e.conversation);
      for (const x of put) x.made = madeIn(createdAt);
      return { put };
    });
  }

  // get returns entry id, or undefined if the outbox does not have it
  // (acknowledged or discarded, maybe in another tab).
  get(id) {
    return this.entries.find((e) => e.id === id);
  }

  // refused records the gateway's refusal of entry id (null: to be sent
  // again, unless it has no conversation to go to: see strandOlder), and
  // resolves as edit does.
  refused(id, error) {
    return this.edit(id, (e) => {
      if (error === null && e.conversation === '') return;
      e.error = error === null ? null : { code: error.code ?? '', message: error.message ?? '' };
    });
  }

  // remove drops entry id: acknowledged or discarded.
  remove(id) {
    return this.change(() => ({ drop: [id] }));
  }

  // strand records that conversation was deleted elsewhere, as the
  // gateway would refuse its entries (not_found), and resolves with how
  // many it had: they wait, refused, to be sent to another conversation or
  // discarded.
  strand(conversation) {
    return this.change((entries) => {
      const put = entries.filter((e) => e.conversation === conversation);
      for (const e of put) e.error = { ...DELETED };
      return { put, result: put.length };
    });
  }

  // strandOlder strands the entries written to a conversation deleted
  // since, whose id one of conversations (conversation objects: id,
  // created_at) names now, as strand does, and resolves with them: they
  // are not that one's. They keep no conversation (""), to show in every
  // view, that one's too.
  strandOlder(conversations) {
    if (older(this.entries, conversations).length === 0) return Promise.resolve([]);
    return this.change((entries) => {
      const put = older(entries, conversations);
      for (const e of put) {
        e.conversation = '';
        e.error = { ...DELETED };
      }
      return { put, result: put };
    });
  }

  // drop removes every entry of conversation (it was deleted).
  drop(conversation) {
    return this.change((entries) => ({ drop: entries.filter((e) => e.conversation === conversation).map((e) => e.id) }));
  }
}
