/**
 * The page script's time axis: the visible window of the open trace (ns from its start), ticks at
 * round steps, zoom and pan (buttons, keys, drag on the axis or the overview, drag on the bars,
 * shift+wheel), and laying the bars and event markers out for the window, cut where it ends.
 */
export const SCRIPT_TIMELINE = String.raw`
// The visible window, ns from the trace's start. Narrower than 1 µs is not useful (ns clocks).
const view = { from: 0, to: 1 };
const MIN_WINDOW_NS = 1000;

function setView(from, to) {
  const total = state.trace.total;
  let w = Math.min(total, Math.max(to - from, Math.min(MIN_WINDOW_NS, total)));
  let f = to - from < w ? (from + to) / 2 - w / 2 : from;
  f = Math.max(0, Math.min(total - w, f));
  view.from = f;
  view.to = f + w;
  layout();
}
function resetView() { setView(0, state.trace.total); }
// Zooms by factor (< 1 is in) keeping the time at 'at' where it is on screen (the middle by default).
function zoomBy(factor, at) {
  const w = view.to - view.from;
  const c = at === undefined ? view.from + w / 2 : at;
  const nw = w * factor;
  const from = c - (c - view.from) * (nw / w);
  setView(from, from + nw);
}
function panBy(fraction) {
  const w = view.to - view.from;
  setView(view.from + w * fraction, view.to + w * fraction);
}
function zoomToSpan(r) {
  const pad = Math.max((r.e - r.s) * 0.05, MIN_WINDOW_NS / 2);
  setView(r.s - pad, r.e + pad);
}

// A round step (1, 2 or 5 × 10^k ns) giving about 'count' ticks over w ns.
function niceStep(w, count) {
  const raw = Math.max(1, w / Math.max(1, count));
  const p = Math.pow(10, Math.floor(Math.log10(raw)));
  const m = raw / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}
// A tick's label: time from the trace's start, in the unit of the window's far end, with as many
// decimals as the step needs (140.35 ms, not 140350 µs).
function tickLabel(ns, step, far) {
  if (ns === 0) return '0';
  const [unit, size] = far >= 1e9 ? ['s', 1e9] : far >= 1e6 ? ['ms', 1e6] : far >= 1e3 ? ['µs', 1e3] : ['ns', 1];
  const decimals = Math.min(6, Math.max(0, Math.ceil(-Math.log10(step / size) - 1e-9)));
  return (ns / size).toFixed(decimals) + ' ' + unit;
}

function layout() {
  const tr = state.trace;
  if (!tr || !$('#axis')) return;
  const w = view.to - view.from;
  const x = (ns) => ((ns - view.from) / w) * 100;
  for (const r of tr.rows) {
    const l = x(r.s);
    const rr = x(r.e);
    const visible = rr >= 0 && l <= 100;
    if (r.bar.hidden === visible) r.bar.hidden = !visible;
    if (visible) {
      const cl = Math.max(0, l);
      const cr = Math.min(100, rr);
      r.bar.style.left = cl + '%';
      r.bar.style.width = Math.max(0, cr - cl) + '%';
      const cut = (l < 0 ? 1 : 0) + (rr > 100 && !r.span.running ? 2 : 0);
      if (r.cut !== cut) {
        r.cut = cut;
        r.bar.classList.toggle('cut-l', (cut & 1) !== 0);
        r.bar.classList.toggle('cut-r', (cut & 2) !== 0);
      }
    }
    for (const ev of r.evs) {
      const p = x(ev.t);
      ev.el.hidden = p < 0 || p > 100;
      ev.el.style.left = p + '%';
    }
  }
  const axis = $('#axis');
  const px = axis.clientWidth || 600;
  const step = niceStep(w, Math.max(3, Math.floor(px / 80)));
  let ticks = '';
  let lines = '';
  for (let k = Math.ceil(view.from / step); k * step <= view.to; k++) {
    const p = x(k * step);
    // A label with no room before the right edge is left off; its line stays.
    const label = ((100 - p) / 100) * px >= 40 ? esc(tickLabel(k * step, step, view.to)) : '';
    ticks += '<div class="tick" style="left:' + p + '%">' + label + '</div>';
    lines += '<div style="left:' + p + '%"></div>';
  }
  axis.innerHTML = ticks;
  $('#gridlines').innerHTML = lines;
  const box = $('#minimap .window');
  box.style.left = (view.from / tr.total) * 100 + '%';
  box.style.width = (w / tr.total) * 100 + '%';
  const whole = view.from === 0 && view.to === tr.total;
  // The window's ends as precisely as its width needs.
  const end = (ns) => tickLabel(ns, niceStep(w, 20), view.to);
  const text = whole ? 'whole trace, ' + nsText(tr.total) : end(view.from) + ' – ' + end(view.to) + ' (' + nsText(w) + ') of ' + nsText(tr.total);
  $('#window-text').textContent = text;
  axis.setAttribute('aria-valuenow', String(Math.round((view.from / tr.total) * 100)));
  axis.setAttribute('aria-valuetext', 'showing ' + text);
  $('#zoom-reset').disabled = whole;
}

// Where a pointer is, as ns: on the axis (the window) or on the overview (the whole trace). Within
// 3 px of an end is that end, so a drag from the edge starts at the very start.
function nsAt(el, clientX, whole) {
  const rect = el.getBoundingClientRect();
  const x = clientX - rect.left;
  const f = x <= 3 ? 0 : x >= rect.width - 3 ? 1 : x / (rect.width || 1);
  return whole ? f * state.trace.total : view.from + f * (view.to - view.from);
}

// Dragging across the axis or the overview chooses a window; a click on the overview moves the window there.
function brush(el, whole) {
  el.addEventListener('pointerdown', (e) => {
    if (e.button !== 0 || !state.trace) return;
    e.preventDefault();
    el.setPointerCapture(e.pointerId);
    const rect = el.getBoundingClientRect();
    const x0 = e.clientX;
    const a = nsAt(el, x0, whole);
    const shade = document.createElement('div');
    shade.className = 'brush';
    el.append(shade);
    const move = (m) => {
      const l = Math.max(0, Math.min(x0, m.clientX) - rect.left);
      const r = Math.min(rect.width, Math.max(x0, m.clientX) - rect.left);
      shade.style.left = l + 'px';
      shade.style.width = Math.max(0, r - l) + 'px';
    };
    const up = (u) => {
      el.removeEventListener('pointermove', move);
      el.removeEventListener('pointerup', up);
      el.removeEventListener('pointercancel', up);
      shade.remove();
      if (u.type === 'pointercancel') return;
      const b = nsAt(el, u.clientX, whole);
      if (Math.abs(u.clientX - x0) >= 4) setView(Math.min(a, b), Math.max(a, b));
      else if (whole) { const w = view.to - view.from; setView(b - w / 2, b + w / 2); }
    };
    el.addEventListener('pointermove', move);
    el.addEventListener('pointerup', up);
    el.addEventListener('pointercancel', up);
  });
}

// Dragging along the bars pans; a drag is not a click on the row.
let dragged = false;
function panByDrag(rows) {
  rows.addEventListener('pointerdown', (e) => {
    const lane = e.target.closest('.lane');
    if (e.button !== 0 || !lane || !state.trace) return;
    const x0 = e.clientX;
    const from0 = view.from;
    const width = lane.getBoundingClientRect().width || 1;
    dragged = false;
    const move = (m) => {
      if (!dragged && Math.abs(m.clientX - x0) < 4) return;
      if (!dragged) { dragged = true; lane.setPointerCapture(e.pointerId); lane.classList.add('panning'); }
      const w = view.to - view.from;
      setView(from0 - ((m.clientX - x0) / width) * w, from0 - ((m.clientX - x0) / width) * w + w);
    };
    const up = () => {
      window.removeEventListener('pointermove', move);
      window.removeEventListener('pointerup', up);
      lane.classList.remove('panning');
    };
    window.addEventListener('pointermove', move);
    window.addEventListener('pointerup', up);
  });
}

// Shift+wheel (or a sideways wheel) pans anywhere on the waterfall; the wheel over the axis or overview zooms.
function wheel(waterfall) {
  waterfall.addEventListener('wheel', (e) => {
    if (!state.trace) return;
    const onScale = e.target.closest('#axis, #minimap');
    const sideways = e.shiftKey ? e.deltaY || e.deltaX : Math.abs(e.deltaX) > Math.abs(e.deltaY) ? e.deltaX : 0;
    if (sideways) {
      e.preventDefault();
      const lane = $('#axis').getBoundingClientRect().width || 1;
      const w = view.to - view.from;
      setView(view.from + (sideways / lane) * w, view.to + (sideways / lane) * w);
    } else if (onScale && e.deltaY) {
      e.preventDefault();
      zoomBy(Math.exp(e.deltaY * 0.002), nsAt($('#axis'), e.clientX, false));
    }
  }, { passive: false });
}

// Keys for the window, wherever focus is in the trace (not in a text field): + - 0, shift+arrows.
// On the axis itself, plain arrows pan too.
function timeKeys(e) {
  if (!state.trace || e.ctrlKey || e.metaKey || e.altKey) return false;
  const onAxis = e.target.id === 'axis';
  if (e.key === '+' || e.key === '=') zoomBy(0.5);
  else if (e.key === '-' || e.key === '_') zoomBy(2);
  else if (e.key === '0') resetView();
  else if ((e.shiftKey || onAxis) && e.key === 'ArrowLeft') panBy(-0.2);
  else if ((e.shiftKey || onAxis) && e.key === 'ArrowRight') panBy(0.2);
  else if (onAxis && e.key === 'Home') setView(0, view.to - view.from);
  else if (onAxis && e.key === 'End') setView(state.trace.total - (view.to - view.from), state.trace.total);
  else return false;
  e.preventDefault();
  return true;
}

function initTimeline(main) {
  main.addEventListener('click', (e) => {
    const b = e.target.closest('[data-zoom]');
    if (!b || !state.trace) return;
    const what = b.dataset.zoom;
    if (what === 'in') zoomBy(0.5);
    else if (what === 'out') zoomBy(2);
    else if (what === 'reset') resetView();
    else if (what === 'left') panBy(-0.2);
    else if (what === 'right') panBy(0.2);
    else if (what === 'span') {
      const r = state.trace.rows.find((x) => x.span.spanId === state.currentSpan);
      if (r) zoomToSpan(r);
    }
  });
  window.addEventListener('resize', () => layout());
}

// Wires the pointer gestures of a freshly drawn waterfall.
function bindTimeline() {
  brush($('#axis'), false);
  brush($('#minimap'), true);
  panByDrag($('#rows'));
  wheel($('#waterfall'));
}
`;
