// sidebar.js renders the conversation list, fetched from the gateway a
// page at a time: the next page comes when the list is scrolled to its end
// (or "Show more" is clicked). Deleting takes two clicks on the same button
// (no blocking confirm dialog).

const ARM_MS = 3000;
// PAGE is how many conversations the list asks for at first, and how many
// more each time; MAX_PAGE is the most one list request returns.
const PAGE = 50;
const MAX_PAGE = 500;

// Sidebar shows conversations in ul. list(before, limit) fetches a page
// (the list request's reply: conversations and next); onDelete(id) is
// called on a confirmed delete; onError(err) when a page fails to load;
// home takes the keyboard from a list that it was in when it empties.
// Links point at #/c/<id>, so opening one is plain navigation.
export class Sidebar {
  constructor(ul, { list, onDelete, onError, home }) {
    this.ul = ul;
    this.list = list;
    this.onDelete = onDelete;
    this.onError = onError;
    this.home = home;
    this.current = null;
    // The conversations loaded, newest first; next is the cursor of the
    // page after them (null: there is none).
    this.all = [];
    this.next = null;
    // byID indexes all.
    this.byID = new Map();
    // Loads run one at a time, in order; loadingMore stops a second
    // "more" while one is on its way.
    this.queue = Promise.resolve();
    this.loadingMore = false;
    // armed is the conversation whose delete button was clicked once, and
    // stays so (across redraws) until its timer ends.
    this.armed = null;
    this.armTimer = 0;
    this.more = document.createElement('li');
    this.more.className = 'more';
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'button';
    button.dataset.testid = 'more-conversations';
    button.textContent = 'Show more';
    button.addEventListener('click', () => this.showMore());
    this.more.append(button);
    ul.addEventListener('scroll', () => {
      if (ul.scrollHeight - ul.scrollTop - ul.clientHeight < 100) this.showMore();
    });
  }

  // run queues load after the loads before it and returns its result.
  run(load) {
    const done = this.queue.then(load);
    this.queue = done.catch(() => {});
    return done;
  }

  // refresh lists the conversations again from the first page, as many as
  // are loaded (at least a page), so that new, updated and deleted ones
  // show where they are now without losing the place scrolled to. It
  // rejects when a page fails to load.
  refresh() {
    return this.run(async () => {
      const want = Math.max(PAGE, this.all.length);
      const all = [];
      let next = null;
      do {
        const reply = await this.list(next, Math.min(want - all.length, MAX_PAGE));
        all.push(...(reply.conversations ?? []));
        next = reply.next ?? null;
      } while (next !== null && all.length < want);
      this.all = [];
      this.byID.clear();
      this.add(all, next);
    });
  }

  // showMore loads the page after the loaded ones, if there is one.
  async showMore() {
    if (this.next === null || this.loadingMore) return;
    this.loadingMore = true;
    try {
      await this.run(async () => {
        if (this.next === null) return;
        const reply = await this.list(this.next, PAGE);
        this.add(reply.conversations ?? [], reply.next ?? null);
      });
    } catch (err) {
      this.onError(err);
    } finally {
      this.loadingMore = false;
    }
  }

  // add appends the conversations of a page (skipping any listed already:
  // a page fetched after an update may repeat one) and draws the list.
  add(conversations, next) {
    for (const c of conversations) {
      if (this.byID.has(c.id)) continue;
      this.byID.set(c.id, c);
      this.all.push(c);
    }
    this.next = next;
    this.draw();
  }

  // draw shows the list anew. The keyboard, if it was in the list,
  // stays on the element it was on, drawn again; if that conversation is
  // gone (deleted), it goes to the conversation now in its place.
  draw() {
    const focus = this.focused();
    const items = this.all.map((c) => this.item(c));
    if (this.next !== null) items.push(this.more);
    this.ul.replaceChildren(...items);
    this.highlight(this.current);
    if (focus !== null) this.refocus(focus);
  }

  // focused returns where in the list the keyboard is: {id: the
  // conversation (undefined for "Show more"), index: its place, testid:
  // the element's}, or null when it is not in the list.
  focused() {
    const e = document.activeElement;
    const li = e?.closest('li');
    if (li === null || li === undefined || li.parentElement !== this.ul) return null;
    return { id: li.dataset.id, index: [...this.ul.children].indexOf(li), testid: e.dataset.testid };
  }

  // refocus gives the keyboard back to the element focused() found, drawn
  // again; to the link of the conversation now at its place (or the last
  // one), if its own is gone; to home if the list is empty.
  refocus({ id, index, testid }) {
    const items = [...this.ul.children];
    const same = items.find((li) => li.dataset.id === id);
    if (same !== undefined) {
      same.querySelector(`[data-testid=${testid}]`)?.focus();
      return;
    }
    const conversations = items.filter((li) => li !== this.more);
    const instead = conversations[Math.min(index, conversations.length - 1)];
    (instead?.querySelector('a') ?? this.home).focus();
  }

  item(c) {
    const li = document.createElement('li');
    li.dataset.id = c.id;
    const a = document.createElement('a');
    a.href = `#/c/${encodeURIComponent(c.id)}`;
    a.className = 'conversation';
    a.dataset.testid = 'conversation';
    const title = document.createElement('span');
    title.className = 'conversation-title';
    title.textContent = c.title || 'Untitled';
    const sub = document.createElement('span');
    sub.className = 'conversation-sub muted';
    sub.textContent = c.agent ? `${c.agent} · ${c.model}` : c.model;
    a.append(title, sub);
    const del = document.createElement('button');
    del.type = 'button';
    del.className = 'button icon delete';
    del.dataset.testid = 'delete';
    del.setAttribute('aria-label', `Delete ${c.title || c.id}`);
    showArmed(del, this.armed === c.id);
    del.addEventListener('click', () => this.armOrDelete(c.id));
    li.append(a, del);
    return li;
  }

  // armOrDelete arms conversation id's delete button, or deletes it when
  // the button is armed already.
  armOrDelete(id) {
    clearTimeout(this.armTimer);
    if (this.armed === id) {
      this.arm(null);
      this.onDelete(id);
      return;
    }
    this.arm(id);
    this.armTimer = setTimeout(() => this.arm(null), ARM_MS);
  }

  // arm makes id (null: none) the armed conversation and shows it.
  arm(id) {
    this.armed = id;
    for (const button of this.ul.querySelectorAll('li[data-id] [data-testid=delete]')) {
      showArmed(button, button.parentElement.dataset.id === id);
    }
  }

  // highlight marks the open conversation's entry.
  highlight(id) {
    this.current = id;
    for (const li of this.ul.children) {
      if (li === this.more) continue;
      li.classList.toggle('active', li.dataset.id === id);
      const a = li.querySelector('a');
      if (li.dataset.id === id) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
  }

  // remove takes conversation id, found gone, off the list; a delete
  // made elsewhere reaches this page only for the conversation it
  // follows, so the list can hold others until it is refreshed.
  remove(id) {
    if (!this.byID.delete(id)) return;
    this.all = this.all.filter((c) => c.id !== id);
    this.draw();
  }

  // replace lists conversation c, just fetched, in place of the one listed
  // under its id, if that is another (an older one of the id: deleted,
  // and c created under its id, where this page did not follow them), and
  // returns whether it did: the list, until refreshed, would show the one
  // deleted.
  replace(c) {
    const listed = this.byID.get(c.id);
    if (listed === undefined || listed.created_at === c.created_at) return false;
    this.byID.set(c.id, c);
    this.all[this.all.indexOf(listed)] = c;
    this.draw();
    return true;
  }

  // get returns the listed conversation id, or undefined.
  get(id) {
    return this.byID.get(id);
  }
}

function showArmed(button, armed) {
  button.dataset.armed = String(armed);
  button.textContent = armed ? 'Delete?' : '×';
}
