// api.js holds the page's few REST calls and the optional bearer token.
// In jwt mode the page is opened as /#token=…: the token is kept for this
// tab in sessionStorage and removed from the address bar.

const TOKEN_KEY = 'gateway.token';

// takeToken returns the token from the URL fragment or from this tab's
// storage, or "" when there is none.
export function takeToken() {
  const m = /^#token=([^&]+)/.exec(location.hash);
  if (m !== null) {
    const token = decodeURIComponent(m[1]);
    sessionStorage.setItem(TOKEN_KEY, token);
    history.replaceState(null, '', location.pathname + location.search);
    return token;
  }
  return sessionStorage.getItem(TOKEN_KEY) ?? '';
}

// getJSON fetches path with the bearer token (if any) and returns the
// decoded body, or throws an Error with the gateway's error message.
export async function getJSON(path, token) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(path, { headers, cache: 'no-store' });
  const body = await res.json().catch(() => null);
  if (!res.ok) {
    throw new Error(body?.error?.message ?? `${path}: HTTP ${res.status}`);
  }
  return body;
}

// fetchInfo returns GET /v1/info: {provider, default_model, version, auth}.
export function fetchInfo(token) {
  return getJSON('/v1/info', token);
}
