// outbox.js keeps the messages the user sent that the gateway has not
// acknowledged yet, each with the client_msg_id it is sent with, in this
// tab's sessionStorage: a message typed while the gateway is out of reach
// survives a reload of the tab, and goes out, under the same id, once the
// page is connected again (the gateway stores a send whose id it already
// has only once). sessionStorage, not localStorage: it belongs to this tab
// as the token does, so two tabs never both show (and send) one message,
// and a token of another user in another tab never sends it.

const KEY = 'gateway.outbox';

// The outbox holds at most OUTBOX_MAX messages, and at most
// OUTBOX_MAX_CHARS characters of text in all: a gateway that stays out of
// reach cannot make it grow without bound. A message beyond either limit
// is not taken (add returns null). 16: a conversation's whole outbox,
// sent at once, fits in the turns the gateway queues behind a running one.
export const OUTBOX_MAX = 16;
export const OUTBOX_MAX_CHARS = 512 * 1024;

function valid(e) {
  return typeof e?.id === 'string' && typeof e.conversation === 'string' && typeof e.text === 'string';
}

// Outbox is the tab's list of unacknowledged messages, oldest first:
// {id (the client_msg_id), conversation, text, error: {code, message} of
// the gateway's refusal, or null while it is to be sent, and create: the
// fields of the create request that makes the conversation first, until
// it is made}.
export class Outbox {
  constructor(storage = sessionStorage) {
    this.storage = storage;
    this.entries = [];
    try {
      const stored = JSON.parse(storage.getItem(KEY) ?? '[]');
      if (Array.isArray(stored)) this.entries = stored.filter(valid).slice(0, OUTBOX_MAX);
    } catch {
      // Unreadable: start empty.
    }
  }

  save() {
    try {
      if (this.entries.length === 0) this.storage.removeItem(KEY);
      else this.storage.setItem(KEY, JSON.stringify(this.entries));
    } catch {
      // Storage full or off: the entries last as long as the page.
    }
  }

  // add takes text for conversation under client_msg_id id (with create,
  // the first message of a conversation to create) and returns its entry,
  // or null when the outbox is full.
  add(conversation, text, id, create = undefined) {
    const chars = this.entries.reduce((n, e) => n + e.text.length, text.length);
    if (this.entries.length >= OUTBOX_MAX || chars > OUTBOX_MAX_CHARS) return null;
    const entry = { id, conversation, text, error: null };
    if (create !== undefined) entry.create = create;
    this.entries.push(entry);
    this.save();
    return entry;
  }

  // of returns conversation's entries, oldest first.
  of(conversation) {
    return this.entries.filter((e) => e.conversation === conversation);
  }

  // uncreated returns the entries of the conversations still to create.
  uncreated() {
    const unmade = new Set(this.entries.filter((e) => e.create !== undefined).map((e) => e.conversation));
    return this.entries.filter((e) => unmade.has(e.conversation));
  }

  // created says that entry id's conversation exists.
  created(id) {
    const e = this.get(id);
    if (e === undefined) return;
    delete e.create;
    this.save();
  }

  get(id) {
    return this.entries.find((e) => e.id === id);
  }

  // refused records the gateway's refusal of entry id (null: to be sent
  // again).
  refused(id, error) {
    const e = this.get(id);
    if (e === undefined) return;
    e.error = error === null ? null : { code: error.code ?? '', message: error.message ?? '' };
    this.save();
  }

  // remove drops entry id: acknowledged, or discarded.
  remove(id) {
    this.entries = this.entries.filter((e) => e.id !== id);
    this.save();
  }

  // drop removes every entry of conversation (it was deleted).
  drop(conversation) {
    this.entries = this.entries.filter((e) => e.conversation !== conversation);
    this.save();
  }
}
