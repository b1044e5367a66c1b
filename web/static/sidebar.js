// sidebar.js renders the conversation list, a page at a time: more show
// as the list is scrolled to its end. Deleting takes two clicks on the same
// button (no blocking confirm dialog).

const ARM_MS = 3000;
// PAGE is how many entries show at first, and how many more each time.
const PAGE = 50;

// Sidebar shows conversations in ul; onDelete(id) is called on a confirmed
// delete. Links point at #/c/<id>, so opening one is plain navigation.
export class Sidebar {
  constructor(ul, { onDelete }) {
    this.ul = ul;
    this.onDelete = onDelete;
    this.current = null;
    // armed is the conversation whose delete button was clicked once, and
    // stays so (across re-renders) until its timer ends.
    this.armed = null;
    this.armTimer = 0;
    // id → conversation, as the last render got them.
    this.byID = new Map();
    this.all = [];
    this.shown = PAGE;
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

  // render replaces the list with conversations (newest first), showing
  // as many as before.
  render(conversations) {
    this.byID = new Map(conversations.map((c) => [c.id, c]));
    this.all = conversations;
    this.draw();
  }

  draw() {
    const items = this.all.slice(0, this.shown).map((c) => this.item(c));
    if (this.all.length > this.shown) items.push(this.more);
    this.ul.replaceChildren(...items);
    this.highlight(this.current);
  }

  showMore() {
    if (this.all.length <= this.shown) return;
    this.shown += PAGE;
    this.draw();
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

  // get returns the listed conversation id, or undefined.
  get(id) {
    return this.byID.get(id);
  }
}

function showArmed(button, armed) {
  button.dataset.armed = String(armed);
  button.textContent = armed ? 'Delete?' : '×';
}
