/** The viewer's single page: plain HTML, CSS and script, nothing loaded from elsewhere. */
export const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>sandtrace — traces</title>
<style>
  :root { font: 13px/1.4 system-ui, sans-serif; color: #1d232b; }
  [hidden] { display: none !important; }
  body { margin: 0; display: grid; grid-template-columns: 340px 1fr; height: 100vh; }
  aside { border-right: 1px solid #d8dde3; overflow: auto; background: #f6f8fa; }
  aside header { padding: 10px; position: sticky; top: 0; background: #f6f8fa; border-bottom: 1px solid #d8dde3; }
  aside input, aside select { width: 100%; box-sizing: border-box; margin-top: 6px; padding: 4px; }
  .trace { padding: 8px 10px; border-bottom: 1px solid #e3e7eb; cursor: pointer; }
  .trace:hover, .trace.selected { background: #e6eefc; }
  .trace .meta { color: #5b6470; font-size: 12px; }
  .badge { display: inline-block; padding: 0 6px; border-radius: 8px; font-size: 11px; margin-left: 4px; }
  .badge.error { background: #fde2e1; color: #a3211b; }
  .badge.forced { background: #fff0d5; color: #8a5300; }
  .badge.running { background: #dcf5e7; color: #1f6f49; }
  .badge.dup { background: #eceff3; color: #4a5360; }
  #live.off { background: #eceff3; color: #8a929c; }
  main { overflow: auto; padding: 12px 16px; }
  .row { display: grid; grid-template-columns: 320px 1fr 80px; align-items: center; height: 24px; cursor: pointer; }
  .row:hover { background: #f1f4f8; }
  .name { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
  .lane { position: relative; height: 12px; }
  .bar { position: absolute; height: 12px; min-width: 2px; border-radius: 3px; background: #4a7fd6; }
  .bar.error { background: #d8473f; }
  /* Still open: drawn from its start to when the store was read, hatched, with no right edge. */
  .bar.running { background: repeating-linear-gradient(135deg, #2e9d6a 0 4px, #8fd1ae 4px 8px); border-radius: 3px 0 0 3px; }
  .dur { text-align: right; color: #5b6470; }
  .details { margin: 12px 0; padding: 10px; border: 1px solid #d8dde3; border-radius: 6px; background: #fbfcfd; white-space: pre-wrap; font-family: ui-monospace, monospace; font-size: 12px; }
  h2 { font-size: 15px; margin: 4px 0 10px; }
  .empty { color: #5b6470; padding: 20px; }
</style>
</head>
<body>
<aside>
  <header>
    <strong>sandtrace</strong> traces <span id="live" class="badge running off" title="the list follows the store as it changes">live</span> <span id="skipped" class="badge error" hidden></span>
    <input id="filter-execution" placeholder="filter by execution id">
    <select id="filter-status">
      <option value="all">all statuses</option>
      <option value="error">with errors</option>
      <option value="forced">force-closed</option>
      <option value="running">in progress</option>
      <option value="ok">without errors</option>
    </select>
  </header>
  <div id="traces"></div>
</aside>
<main id="main"><div class="empty">Choose a trace.</div></main>
<script>
const $ = (s) => document.querySelector(s);
let traces = [];
// The trace shown, and its span whose details are open: kept across live refreshes.
let current = null;
let currentSpan = null;
// Everything from the store goes through esc before it becomes HTML: names, ids, causes, numbers.
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
// A histogram's count and its non-empty buckets: "count 2; ≤10: 1, ≤75: 1".
const histogramText = (h) => {
  if (!h) return '';
  const parts = [];
  h.buckets.forEach((n, i) => { if (n > 0) parts.push((i < h.bounds.length ? '≤' + h.bounds[i] : '>' + h.bounds[h.bounds.length - 1]) + ': ' + n); });
  return '; count ' + h.count + (parts.length ? '; ' + parts.join(', ') : '');
};
const ms = (v) => (v >= 1000 ? (v / 1000).toFixed(2) + ' s' : v >= 1 ? v.toFixed(2) + ' ms' : (v * 1000).toFixed(0) + ' µs');

async function load() {
  const res = await fetch('/api/traces');
  traces = await res.json();
  showSkipped(res);
  renderList();
}

function showSkipped(res) {
  const n = Number(res.headers.get('X-Sandtrace-Skipped-Lines') || 0);
  $('#skipped').hidden = !(n > 0);
  $('#skipped').textContent = n + ' bad line' + (n === 1 ? '' : 's') + ' skipped';
}

function renderList() {
  const exec = $('#filter-execution').value.trim();
  const status = $('#filter-status').value;
  const shown = traces.filter((t) =>
    (!exec || t.executionIds.some((id) => id.includes(exec))) &&
    (status === 'all' || (status === 'error' && t.errors > 0) || (status === 'forced' && t.forced.length > 0) || (status === 'running' && t.running > 0) || (status === 'ok' && t.errors === 0)));
  $('#traces').innerHTML = shown.map((t) =>
    '<div class="trace" data-trace="' + esc(t.traceId) + '">' +
    '<div>' + esc(t.root) + (t.errors ? '<span class="badge error">' + esc(t.errors) + ' error' + (t.errors > 1 ? 's' : '') + '</span>' : '') +
    t.forced.map((c) => '<span class="badge forced">✖ ' + esc(c) + '</span>').join('') + traceBadges(t) + '</div>' +
    '<div class="meta">' + esc(t.spans) + ' spans · ' + (t.running ? '≥ ' : '') + esc(ms(t.durationMs)) + ' · ' + esc(t.executionIds.join(', ')) + '</div></div>').join('')
    || '<div class="empty">No traces match.</div>';
  for (const el of document.querySelectorAll('.trace')) {
    el.classList.toggle('selected', el.dataset.trace === current);
    el.onclick = () => { currentSpan = null; show(el.dataset.trace); };
  }
}

// A trace in progress has running spans; duplicates are span records written again by a replayed step.
function traceBadges(t) {
  return (t.running ? '<span class="badge running">in progress</span>' : '') +
    (t.duplicateSpans ? '<span class="badge dup" title="span records dropped: a span with the same ids was already written (a replayed step)">' + esc(t.duplicateSpans) + ' duplicate' + (t.duplicateSpans > 1 ? 's' : '') + '</span>' : '');
}

async function show(traceId) {
  current = traceId;
  for (const el of document.querySelectorAll('.trace')) el.classList.toggle('selected', el.dataset.trace === traceId);
  const res = await fetch('/api/traces/' + encodeURIComponent(traceId));
  showSkipped(res);
  if (!res.ok || current !== traceId) return;
  const { spans, logs, metrics } = await res.json();
  const ids = new Set(spans.map((s) => s.spanId));
  const children = new Map();
  for (const s of spans) {
    const p = s.parentSpanId && ids.has(s.parentSpanId) ? s.parentSpanId : '';
    if (!children.has(p)) children.set(p, []);
    children.get(p).push(s);
  }
  const t0 = spans.reduce((m, s) => (BigInt(s.start) < m ? BigInt(s.start) : m), BigInt(spans[0].start));
  const t1 = spans.reduce((m, s) => (BigInt(s.end) > m ? BigInt(s.end) : m), BigInt(spans[0].end));
  const total = Number(t1 - t0) || 1;
  const rows = [];
  const walk = (parent, depth) => {
    for (const s of (children.get(parent) || []).sort((a, b) => (BigInt(a.start) < BigInt(b.start) ? -1 : 1))) {
      const left = (Number(BigInt(s.start) - t0) / total) * 100;
      const width = Math.max((Number(BigInt(s.end) - BigInt(s.start)) / total) * 100, 0.3);
      const err = s.status.code === 2;
      const state = s.running ? ' running' : err ? ' error' : '';
      rows.push('<div class="row span' + state + '" data-span="' + esc(s.spanId) + '">' +
        '<div class="name" style="padding-left:' + esc(depth * 16) + 'px" title="' + esc(s.name) + '">' + esc(s.name) +
        (s.running ? ' <span class="badge running">running</span>' : s.forcedCause ? ' <span class="badge forced" title="' + esc(s.status.message || '') + '">✖ ' + esc(s.forcedCause) + '</span>' : err ? ' <span class="badge error">error</span>' : '') +
        (s.duplicates && !s.running ? ' <span class="badge dup" title="written again by a replayed step">×' + esc(s.duplicates + 1) + '</span>' : '') + '</div>' +
        '<div class="lane"><div class="bar' + state + '" style="left:' + esc(left) + '%;width:' + esc(width) + '%"></div></div>' +
        '<div class="dur">' + (s.running ? '≥ ' : '') + esc(ms(s.durationMs)) + '</div></div>');
      walk(s.spanId, depth + 1);
    }
  };
  walk('', 0);
  const summary = traces.find((t) => t.traceId === traceId);
  $('#main').innerHTML = '<h2>' + esc(spans.find((s) => !s.parentSpanId || !ids.has(s.parentSpanId)).name) + (summary ? traceBadges(summary) : '') + '</h2>' + rows.join('') +
    '<div class="details" id="details">Click a span for its fields and events.</div>' +
    (metrics.length ? '<h2>Metrics</h2><div class="details" id="metrics">' + metrics.map((m) => esc(m.kind + ' ' + m.name + ' = ' + m.value + ' ' + JSON.stringify(m.attributes) + histogramText(m.histogram))).join('\\n') + '</div>' : '');
  for (const el of document.querySelectorAll('.row')) el.onclick = () => {
    const s = spans.find((x) => x.spanId === el.dataset.span);
    currentSpan = s.spanId;
    const spanLogs = logs.filter((l) => l.spanId === s.spanId);
    $('#details').textContent = s.name + (s.status.message ? '  — ' + s.status.message : '') +
      (s.running ? '  — running: started, not ended when the store was read (' + ms(s.durationMs) + ' so far)' : '') +
      (s.duplicates ? '\\n' + s.duplicates + (s.running ? ' identical "span started" record' : ' more record') + (s.duplicates > 1 ? 's' : '') + ' of this span dropped' + (s.running ? '' : ' (a replayed step; the first written is shown)') : '') +
      '\\n\\nfields\\n' + Object.entries(s.attributes).map(([k, v]) => '  ' + k + ' = ' + JSON.stringify(v)).join('\\n') +
      '\\n\\nevents\\n' + (s.events.map((e) => '  ' + e.name + ' ' + JSON.stringify(e.attributes)).join('\\n') || '  (none)') +
      (spanLogs.length ? '\\n\\nlogs\\n' + spanLogs.map((l) => '  ' + l.severity + ' ' + l.body).join('\\n') : '');
  };
  const open = currentSpan && [...document.querySelectorAll('.row')].find((el) => el.dataset.span === currentSpan);
  if (open) open.click();
}

// Live: the server says when the store changed (ingest, or another process appending); the list
// and the open trace are fetched again, one refresh at a time, without reloading the page.
let refreshing = false;
let again = false;
async function refresh() {
  if (refreshing) { again = true; return; }
  refreshing = true;
  try {
    do {
      again = false;
      const scroll = $('#main').scrollTop;
      await load();
      if (current && traces.some((t) => t.traceId === current)) await show(current);
      $('#main').scrollTop = scroll;
    } while (again);
  } catch {
    // the viewer stopped: the next notification, after it reconnects, refreshes
  } finally {
    refreshing = false;
  }
}
if (window.EventSource) {
  const live = new EventSource('/api/events');
  let opened = false;
  live.addEventListener('store', refresh);
  live.onopen = () => {
    $('#live').classList.remove('off');
    if (opened) refresh(); // a reconnection: anything that changed meanwhile
    opened = true;
  };
  live.onerror = () => $('#live').classList.add('off');
}

$('#filter-execution').oninput = renderList;
$('#filter-status').onchange = renderList;
load();
</script>
</body>
</html>
`;
