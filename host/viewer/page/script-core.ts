/**
 * The page script's shared part: the page's state, escaping, how times, durations and attribute
 * values are written, the permalink in the URL hash, and the live region. Loaded first.
 */
export const SCRIPT_CORE = String.raw`
'use strict';
const $ = (s, root) => (root || document).querySelector(s);
const $$ = (s, root) => [...(root || document).querySelectorAll(s)];

// What the page shows. The trace and span in the URL hash are the source of truth for what is open.
const state = {
  // Every summary known from the latest answers: the list is drawn from it at once while a search runs.
  known: new Map(),
  // The latest answer for the current search (null until the first arrives), and its X-Sandtrace-Matched.
  answer: null,
  matched: null,
  // Whether the server filters by the search's parameters (it answers with X-Sandtrace-Matched).
  serverFilters: null,
  current: null,
  currentSpan: null,
  // The open trace: { id, spans, logs, metrics, resources, byId, t0 (BigInt ns), total (ns) }.
  trace: null,
};

// Everything from the store goes through esc before it becomes HTML: names, ids, causes, numbers.
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);

// A duration in ms, written with a unit that suits it.
// Three significant digits: 423 ms, 27.7 ms, 1.23 s, 111 µs.
const digits3 = (x) => x.toFixed(x >= 100 ? 0 : x >= 10 ? 1 : 2);
const ms = (v) => (v >= 1000 ? digits3(v / 1000) + ' s' : v >= 1 ? digits3(v) + ' ms' : v > 0 ? digits3(v * 1000) + ' µs' : '0 ms');
const nsText = (ns) => ms(ns / 1e6);
// An offset from the trace's start, to the microsecond: event and span times.
const offsetText = (ns) => (ns >= 1e9 ? (ns / 1e9).toFixed(6) + ' s' : ns >= 1e6 ? (ns / 1e6).toFixed(3) + ' ms' : ns >= 1e3 ? (ns / 1e3).toFixed(3) + ' µs' : Math.round(ns) + ' ns');

// A wall-clock time (unix ms) in local time, to the millisecond: 2026-11-21 20:37:11.123.
function wallClock(unixMs) {
  const d = new Date(unixMs);
  if (Number.isNaN(d.getTime())) return '?';
  const p = (n, w) => String(n).padStart(w || 2, '0');
  return d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + ' ' + p(d.getHours()) + ':' + p(d.getMinutes()) + ':' + p(d.getSeconds()) + '.' + p(d.getMilliseconds(), 3);
}
// The same time in UTC (ISO 8601), or '' beyond what a Date holds.
const isoTime = (unixMs) => (Number.isFinite(unixMs) && Math.abs(unixMs) <= 8.64e15 ? new Date(unixMs).toISOString() : '');
const nsToMs = (ns) => Number(BigInt(ns) / 1000000n);
const traceStartMs = (t) => (typeof t.startMs === 'number' ? t.startMs : nsToMs(t.start));

// An attribute value as text. 64-bit integers beyond the safe range come as {"intValue":"<digits>"}:
// written as their digits, exactly. Strings are quoted, so "3" and 3 differ.
function isExactInt(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && typeof v.intValue === 'string' && Object.keys(v).length === 1 && /^-?[0-9]+$/.test(v.intValue);
}
function valueText(v) {
  if (v === null || v === undefined) return 'null';
  if (isExactInt(v)) return v.intValue;
  if (Array.isArray(v)) return '[' + v.map(valueText).join(', ') + ']';
  if (typeof v === 'object') return '{' + Object.keys(v).map((k) => JSON.stringify(k) + ': ' + valueText(v[k])).join(', ') + '}';
  if (typeof v === 'string') return JSON.stringify(v);
  return String(v);
}
// Attributes as lines "key = value", escaped.
function kvHtml(attributes) {
  const entries = Object.entries(attributes || {});
  if (!entries.length) return '<div class="kv">(none)</div>';
  return entries.map(([k, v]) => '<div class="kv"><span class="k">' + esc(k) + '</span> = ' + esc(valueText(v)) + '</div>').join('');
}

// Permalinks: #trace=<id>&span=<id>. Opening one is setting the hash; the hashchange does the rest,
// so links, back and forward take one path.
function readHash() {
  const p = new URLSearchParams(location.hash.slice(1));
  return { trace: p.get('trace'), span: p.get('span') };
}
const hashFor = (trace, span) => '#trace=' + encodeURIComponent(trace) + (span ? '&span=' + encodeURIComponent(span) : '');
function go(trace, span) {
  const h = hashFor(trace, span);
  if (location.hash === h) route();
  else location.hash = h;
}

// The live region: said once, not on every refresh.
let lastAnnounced = '';
function announce(text) {
  if (text === lastAnnounced) return;
  lastAnnounced = text;
  $('#announce').textContent = text;
}

function showSkipped(res) {
  const n = Number(res.headers.get('X-Sandtrace-Skipped-Lines') || 0);
  $('#skipped').hidden = !(n > 0);
  $('#skipped').textContent = n + ' bad line' + (n === 1 ? '' : 's') + ' skipped';
}

const narrow = () => window.matchMedia('(max-width: 699px)').matches;

// Roving focus in a list of rows: one is in the tab order, arrows move between them.
function rove(rows, from, to) {
  if (!rows.length) return null;
  const i = Math.max(0, Math.min(rows.length - 1, to));
  if (from) from.tabIndex = -1;
  rows[i].tabIndex = 0;
  rows[i].focus();
  return rows[i];
}
function arrowTarget(e, rows, at) {
  if (e.key === 'ArrowDown') return at + 1;
  if (e.key === 'ArrowUp') return at - 1;
  if (e.key === 'Home') return 0;
  if (e.key === 'End') return rows.length - 1;
  if (e.key === 'PageDown') return at + 10;
  if (e.key === 'PageUp') return at - 10;
  return null;
}
`;
