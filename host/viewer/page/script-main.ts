/**
 * The page script's wiring, loaded last: the route from the URL hash to what is open, live
 * refreshes from the server's events, page-wide keys, and the first load.
 */
export const SCRIPT_MAIN = String.raw`
// Routes run one after another, so back, forward and clicks in quick succession end where the hash ends.
let routing = Promise.resolve();
function route() {
  routing = routing.then(routeNow).catch(reportError);
  return routing;
}
async function routeNow() {
  const { trace, span } = readHash();
  if (!trace) {
    state.current = state.currentSpan = state.trace = null;
    $('#main').innerHTML = '<div class="empty">Choose a trace.</div>';
    for (const el of $$('.trace')) el.classList.remove('selected');
    setListOpen(true);
    toggleListButton();
    return;
  }
  const opening = !state.trace || state.trace.id !== trace;
  if (opening && !(await show(trace))) return;
  if (opening && narrow()) { setListOpen(false); toggleListButton(); }
  openSpan(span, opening || span !== null);
  if (focusAfterOpen) {
    focusAfterOpen = false;
    focusSpans();
  }
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
      const before = $$('.trace').length;
      await load();
      live.listed = true;
      showLive();
      if (state.trace && state.current === state.trace.id) {
        const span = state.currentSpan;
        if ((await show(state.current)) === true) openSpan(span, false);
      }
      const after = $$('.trace').length;
      if (after !== before) announce($('#count').textContent);
    } while (again);
    loadServices().catch(reportError);
  } catch (e) {
    // The viewer stopped, or answered badly: said in the console; the next notification refreshes.
    reportError(e);
  } finally {
    refreshing = false;
  }
}

// The badge says live once the list is shown and the server's events are connected.
const live = { connected: false, listed: false };
const showLive = () => $('#live').classList.toggle('off', !(live.connected && live.listed));
function initLive() {
  if (!window.EventSource) return;
  const events = new EventSource('/api/events');
  let opened = false;
  events.addEventListener('store', refresh);
  events.onopen = () => {
    live.connected = true;
    showLive();
    if (opened) refresh(); // a reconnection: anything that changed meanwhile
    opened = true;
  };
  events.onerror = () => {
    live.connected = false;
    showLive();
  };
}

function initPage() {
  const main = $('#main');
  initList();
  initTimeline(main);
  main.addEventListener('click', (e) => {
    const copy = e.target.closest('button[data-copy]');
    if (copy) copyId(copy);
  });
  // Escape goes back to the list; the window keys work anywhere in the trace but in text fields.
  main.addEventListener('keydown', (e) => {
    if (e.key === 'Escape') { e.preventDefault(); focusList(); return; }
    if (!e.target.closest('.row')) timeKeys(e);
  });
  window.addEventListener('hashchange', route);
  window.addEventListener('resize', () => { setListOpen(!$('#sidebar').hidden || !narrow() || !state.trace); toggleListButton(); });
  initLive();
  loadServices().catch(reportError);
  load().then(() => {
    live.listed = true;
    showLive();
  }, reportError);
  route();
}
initPage();
`;
