// dom.js holds the small helpers the page's modules share to build
// elements and format values. Text goes in as text, never as markup.

// el makes an element with a class, optional test id and optional text.
export function el(tag, className, { testid, text } = {}) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (testid) e.dataset.testid = testid;
  if (text !== undefined) e.textContent = text;
  return e;
}

// One formatter for all times: toLocaleTimeString makes a new one per call,
// which costs a millisecond or more each.
const HOUR_MINUTE = new Intl.DateTimeFormat([], { hour: '2-digit', minute: '2-digit' });

// clock formats an RFC 3339 time as the local hour and minute.
export function clock(ts) {
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return '';
  return HOUR_MINUTE.format(d);
}

// prettyJSON shows a JSON value indented; a string as itself.
export function prettyJSON(v) {
  if (v === undefined || v === null) return '';
  return typeof v === 'string' ? v : JSON.stringify(v, null, 2);
}

// seconds formats a duration in milliseconds.
export function seconds(ms) {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
}
