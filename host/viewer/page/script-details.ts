/**
 * The page script's details of the open span: ids (copyable), status, fields, resource, events
 * once each with their time, logs, links to other spans, and the trace's metrics with histograms
 * drawn as their buckets.
 */
export const SCRIPT_DETAILS = String.raw`
function copyButton(text, what) {
  return '<button type="button" class="copy" data-copy="' + esc(text) + '" aria-label="Copy the ' + esc(what) + '">Copy</button>';
}
function idHtml(text, what) {
  return '<code class="id">' + esc(text) + '</code> ' + copyButton(text, what);
}

// Copies with the clipboard API; where there is none, or it is refused, the id is selected instead.
async function copyId(button) {
  const text = button.dataset.copy;
  let copied = false;
  if (navigator.clipboard && navigator.clipboard.writeText) {
    copied = await navigator.clipboard.writeText(text).then(() => true, (e) => {
      console.warn('sandtrace view: the clipboard refused (' + e.name + '); the id is selected instead');
      return false;
    });
  }
  if (!copied) {
    const code = button.previousElementSibling;
    const range = document.createRange();
    range.selectNodeContents(code);
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }
  button.textContent = copied ? 'Copied' : 'Selected: Ctrl+C';
  announce(copied ? 'Copied ' + text : 'Selected ' + text + ': press Ctrl+C to copy');
  setTimeout(() => (button.textContent = 'Copy'), 1500);
}

function linkHtml(l) {
  const here = l.traceId === state.trace.id;
  return '<li><a href="' + esc(hashFor(l.traceId, l.spanId)) + '">' + (here ? 'span ' : 'trace ' + esc(l.traceId) + ' · span ') + esc(l.spanId) + '</a>' +
    (Object.keys(l.attributes || {}).length ? ' ' + esc(valueText(l.attributes)) : '') + '</li>';
}

function detailsHtml(s) {
  const tr = state.trace;
  const off = Number(BigInt(s.start) - tr.t0);
  const { events, logs } = eventsOf(tr, s);
  const resource = typeof s.resource === 'number' && tr.resources[s.resource] ? tr.resources[s.resource] : null;
  const parent = s.parentSpanId ? tr.byId.get(s.parentSpanId) : null;
  const at = (time) => {
    const t = Number(BigInt(time) - tr.t0);
    return '<span class="at">+' + esc(offsetText(t)) + '</span>';
  };
  const notes = [];
  if (s.status.message) notes.push(' — ' + s.status.message);
  if (s.running) notes.push('running: started, not ended when the store was read (' + ms(s.durationMs) + ' so far)');
  if (s.duplicates) notes.push(s.duplicates + (s.running ? ' identical "span started" record' : ' more record') + (s.duplicates > 1 ? 's' : '') + ' of this span dropped' + (s.running ? '' : ' (a replayed step; the first written is shown)'));
  const row = (dt, dd) => '<dt>' + dt + '</dt><dd>' + dd + '</dd>';
  return '<h3 id="details-h">' + esc(s.name) + ' <span class="meta">' + esc(statusText(s)) + '</span></h3>' +
    notes.map((n) => '<p class="note">' + esc(n) + '</p>').join('') +
    '<dl class="ids">' +
    row('trace id', idHtml(tr.id, 'trace id')) +
    row('span id', idHtml(s.spanId, 'span id')) +
    row('parent', !s.parentSpanId ? '(root)' : parent ? '<a href="' + esc(hashFor(tr.id, parent.spanId)) + '">' + esc(parent.name) + '</a> <code>' + esc(s.parentSpanId) + '</code>' : '<code>' + esc(s.parentSpanId) + '</code> (not in this trace)') +
    (s.service ? row('service', esc(s.service)) : '') +
    row('scope', esc(s.scope || '—')) +
    row('started', esc(wallClock(nsToMs(s.start))) + ' <span class="meta">(' + (off > 0 ? '+' + esc(offsetText(off)) + ' from the trace start' : 'the trace start') + ')</span>') +
    row('duration', (s.running ? '≥ ' : '') + esc(ms(s.durationMs)) + ' <button type="button" class="copy" data-zoom="span">Zoom to span</button>') +
    (s.executionId ? row('execution', esc(s.executionId)) : '') +
    '</dl>' +
    '<h4>fields</h4>' + kvHtml(s.attributes) +
    '<h4>events</h4>' + (events.length ? '<ol class="evlist">' + events.map((e) => '<li>' + at(e.time) + ' ' + (e.severity ? esc(e.severity) + ' ' : '') + esc(e.name) +
      (Object.keys(e.attributes).length ? ' ' + esc(valueText(e.attributes)) : '') + '</li>').join('') + '</ol>' : '<div class="kv">(none)</div>') +
    (logs.length ? '<h4>logs</h4><ol class="evlist">' + logs.map((l) => '<li>' + at(l.time) + ' ' + esc(l.severity) + ' ' + esc(l.body) + '</li>').join('') + '</ol>' : '') +
    (s.links && s.links.length ? '<h4>links</h4><ul class="links">' + s.links.map(linkHtml).join('') + '</ul>' : '') +
    (resource ? '<h4>resource</h4>' + kvHtml(resource) : '');
}

function openSpan(spanId, scroll) {
  const tr = state.trace;
  const s = spanId ? tr.byId.get(spanId) : null;
  state.currentSpan = s ? s.spanId : null;
  for (const r of tr.rows) {
    const on = r.span === s;
    r.el.classList.toggle('open', on);
    r.el.setAttribute('aria-selected', String(on));
  }
  const details = $('#details');
  if (!s) {
    details.innerHTML = spanId ? 'The span <code>' + esc(spanId) + '</code> is not in this trace.' : 'Click a span for its fields and events.';
    return;
  }
  // A span inside a folded subtree is unfolded to be seen.
  for (let p = tr.rows.find((r) => r.span === s).parent; p; p = p.parent) collapsed.delete(p.span.spanId);
  applyCollapsed();
  details.innerHTML = detailsHtml(s);
  const r = tr.rows.find((x) => x.span === s);
  for (const x of $$('.row[tabindex="0"]')) x.tabIndex = -1;
  r.el.tabIndex = 0;
  if (scroll) r.el.scrollIntoView({ block: 'center' });
}

// A histogram as its buckets, from the first that holds values to the last: bound, bar, count.
function histogramHtml(m) {
  const h = m.histogram;
  const first = h.buckets.findIndex((n) => n > 0);
  if (first < 0) return '<div class="meta">no values</div>';
  let last = h.buckets.length - 1;
  while (h.buckets[last] === 0) last--;
  const max = Math.max(...h.buckets);
  const bound = (i) => (i < h.bounds.length ? '≤ ' + h.bounds[i] : '> ' + h.bounds[h.bounds.length - 1]);
  let items = '';
  for (let i = first; i <= last; i++) {
    const n = h.buckets[i];
    items += '<li><span class="bound">' + esc(bound(i)) + '</span><span class="hbar' + (n ? '' : ' zero') + '" style="width:' + ((n / max) * 100).toFixed(1) + '%" aria-hidden="true"></span>' +
      '<span class="n"><span class="sr-only">: </span>' + esc(n) + '</span></li>';
  }
  const left = first + (h.buckets.length - 1 - last);
  return '<ul class="hist" aria-label="' + esc(m.name + ' histogram, ' + h.count + ' values, by bucket') + '">' + items + '</ul>' +
    (left ? '<div class="meta">' + esc(left) + ' empty bucket' + (left > 1 ? 's' : '') + ' not shown</div>' : '');
}

function metricHtml(m) {
  const attrs = Object.keys(m.attributes || {}).length ? ' ' + valueText(m.attributes) : '';
  return '<div class="metric"><div class="kv"><span class="k">' + esc(m.kind + ' ' + m.name) + '</span> = ' + esc(valueText(m.value)) + esc(attrs) +
    (m.histogram ? esc(' (count ' + m.histogram.count + ', sum ' + valueText(m.value) + ')') : '') + '</div>' +
    (m.histogram ? histogramHtml(m) : '') + '</div>';
}
`;
