/**
 * The page script's open trace: fetching it, the header, the span tree as rows (a tree with
 * levels, collapsible), their bars and event markers, and moving between rows by keyboard.
 */
export const SCRIPT_TRACE = String.raw`
// Set when a trace is opened by keyboard: its first span row then takes focus.
let focusAfterOpen = false;
// Spans whose children are folded away, per trace.
let collapsed = new Set();

function statusText(s) {
  if (s.running) return 'running';
  if (s.forcedCause) return 'force-closed: ' + s.forcedCause;
  if (s.status.code === 2) return 'error' + (s.status.message ? ': ' + s.status.message : '');
  return 'ok';
}

// Fetches and draws a trace: true when drawn, 'unchanged' when it is drawn already as the store has it,
// false when it is not (not in the store, or another was chosen meanwhile).
async function show(traceId) {
  state.current = traceId;
  for (const el of $$('.trace')) el.classList.toggle('selected', el.dataset.trace === traceId);
  const res = await fetch('/api/traces/' + encodeURIComponent(traceId));
  showSkipped(res);
  // Answered while the store is first indexed: from the lines found so far, maybe not all of the
  // trace's; the refresh that showIndexing schedules fetches it again.
  showIndexing(res);
  if (state.current !== traceId) return false;
  if (res.status === 404) {
    state.trace = null;
    $('#main').innerHTML = '<div class="empty" id="missing"><p>The trace <code>' + esc(traceId) + '</code> is not in the store' +
      ' (it was never written here, or was evicted).</p><p><button type="button" class="copy" id="go-back">← Back</button></p></div>';
    $('#go-back').onclick = () => history.back();
    announce('Trace ' + traceId + ' is not in the store');
    return false;
  }
  if (!res.ok) throw new Error('the trace answered ' + res.status);
  const text = await res.text();
  if (state.current !== traceId) return false;
  // A refresh that finds the open trace as it was leaves it alone: no redraw under the pointer or the focus.
  if (state.trace && state.trace.id === traceId && state.trace.text === text) return 'unchanged';
  renderTrace(traceId, JSON.parse(text));
  state.trace.text = text;
  return true;
}

function buildTrace(traceId, data) {
  const spans = data.spans;
  const ids = new Set(spans.map((s) => s.spanId));
  const children = new Map();
  for (const s of spans) {
    const p = s.parentSpanId && ids.has(s.parentSpanId) ? s.parentSpanId : '';
    if (!children.has(p)) children.set(p, []);
    children.get(p).push(s);
  }
  const t0 = spans.reduce((m, s) => (BigInt(s.start) < m ? BigInt(s.start) : m), BigInt(spans[0].start));
  const t1 = spans.reduce((m, s) => (BigInt(s.end) > m ? BigInt(s.end) : m), BigInt(spans[0].end));
  const tr = {
    id: traceId, spans, logs: data.logs || [], metrics: data.metrics || [], resources: data.resources || [],
    byId: new Map(spans.map((s) => [s.spanId, s])), t0, total: Number(t1 - t0) || 1, rows: [], logsBySpan: new Map(),
  };
  for (const l of tr.logs) {
    if (!l.spanId || l.traceId !== traceId) continue;
    if (!tr.logsBySpan.has(l.spanId)) tr.logsBySpan.set(l.spanId, []);
    tr.logsBySpan.get(l.spanId).push(l);
  }
  const order = [];
  const walk = (parent, depth, parentRow) => {
    for (const s of (children.get(parent) || []).sort((a, b) => (BigInt(a.start) < BigInt(b.start) ? -1 : BigInt(a.start) > BigInt(b.start) ? 1 : 0))) {
      const row = { span: s, depth, parent: parentRow, kids: (children.get(s.spanId) || []).length, folded: false, s: Number(BigInt(s.start) - t0), e: Number(BigInt(s.end) - t0), evs: [] };
      order.push(row);
      walk(s.spanId, depth + 1, row);
    }
  };
  walk('', 0, null);
  tr.rows = order;
  return tr;
}

// Events and logs of one span. A guest event exported both ways (eventsAs 'both') is a span event
// and a log record with the same span, time and message: it is one event, shown once.
function eventsOf(tr, s) {
  const logs = tr.logsBySpan.get(s.spanId) || [];
  const twins = new Set();
  const events = s.events.map((e) => {
    const twin = logs.find((l) => !twins.has(l) && l.time === e.time && l.body === e.name);
    if (twin) twins.add(twin);
    return { time: e.time, name: e.name, attributes: e.attributes, severity: twin ? twin.severity : '' };
  });
  return { events, logs: logs.filter((l) => !twins.has(l)) };
}

// Indentation per level, set per drawing (narrower at 360 px).
let indentPx = 16;
function rowHtml(tr, r) {
  const s = r.span;
  const err = s.status.code === 2;
  const state_ = s.running ? ' running' : err ? ' error' : '';
  const indent = r.depth * indentPx;
  const { events } = eventsOf(tr, s);
  const label = s.name + ', ' + (s.running ? 'at least ' : '') + ms(s.durationMs) + ', ' + statusText(s) +
    (s.service ? ', service ' + s.service : '') + (events.length ? ', ' + events.length + ' event' + (events.length > 1 ? 's' : '') : '');
  const marks = events.map((e) => {
    const at = Number(BigInt(e.time) - tr.t0);
    const sev = /^(WARN)/i.test(e.severity) ? ' warn' : /^(ERROR|FATAL)/i.test(e.severity) ? ' error' : '';
    const text = 'event ' + e.name + ' at ' + offsetText(at) + ' from the trace start';
    r.evs.push({ t: at });
    return '<span class="ev' + sev + '" role="img" aria-label="' + esc(text) + '" title="' + esc(text) + '" data-t="' + esc(at) + '"></span>';
  }).join('');
  return '<div class="row wf-grid span' + state_ + '" role="treeitem" id="span-' + esc(s.spanId) + '" data-span="' + esc(s.spanId) + '" tabindex="-1"' +
    ' aria-level="' + (r.depth + 1) + '" aria-selected="false"' + (r.kids ? ' aria-expanded="true"' : '') + ' aria-label="' + esc(label) + '">' +
    '<div class="name" style="padding-left:' + esc(indent) + 'px" title="' + esc(s.name) + '"><span class="caret" aria-hidden="true">' + (r.kids ? '▾' : '') + '</span>' + esc(s.name) +
    (s.running ? ' <span class="badge running">running</span>' : s.forcedCause ? ' <span class="badge forced" title="' + esc(s.status.message || '') + '">✖ ' + esc(s.forcedCause) + '</span>' : err ? ' <span class="badge error">error</span>' : '') +
    (s.duplicates && !s.running ? ' <span class="badge dup" title="written again by a replayed step">×' + esc(s.duplicates + 1) + '</span>' : '') + '</div>' +
    '<div class="lane"><div class="bar' + state_ + '"></div>' + marks + '</div>' +
    '<div class="dur">' + (s.running ? '≥ ' : '') + esc(ms(s.durationMs)) + '</div></div>';
}

function metricsHtml(metrics) {
  if (!metrics.length) return '';
  return '<section aria-labelledby="metrics-h"><h3 id="metrics-h" class="section-h">Metrics</h3><div class="details" id="metrics">' + metrics.map(metricHtml).join('') + '</div></section>';
}

function renderTrace(traceId, data) {
  const before = state.trace;
  const same = before && before.id === traceId;
  const keep = same ? { from: view.from, to: view.to, whole: view.from === 0 && view.to === before.total } : null;
  const focused = document.activeElement && document.activeElement.closest && document.activeElement.closest('.row') ? document.activeElement.dataset.span : null;
  const scroll = same ? $('#waterfall').scrollTop : 0;
  if (!same) collapsed = new Set();
  const tr = buildTrace(traceId, data);
  state.trace = tr;
  const summary = state.known.get(traceId);
  const root = tr.rows[0].span;
  const startMs = nsToMs(tr.t0);
  const services = [...new Set(tr.spans.map((s) => s.service).filter(Boolean))];
  indentPx = narrow() ? 8 : 16;
  const rows = tr.rows.map((r) => rowHtml(tr, r)).join('');
  $('#main').innerHTML =
    '<header class="trace-head"><h2 id="trace-title" tabindex="-1">' + esc(summary ? summary.root : root.name) + (summary ? traceBadges(summary) : '') + '</h2>' +
    '<div class="meta">started <time datetime="' + esc(isoTime(startMs)) + '">' + esc(wallClock(startMs)) + '</time> · ' + esc(tr.spans.length) + ' spans · ' + esc(nsText(tr.total)) +
    (services.length ? ' · ' + services.map((n) => '<span class="badge svc">' + esc(n) + '</span>').join('') : '') +
    ' · trace <code class="id">' + esc(traceId) + '</code> <button type="button" class="copy" data-copy="' + esc(traceId) + '" aria-label="Copy the trace id">Copy</button></div></header>' +
    '<div class="toolbar" role="group" aria-label="Time window">' +
    '<button type="button" id="zoom-in" data-zoom="in" aria-label="Zoom in" title="Zoom in (+)">+</button>' +
    '<button type="button" id="zoom-out" data-zoom="out" aria-label="Zoom out" title="Zoom out (−)">−</button>' +
    '<button type="button" id="pan-left" data-zoom="left" aria-label="Pan left" title="Pan left (shift+←)">◀</button>' +
    '<button type="button" id="pan-right" data-zoom="right" aria-label="Pan right" title="Pan right (shift+→)">▶</button>' +
    '<button type="button" id="zoom-reset" data-zoom="reset" title="Whole trace (0)">Reset zoom</button>' +
    '<span id="window-text" aria-hidden="true"></span></div>' +
    '<div class="waterfall" id="waterfall">' +
    '<div class="wf-grid wf-head"><div class="label">Span</div><div>' +
    '<div class="minimap" id="minimap" title="Overview: drag to choose a window, click to move it">' + overviewHtml(tr) + '<div class="window"></div></div>' +
    '<div class="axis" id="axis" tabindex="0" role="slider" aria-label="Time axis: drag to zoom into a range; arrows pan, + and − zoom, 0 resets" aria-valuemin="0" aria-valuemax="100"></div>' +
    '</div><div class="label dur-h">Duration</div></div>' +
    '<div class="rows" id="rows" role="tree" aria-label="Spans of the trace">' + '<div class="gridlines" id="gridlines" aria-hidden="true"></div>' + rows + '</div></div>' +
    '<section class="details" id="details" tabindex="-1" aria-label="Span details">Click a span for its fields and events.</section>' +
    metricsHtml(tr.metrics);
  const rowEls = $('#rows').children;
  tr.rows.forEach((r, i) => {
    r.el = rowEls[i + 1];
    r.bar = $('.bar', r.el);
    $$('.ev', r.el).forEach((el, j) => (r.evs[j].el = el));
  });
  applyCollapsed();
  bindTimeline();
  bindRows();
  if (keep && !keep.whole) setView(keep.from, Math.min(keep.to, tr.total));
  else resetView();
  $('#waterfall').scrollTop = scroll;
  const first = tr.rows.find((r) => r.span.spanId === focused) || tr.rows[0];
  first.el.tabIndex = 0;
  if (focused && first.span.spanId === focused) first.el.focus({ preventScroll: true });
  if (!same) announce('Opened trace ' + (summary ? summary.root : root.name) + ', ' + tr.spans.length + ' spans');
}

// The overview: every span as a thin line over the whole trace (at most 2000 drawn).
function overviewHtml(tr) {
  const n = Math.min(tr.rows.length, 2000);
  let out = '';
  for (let i = 0; i < n; i++) {
    const r = tr.rows[i];
    const top = 2 + (n > 1 ? (i / (n - 1)) * 24 : 12);
    out += '<div class="mm' + (r.span.status.code === 2 ? ' error' : '') + '" style="top:' + top.toFixed(1) + 'px;left:' + ((r.s / tr.total) * 100).toFixed(3) + '%;width:' + (((r.e - r.s) / tr.total) * 100).toFixed(3) + '%"></div>';
  }
  return out;
}

function hiddenByFold(r) {
  for (let p = r.parent; p; p = p.parent) if (collapsed.has(p.span.spanId)) return true;
  return false;
}
function applyCollapsed() {
  // Only what changes is written: a trace of thousands of rows is not restyled whole.
  for (const r of state.trace.rows) {
    const hidden = hiddenByFold(r);
    if (r.el.hidden !== hidden) r.el.hidden = hidden;
    if (r.kids && r.folded !== collapsed.has(r.span.spanId)) {
      r.folded = collapsed.has(r.span.spanId);
      r.el.setAttribute('aria-expanded', String(!r.folded));
      $('.caret', r.el).textContent = r.folded ? '▸' : '▾';
    }
  }
}
function setFolded(r, folded) {
  if (folded) collapsed.add(r.span.spanId);
  else collapsed.delete(r.span.spanId);
  applyCollapsed();
}

const rowOf = (el) => state.trace && state.trace.rows.find((r) => r.el === el);
const visibleRows = () => state.trace.rows.filter((r) => !r.el.hidden).map((r) => r.el);

function bindRows() {
  const rows = $('#rows');
  rows.addEventListener('click', (e) => {
    const el = e.target.closest('.row');
    if (!el) return;
    if (dragged) { dragged = false; return; }
    const r = rowOf(el);
    if (e.target.closest('.caret') && r.kids) { setFolded(r, !collapsed.has(r.span.spanId)); return; }
    for (const x of $$('.row[tabindex="0"]')) x.tabIndex = -1;
    el.tabIndex = 0;
    go(state.trace.id, r.span.spanId);
  });
  rows.addEventListener('dblclick', (e) => {
    const el = e.target.closest('.row');
    if (el && !e.target.closest('.caret')) zoomToSpan(rowOf(el));
  });
  rows.addEventListener('keydown', rowKeys);
}

function rowKeys(e) {
  const el = e.target.closest('.row');
  if (!el || timeKeys(e)) return;
  const r = rowOf(el);
  const list = visibleRows();
  const at = list.indexOf(el);
  const to = arrowTarget(e, list, at);
  if (to !== null) {
    e.preventDefault();
    rove(list, el, to);
  } else if (e.key === 'Enter' || e.key === ' ') {
    e.preventDefault();
    // Enter on the span already open moves to its details.
    if (state.currentSpan === r.span.spanId) $('#details').focus();
    else go(state.trace.id, r.span.spanId);
  } else if (e.key === 'ArrowRight' && r.kids) {
    e.preventDefault();
    if (collapsed.has(r.span.spanId)) setFolded(r, false);
    else rove(visibleRows(), el, visibleRows().indexOf(el) + 1);
  } else if (e.key === 'ArrowLeft') {
    e.preventDefault();
    if (r.kids && !collapsed.has(r.span.spanId)) setFolded(r, true);
    else if (r.parent) rove(visibleRows(), el, visibleRows().indexOf(r.parent.el));
  } else if (e.key === 'z') {
    e.preventDefault();
    zoomToSpan(r);
  }
}

// Focus on the open span's row, else the first one.
function focusSpans() {
  if (!state.trace) return;
  const rows = visibleRows();
  const r = state.trace.rows.find((x) => x.span.spanId === state.currentSpan && !x.el.hidden);
  rove(rows, rows.find((x) => x.tabIndex === 0), r ? rows.indexOf(r.el) : 0);
}
`;
