// sidebar.js renders the conversation list. Deleting takes two clicks on
// the same button (no blocking confirm dialog).

const ARM_MS = 3000;

// Sidebar shows conversations in ul; onDelete(id) is called on a confirmed
// delete. Links point at #/c/<id>, so opening one is plain navigation.
export class Sidebar {
  constructor(ul, { onDelete }) {
    this.ul = ul;
    this.onDelete = onDelete;
    this.current = null;
    // id → conversation, as the last render got them.
    this.byID = new Map();
  }

  // render replaces the list with conversations (newest first).
  render(conversations) {
    this.byID = new Map(conversations.map((c) => [c.id, c]));
    const items = conversations.map((c) => this.item(c));
    this.ul.replaceChildren(...items);
    this.highlight(this.current);
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
    sub.textContent = c.model;
    a.append(title, sub);
    const del = document.createElement('button');
    del.type = 'button';
    del.className = 'button icon delete';
    del.dataset.testid = 'delete';
    del.setAttribute('aria-label', `Delete ${c.title || c.id}`);
    del.textContent = '×';
    del.addEventListener('click', () => this.armOrDelete(del, c.id));
    li.append(a, del);
    return li;
  }

  armOrDelete(button, id) {
    if (button.dataset.armed === 'true') {
      this.onDelete(id);
      return;
    }
    button.dataset.armed = 'true';
    button.textContent = 'Delete?';
    setTimeout(() => {
      button.dataset.armed = 'false';
      button.textContent = '×';
    }, ARM_MS);
  }

  // highlight marks the open conversation's entry.
  highlight(id) {
    this.current = id;
    for (const li of this.ul.children) {
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
