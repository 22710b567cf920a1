/**
 * The page script's trace list: the search form as the API's query parameters, the list drawn
 * from the answer ("N of M traces"), services for the form, and keyboard movement in the list.
 *
 * Criteria a summary can answer (status, execution id, duration, start, service) are also applied
 * at once to the summaries already known, so the list follows typing before the server answers.
 */
export const SCRIPT_LIST = String.raw`
const RANGE_MINUTES = { 15: 15, 60: 60, 1440: 1440 };

function attrFilters() {
  return $$('.attr-input').map((i) => i.value.trim()).filter((v) => v !== '');
}
function localTimeMs(input) {
  const t = input.value ? new Date(input.value).getTime() : NaN;
  return Number.isNaN(t) ? null : t;
}
// The search as plain values; the API's query parameters are made from it, and the list filtered by it.
function search() {
  const range = $('#filter-range').value;
  const minutes = RANGE_MINUTES[range];
  const num = (el) => (el.value.trim() === '' || Number.isNaN(Number(el.value)) ? null : Number(el.value));
  return {
    name: $('#filter-name').value.trim(),
    service: $('#filter-service').value,
    status: $('#filter-status').value,
    attrs: attrFilters(),
    minMs: num($('#filter-min')),
    maxMs: num($('#filter-max')),
    from: minutes ? Date.now() - minutes * 60000 : range === 'custom' ? localTimeMs($('#filter-from')) : null,
    to: range === 'custom' ? localTimeMs($('#filter-to')) : null,
    execution: $('#filter-execution').value.trim(),
    range,
  };
}
// What identifies a search: a relative range ("last hour") by its name, since its start moves with the clock.
function searchKey(q) {
  return RANGE_MINUTES[q.range] ? queryOf({ ...q, from: null }) + '&range=' + q.range : queryOf(q);
}
function queryOf(q) {
  const p = new URLSearchParams();
  if (q.service) p.append('service', q.service);
  if (q.name) p.set('name', q.name);
  for (const a of q.attrs) p.append('attr', a);
  if (q.minMs !== null) p.set('minMs', String(q.minMs));
  if (q.maxMs !== null) p.set('maxMs', String(q.maxMs));
  if (q.status !== 'all') p.set('status', q.status);
  if (q.from !== null) p.set('from', String(q.from));
  if (q.to !== null) p.set('to', String(q.to));
  if (q.execution) p.set('execution', q.execution);
  return p.toString();
}
// What a summary alone can tell of the search (not span names nor attributes: the server's part).
function summaryMatches(t, q) {
  const start = traceStartMs(t);
  return (!q.execution || t.executionIds.some((id) => id.includes(q.execution))) &&
    (q.status === 'all' || (q.status === 'error' && t.errors > 0) || (q.status === 'forced' && t.forced.length > 0) || (q.status === 'running' && t.running > 0) || (q.status === 'ok' && t.errors === 0)) &&
    (q.minMs === null || t.durationMs >= q.minMs) && (q.maxMs === null || t.durationMs <= q.maxMs) &&
    (q.from === null || start >= q.from) && (q.to === null || start <= q.to) &&
    (!q.service || !Array.isArray(t.services) || t.services.includes(q.service));
}

// One answer at a time counts: a slower answer to an older search is dropped.
let listSeq = 0;
let answeredQuery = null;
let refused = false;
async function load() {
  const seq = ++listSeq;
  const q = search();
  const query = queryOf(q);
  const res = await fetch('/api/traces' + (query ? '?' + query : ''));
  if (seq !== listSeq) return;
  showSkipped(res);
  showIndexing(res);
  if (res.status === 400) {
    // The server refused the search (a parameter it cannot read): said beside the form.
    const body = await res.json();
    if (seq !== listSeq) return;
    const note = $('#filter-note');
    note.hidden = false;
    note.textContent = 'The search was refused: ' + (body && body.error ? body.error : 'bad query');
    refused = true;
    return;
  }
  if (!res.ok) throw new Error('the trace list answered ' + res.status);
  refused = false;
  const list = await res.json();
  if (seq !== listSeq) return;
  const matched = res.headers.get('X-Sandtrace-Matched');
  state.serverFilters = matched !== null;
  state.matched = matched === null ? null : Number(matched);
  state.answer = list;
  answeredQuery = searchKey(q);
  // An unfiltered answer is the whole list: what was known before and is not in it left the store.
  if (!query) state.known.clear();
  for (const t of list) state.known.set(t.traceId, t);
  renderList();
}

// While the store is first indexed the server answers with what it has so far (X-Sandtrace-Indexing:
// bytes indexed / bytes): said, and the list (and the open trace) asked again until the index is whole.
let indexingTimer = null;
function showIndexing(res) {
  const m = /^(\d+)\/(\d+)$/.exec(res.headers.get('X-Sandtrace-Indexing') || '');
  $('#indexing').hidden = m === null;
  if (m === null) return;
  const pct = Number(m[2]) > 0 ? Math.floor((100 * Number(m[1])) / Number(m[2])) : 0;
  $('#indexing').textContent = 'indexing… ' + pct + '%';
  if (indexingTimer === null) indexingTimer = setTimeout(() => {
    indexingTimer = null;
    // The open trace too (refresh): it may have been drawn from part of its lines.
    refresh();
  }, 1000);
}

async function loadServices() {
  const res = await fetch('/api/services');
  const select = $('#filter-service');
  if (!res.ok) {
    // A viewer without the services API: the field stays, with nothing to choose.
    select.disabled = true;
    select.title = 'this viewer does not list services';
    return;
  }
  const names = await res.json();
  const chosen = select.value;
  select.innerHTML = '<option value="">all services</option>' + names.map((n) => '<option>' + esc(n) + '</option>').join('');
  if (names.includes(chosen)) select.value = chosen;
}

function traceLabel(t) {
  return t.root + ', ' + t.spans + ' span' + (t.spans === 1 ? '' : 's') + ', ' + (t.running ? 'at least ' : '') + ms(t.durationMs) +
    (t.errors ? ', ' + t.errors + ' error' + (t.errors > 1 ? 's' : '') : '') + (t.forced.length ? ', force-closed: ' + t.forced.join(', ') : '') +
    (t.running ? ', in progress' : '') + ', started ' + wallClock(traceStartMs(t));
}

// A trace in progress has running spans; duplicates are span records written again by a replayed step.
function traceBadges(t) {
  return (t.running ? '<span class="badge running">in progress</span>' : '') +
    (t.duplicateSpans ? '<span class="badge dup" title="span records dropped: a span with the same ids was already written (a replayed step)">' + esc(t.duplicateSpans) + ' duplicate' + (t.duplicateSpans > 1 ? 's' : '') + '</span>' : '');
}

function renderList() {
  const q = search();
  const answered = answeredQuery === searchKey(q) && state.answer !== null;
  // Until the answer to this search comes, the known summaries stand in, filtered here.
  const source = answered ? state.answer : [...state.known.values()].sort((a, b) => traceStartMs(b) - traceStartMs(a));
  const shown = source.filter((t) => summaryMatches(t, q));
  const focused = document.activeElement && document.activeElement.classList.contains('trace') ? document.activeElement.dataset.trace : null;
  $('#traces').innerHTML = shown.map((t) =>
    '<li><a class="trace" href="' + esc(hashFor(t.traceId)) + '" tabindex="-1" data-trace="' + esc(t.traceId) + '" aria-label="' + esc(traceLabel(t)) + '">' +
    '<span class="when" title="' + esc(isoTime(traceStartMs(t))) + '">' + esc(wallClock(traceStartMs(t))) + '</span>' +
    '<span class="root">' + esc(t.root) + '</span>' + (t.errors ? '<span class="badge error">' + esc(t.errors) + ' error' + (t.errors > 1 ? 's' : '') + '</span>' : '') +
    t.forced.map((c) => '<span class="badge forced">✖ ' + esc(c) + '</span>').join('') + traceBadges(t) +
    '<span class="meta" style="display:block">' + [t.spans + ' spans', (t.running ? '≥ ' : '') + ms(t.durationMs),
      Array.isArray(t.services) ? t.services.join(', ') : '', t.executionIds.join(', ')].filter(Boolean).map(esc).join(' · ') + '</span></a></li>').join('')
    || '<li class="empty">No traces match.</li>';
  const rows = $$('.trace');
  for (const el of rows) el.classList.toggle('selected', el.dataset.trace === state.current);
  // One row is in the tab order: the focused one, else the open trace's, else the first.
  const keep = rows.find((el) => el.dataset.trace === focused) || rows.find((el) => el.dataset.trace === state.current) || rows[0];
  if (keep) keep.tabIndex = 0;
  if (focused && keep && keep.dataset.trace === focused) keep.focus();
  const total = answered && state.matched !== null ? state.matched : source.length;
  $('#count').textContent = shown.length + ' of ' + total + ' traces' + (answered ? '' : ' …');
  const serverOnly = q.name || q.attrs.length;
  const note = $('#filter-note');
  if (!refused) {
    note.hidden = !(serverOnly && state.serverFilters === false);
    note.textContent = 'This viewer does not search span names or attributes: those fields are not applied.';
  }
  toggleListButton();
}

// Typing searches: the list follows at once from what is known, and the server is asked shortly after.
let searchTimer = 0;
function searchChanged() {
  $('#from-label').hidden = $('#to-label').hidden = $('#filter-range').value !== 'custom';
  renderList();
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => load().then(() => announce($('#count').textContent), reportError), 200);
}

function reportError(e) {
  console.error('sandtrace view:', e);
}

function listKeys(e) {
  const rows = $$('.trace');
  const at = rows.indexOf(document.activeElement);
  if (at < 0) return;
  const to = arrowTarget(e, rows, at);
  if (to !== null) {
    e.preventDefault();
    rove(rows, rows[at], to);
  } else if (e.key === 'Enter' || e.key === ' ') {
    e.preventDefault();
    focusAfterOpen = true;
    if (rows[at].dataset.trace === state.current) focusSpans();
    else go(rows[at].dataset.trace);
  }
}

// At narrow widths the list is a panel above the trace, opened and closed by the button in the bar.
function setListOpen(open) {
  $('#sidebar').hidden = !open && narrow();
  $('#toggle-list').setAttribute('aria-expanded', String(!$('#sidebar').hidden));
}
function toggleListButton() {
  $('#toggle-list').textContent = ($('#sidebar').hidden ? '☰ Traces' : '✕ Traces') + ' (' + $$('.trace').length + ')';
}

function initList() {
  const form = $('#filters');
  form.addEventListener('input', searchChanged);
  form.addEventListener('change', searchChanged);
  form.addEventListener('submit', (e) => { e.preventDefault(); searchChanged(); });
  form.addEventListener('reset', () => {
    for (const extra of $$('.attr-input').slice(1)) extra.remove();
    setTimeout(searchChanged, 0);
  });
  $('#add-attr').addEventListener('click', () => {
    const input = document.createElement('input');
    input.className = 'attr-input';
    input.placeholder = 'key=value';
    input.autocomplete = 'off';
    input.setAttribute('aria-label', 'another attribute key=value');
    $('#attr-list').append(input);
    input.focus();
  });
  $('#traces').addEventListener('keydown', listKeys);
  // A click opens through the link's own hash; on a narrow screen the panel then gets out of the way.
  $('#traces').addEventListener('click', (e) => {
    const row = e.target.closest('.trace');
    if (row && row.dataset.trace === state.current) e.preventDefault();
  });
  $('#toggle-list').addEventListener('click', () => {
    setListOpen($('#sidebar').hidden);
    toggleListButton();
    if (!$('#sidebar').hidden) focusList();
  });
}

function focusList() {
  setListOpen(true);
  toggleListButton();
  const rows = $$('.trace');
  const row = rows.find((el) => el.dataset.trace === state.current) || rows[0];
  if (row) rove(rows, rows.find((el) => el.tabIndex === 0), rows.indexOf(row));
}
`;
