// api.js holds the page's few REST calls and the optional bearer token.
// In jwt mode the page is opened as /#token=…: the token is kept for this
// tab in sessionStorage and removed from the address bar.

const TOKEN_KEY = 'gateway.token';

// takeToken returns the token from the URL fragment or from this tab's
// storage, or "" when there is none.
export function takeToken() {
  const m = /^#token=([^&]+)/.exec(location.hash);
  if (m !== null) {
    history.replaceState(null, '', location.pathname + location.search);
    const token = decoded(m[1]);
    if (token !== null) {
      sessionStorage.setItem(TOKEN_KEY, token);
      return token;
    }
  }
  return sessionStorage.getItem(TOKEN_KEY) ?? '';
}

// tokenUser returns whom token signs in: the sub claim of the JSON Web
// Token, read without checking its signature (the gateway checks it; the
// page only keeps each user's unsent messages apart with it), "" for no
// token, or null for a token that names no one.
export function tokenUser(token) {
  if (token === '') return '';
  try {
    const payload = token.split('.')[1].replaceAll('-', '+').replaceAll('_', '/');
    const claims = JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(payload), (c) => c.charCodeAt(0))));
    return typeof claims?.sub === 'string' && claims.sub !== '' ? claims.sub : null;
  } catch {
    return null;
  }
}

// decoded returns the percent-encoded part of a URL s decoded, or null
// when s is not valid percent-encoding (decodeURIComponent would throw,
// and a link could then stop the page from starting).
export function decoded(s) {
  try {
    return decodeURIComponent(s);
  } catch {
    return null;
  }
}

// getJSON fetches path with the bearer token (if any) and returns the
// decoded body, or throws an Error with the gateway's error message and
// code.
export async function getJSON(path, token) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(path, { headers, cache: 'no-store' });
  const body = await res.json().catch(() => null);
  if (!res.ok) {
    const err = new Error(body?.error?.message ?? `${path}: HTTP ${res.status}`);
    err.code = body?.error?.code ?? '';
    throw err;
  }
  return body;
}

// conversationPath is the HTTP API's path of conversation id, plus rest.
function conversationPath(id, rest) {
  return `/v1/conversations/${encodeURIComponent(id)}/${rest}`;
}

// fetchConversation returns GET /v1/conversations/{id}: the conversation
// object.
export function fetchConversation(id, token) {
  return getJSON(`/v1/conversations/${encodeURIComponent(id)}`, token);
}

// fetchHistory returns GET …/messages: up to limit messages with seq <
// before (0: the newest), oldest first, and has_more.
export function fetchHistory(id, before, limit, token) {
  return getJSON(conversationPath(id, `messages?before=${before}&limit=${limit}`), token);
}

// EVENTS_PAGE is the most events GET …/events returns at once.
const EVENTS_PAGE = 1000;

// fetchEvents returns the stored events of conversation id with
// after < seq <= until, oldest first, from GET …/events: for many events,
// much faster than a socket's replay of them one frame at a time.
// createdAt is the conversation's created_at, "" if unknown: if the one
// with id now is another (that one was deleted, and maybe another created
// under its id since), the fetch fails with not_found instead of
// returning the other's events, or a mix of both.
export async function fetchEvents(id, after, until, createdAt, token) {
  const events = [];
  const conversation = createdAt ? `&created_at=${encodeURIComponent(createdAt)}` : '';
  while (after < until) {
    const limit = Math.min(EVENTS_PAGE, until - after);
    const batch = await getJSON(conversationPath(id, `events?after=${after}&limit=${limit}${conversation}`), token);
    for (const ev of batch) {
      if (ev.seq <= until) events.push(ev);
    }
    // Short of until, a batch asks for the next; an empty one means the
    // log ends sooner (the events are all in).
    if (batch.length === 0) break;
    after = batch.at(-1).seq;
  }
  return events;
}

// refusal asks the HTTP API, with token, for its cheapest authenticated
// answer (one conversation of the list): a page cannot see why a
// WebSocket upgrade failed, but it can see this request's 401, and the
// gateway refuses both alike. It resolves to the gateway's unauthorized
// error (its message names the failed check, never the token), or to
// null for any other outcome: an answer, or a gateway out of reach.
export async function refusal(token) {
  try {
    await getJSON('/v1/conversations?limit=1', token);
    return null;
  } catch (err) {
    return err.code === 'unauthorized' ? err : null;
  }
}

// fetchInfo returns GET /v1/info: {provider, default_model, version, auth}.
export function fetchInfo(token) {
  return getJSON('/v1/info', token);
}
