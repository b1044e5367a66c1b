// socket.js owns the page's one WebSocket to /v1/ws: it connects,
// subscribes, matches replies to requests by id, keeps the connection alive
// with pings, and reconnects with exponential backoff and jitter. After a
// reconnect it subscribes again with after = the last seq it passed on, so
// the events it delivers are each conversation's log in order, each once;
// and with the conversation's created_at, so that a conversation deleted
// while the socket was away, even if another was created under its id
// since, ends the subscription (onGone) instead of resuming the other's log.
// A browser cannot see why an upgrade failed: after each failure it asks
// refused() whether the gateway refuses the page's credentials, and if so
// stops for good (onRefused) instead of retrying what cannot succeed.

const BACKOFF_BASE_MS = 500;
const BACKOFF_MAX_MS = 15000;
// A connection that stayed up this long starts the backoff over.
const STABLE_MS = 10000;
const PING_EVERY_MS = 20000;
const PONG_WITHIN_MS = 10000;
// CLOSE_TOO_BIG is the close code of a gateway that got a frame over its
// size limit.
const CLOSE_TOO_BIG = 1009;

// wsURL is /v1/ws on this page's host, ws: or wss: like the page, with the
// token (if any) as a query parameter because browsers cannot set headers.
export function wsURL(token) {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const url = new URL(`${scheme}//${location.host}/v1/ws`);
  if (token) url.searchParams.set('token', token);
  return url.href;
}

// TEMPORARY are the error codes that refuse a request for now only: the
// same request may succeed later.
const TEMPORARY = new Set(['unavailable', 'busy', 'internal', 'rate_limited']);

// RequestError is a request's rejection: an error frame (code, message,
// and retryAfterMs, the retry_after_ms of a rate_limited one), a
// connection lost before the reply (code "disconnected"), or a frame too
// large for the gateway, which closed the connection on it (code
// "too_large").
export class RequestError extends Error {
  constructor(code, message, retryAfterMs) {
    super(message);
    this.code = code;
    if (typeof retryAfterMs === 'number') this.retryAfterMs = retryAfterMs;
  }
}

// backoff returns a delay before attempt number attempt (0 first): up to
// BACKOFF_BASE_MS doubled per attempt, at most BACKOFF_MAX_MS, with
// jitter so that many clients do not retry in step.
function backoff(attempt) {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** attempt);
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

// GatewaySocket delivers conversation events to onEvent and connection
// states ("connecting", "connected", "reconnecting") to onStatus; error
// frames that answer no pending request go to onError. onGone(id, missed)
// says that a followed conversation was deleted: missed is false for a
// deleted frame, true when a subscribe found it gone (deleted while the
// socket was away, or before it subscribed). refused() resolves to the
// gateway's refusal of the credentials in url (an Error), or null; once
// it does, the socket stops: status "refused" goes to onStatus, the error
// to onRefused, and every request fails with it.
export class GatewaySocket {
  constructor({ url, onEvent, onStatus, onError, onGone, refused = async () => null, onRefused = () => {} }) {
    this.url = url;
    this.onEvent = onEvent;
    this.onStatus = onStatus;
    this.onError = onError;
    this.onGone = onGone;
    this.refused = refused;
    this.onRefused = onRefused;
    this.ws = null;
    // refusal is the error refused() found (the socket has stopped), or
    // null; checking says a refused() call is on its way.
    this.refusal = null;
    this.checking = false;
    this.attempt = 0;
    this.openedAt = 0;
    this.nextID = 0;
    this.retryTimer = 0;
    this.pingTimer = 0;
    // conversation id → {last: last seq passed to onEvent, waiting: id of
    // the subscribe whose reply has not come yet, or "", createdAt: the
    // conversation's created_at, or "" until a subscribed reply tells it,
    // refusals: the temporary refusals of its subscribe in a row, retry:
    // the timer that subscribes again after the last one}
    this.subs = new Map();
    // request id → {frame, resolve, reject, retry, sent}
    this.pending = new Map();
  }

  start() {
    this.connect();
    addEventListener('online', () => {
      if (this.ws === null) this.connect();
    });
  }

  connected() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
  }

  // subscribe asks for every event of conversation with seq > after, now
  // and after every reconnect (then from the last seq delivered);
  // onSubscribed(seq) gets each subscribed reply's seq, the last one stored
  // then. createdAt, if known, is the created_at of the conversation whose
  // events up to after the caller has; else the first subscribed reply
  // tells it. A subscribe refused for now (a TEMPORARY code) keeps the
  // subscription: it is sent again after the error's retry_after_ms, or a
  // backoff, and at the next reconnect. Any other refusal ends the
  // subscription: not_found, once the created_at is known, goes to onGone
  // (the conversation the caller knew is gone, whatever has its id now),
  // anything else to onError with the conversation set.
  subscribe(conversation, after = 0, onSubscribed = () => {}, createdAt = '') {
    this.forget(conversation);
    this.subs.set(conversation, { last: after, waiting: '', onSubscribed, createdAt, refusals: 0, retry: 0 });
    if (this.connected()) this.sendSubscribe(conversation);
  }

  unsubscribe(conversation) {
    if (!this.forget(conversation)) return;
    if (this.connected()) this.request({ type: 'unsubscribe', conversation }).catch(() => {});
  }

  // forget drops the subscription to conversation, with the retry it may
  // have scheduled, and tells whether there was one.
  forget(conversation) {
    const sub = this.subs.get(conversation);
    if (sub === undefined) return false;
    clearTimeout(sub.retry);
    return this.subs.delete(conversation);
  }

  sendSubscribe(conversation) {
    const sub = this.subs.get(conversation);
    // Sent now (at a reconnect, say), it needs no scheduled retry.
    clearTimeout(sub.retry);
    const frame = { type: 'subscribe', conversation, after: sub.last };
    if (sub.createdAt) frame.created_at = sub.createdAt;
    const { id, promise } = this.issue(frame, false);
    // Events of this conversation before the reply to this very frame are
    // left over from an earlier subscription: they are dropped, and the
    // replay that follows the reply sends them again in order.
    sub.waiting = id;
    promise.catch((err) => {
      if (err.code === 'disconnected' || this.subs.get(conversation) !== sub) return;
      if (TEMPORARY.has(err.code)) {
        this.resubscribe(conversation, sub, err);
        return;
      }
      this.subs.delete(conversation);
      if (err.code === 'not_found' && sub.createdAt) {
        this.onGone(conversation, true);
        return;
      }
      err.conversation = conversation;
      this.onError(err);
    });
  }

  // resubscribe sends the subscription sub to conversation again once
  // the temporary refusal err allows: after its retry_after_ms, or a
  // backoff that grows with each refusal in a row. Its events until then
  // are dropped (sub.waiting still names the refused subscribe); a
  // reconnect meanwhile sends it at once, and the subscription ended
  // meanwhile is not sent.
  resubscribe(conversation, sub, err) {
    const delay = err.retryAfterMs ?? backoff(sub.refusals);
    sub.refusals++;
    sub.retry = setTimeout(() => {
      if (this.subs.get(conversation) === sub && this.connected()) this.sendSubscribe(conversation);
    }, delay);
  }

  // request sends frame with a fresh id and resolves with the reply that
  // carries it, or rejects with a RequestError. Frames wait for the
  // connection; if it drops after sending, the request is rejected unless
  // retry is set (only for idempotent frames, such as a send with a
  // client_msg_id), in which case it is sent again after the reconnect;
  // one whose frame the gateway closed the connection on, as too large,
  // is rejected either way.
  request(frame, { retry = false } = {}) {
    return this.issue(frame, retry).promise;
  }

  issue(frame, retry) {
    const id = `r${++this.nextID}`;
    let p;
    const promise = new Promise((resolve, reject) => {
      p = { frame: { ...frame, id }, resolve, reject, retry, sent: false };
    });
    if (this.refusal !== null) {
      p.reject(this.refusal);
      return { id, promise };
    }
    this.pending.set(id, p);
    if (this.connected()) this.transmit(p);
    return { id, promise };
  }

  transmit(p) {
    p.sent = true;
    this.ws.send(JSON.stringify(p.frame));
  }

  connect() {
    clearTimeout(this.retryTimer);
    if (this.refusal !== null) return;
    this.onStatus(this.attempt === 0 ? 'connecting' : 'reconnecting');
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onopen = () => this.opened(ws);
    ws.onmessage = (e) => this.received(ws, e.data);
    ws.onclose = (e) => this.closed(ws, e.code);
  }

  opened(ws) {
    if (ws !== this.ws) return;
    this.openedAt = Date.now();
    this.onStatus('connected');
    // Subscriptions first, so that a retried send finds its conversation
    // already resumed at the right seq.
    for (const conversation of this.subs.keys()) this.sendSubscribe(conversation);
    for (const p of this.pending.values()) {
      if (!p.sent) this.transmit(p);
    }
    this.schedulePing();
  }

  received(ws, data) {
    if (ws !== this.ws) return;
    let f;
    try {
      f = JSON.parse(data);
    } catch {
      return;
    }
    // Events, whatever their type, are the frames with a seq and a ts;
    // replies have no ts.
    if (typeof f.seq === 'number' && typeof f.ts === 'string') {
      this.deliver(f);
      return;
    }
    const p = f.id !== undefined ? this.pending.get(f.id) : undefined;
    if (p === undefined) {
      if (f.type === 'error') this.onError(new RequestError(f.code, f.message));
      if (f.type === 'deleted') {
        // Another tab or client deleted a conversation this socket follows.
        this.forget(f.conversation);
        this.onGone(f.conversation, false);
      }
      return;
    }
    this.pending.delete(f.id);
    if (f.type === 'ack' && !this.subs.has(f.conversation)) {
      // A send subscribes its connection to its conversation. One that
      // went out after the page left the conversation (sent again after a
      // reconnect) would otherwise have the gateway send all its events
      // here, to be dropped, for as long as the connection lasts.
      this.request({ type: 'unsubscribe', conversation: f.conversation }).catch(() => {});
    }
    if (f.type === 'subscribed') {
      const sub = this.subs.get(f.conversation);
      if (sub !== undefined && sub.waiting === f.id) {
        sub.waiting = '';
        sub.refusals = 0;
        if (!sub.createdAt && typeof f.created_at === 'string') sub.createdAt = f.created_at;
        sub.onSubscribed(f.seq);
      }
    }
    if (f.type === 'error') p.reject(new RequestError(f.code, f.message, f.retry_after_ms));
    else p.resolve(f);
  }

  // deliver passes on an event of a live subscription that is newer than
  // the last one passed on.
  deliver(ev) {
    const sub = this.subs.get(ev.conversation);
    if (sub === undefined || sub.waiting !== '' || ev.seq <= sub.last) return;
    sub.last = ev.seq;
    this.onEvent(ev);
  }

  // closed handles the end of ws, which the gateway closed with code (0:
  // unknown).
  closed(ws, code = 0) {
    if (ws !== this.ws) return;
    this.ws = null;
    clearTimeout(this.pingTimer);
    // A socket that never opened is an upgrade that failed.
    const failed = this.openedAt === 0;
    // A frame over the gateway's size limit closes the connection: sent
    // again, it would close every connection after it. It fails instead.
    const tooBig = code === CLOSE_TOO_BIG ? this.largestUnanswered() : undefined;
    for (const [id, p] of this.pending) {
      if (!p.sent) continue;
      if (p.retry && p !== tooBig) {
        p.sent = false;
      } else {
        this.pending.delete(id);
        p.reject(
          p === tooBig
            ? new RequestError('too_large', 'too large for the gateway to take (over its frame size limit)')
            : new RequestError('disconnected', 'connection lost'),
        );
      }
    }
    if (this.openedAt !== 0 && Date.now() - this.openedAt >= STABLE_MS) this.attempt = 0;
    this.openedAt = 0;
    const delay = backoff(this.attempt);
    this.attempt++;
    this.onStatus('reconnecting');
    this.retryTimer = setTimeout(() => this.connect(), delay);
    if (failed) this.checkRefused();
  }

  // largestUnanswered returns the request sent on the connection and not
  // answered whose frame is the largest in UTF-8 bytes: when the gateway
  // closed the connection over a frame's size, one over the limit. (The
  // gateway reads frames in order: a larger one sent before the frame
  // that closed it would have closed it first.)
  largestUnanswered() {
    let largest;
    let most = -1;
    const utf8 = new TextEncoder();
    for (const p of this.pending.values()) {
      if (!p.sent) continue;
      const size = utf8.encode(JSON.stringify(p.frame)).length;
      if (size > most) {
        largest = p;
        most = size;
      }
    }
    return largest;
  }

  // checkRefused asks refused() whether the gateway refuses the page's
  // credentials (other failures, such as a gateway that is down, keep the
  // reconnect loop going); if it does, the socket stops: the connection
  // on its way is dropped and every request fails with the refusal.
  async checkRefused() {
    if (this.checking) return;
    this.checking = true;
    let err = null;
    try {
      err = await this.refused();
    } catch {
      err = null;
    } finally {
      this.checking = false;
    }
    // An upgrade that got through meanwhile was not refused after all.
    if (err === null || this.refusal !== null || this.connected()) return;
    this.refusal = err;
    clearTimeout(this.retryTimer);
    const ws = this.ws;
    this.ws = null;
    ws?.close();
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    this.onStatus('refused');
    this.onRefused(err);
  }

  // schedulePing sends a ping every PING_EVERY_MS and closes a connection
  // whose pong does not come back in time; closing it reconnects.
  schedulePing() {
    clearTimeout(this.pingTimer);
    this.pingTimer = setTimeout(() => {
      const ws = this.ws;
      if (ws === null) return;
      // A dead network can hold a closing handshake for minutes: give up
      // on the socket at once and let it close in the background.
      const deadline = setTimeout(() => {
        this.closed(ws);
        ws.close(4000, 'ping timeout');
      }, PONG_WITHIN_MS);
      this.request({ type: 'ping' })
        .then(() => {
          clearTimeout(deadline);
          this.schedulePing();
        })
        .catch(() => clearTimeout(deadline));
    }, PING_EVERY_MS);
  }
}
