/**
 * The viewer page's CSS. Two layouts: from 700 px wide, the trace list beside the trace, each
 * scrolling on its own; below, one column where the list is a panel that opens and closes above
 * the trace, and only the waterfall may scroll sideways.
 */
export const STYLE = String.raw`
:root {
  font: 13px/1.4 system-ui, sans-serif; color: #1d232b;
  --line: #d8dde3; --muted: #5b6470; --panel: #f6f8fa; --accent: #2f62c2; --focus: #1a56db;
  --name-w: 300px; --dur-w: 76px; --row-h: 24px;
}
* { box-sizing: border-box; }
[hidden] { display: none !important; }
body { margin: 0; height: 100vh; display: flex; flex-direction: column; }
button, input, select { font: inherit; }
:focus-visible { outline: 2px solid var(--focus); outline-offset: 1px; }
.sr-only { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
.skip { position: absolute; left: 4px; top: -40px; background: #fff; padding: 4px 8px; z-index: 10; }
.skip:focus { top: 4px; }
code { font-family: ui-monospace, monospace; font-size: 12px; }

/* The bar across the top */
.top { display: flex; align-items: center; gap: 8px; padding: 6px 10px; border-bottom: 1px solid var(--line); background: var(--panel); flex-wrap: wrap; }
.top h1 { font-size: 14px; margin: 0; }
#toggle-list { display: none; }
#count { color: var(--muted); margin-left: auto; }

.layout { flex: 1; min-height: 0; display: grid; grid-template-columns: 340px minmax(0, 1fr); }
aside { border-right: 1px solid var(--line); overflow: auto; background: var(--panel); min-width: 0; }
main { overflow: auto; padding: 10px 14px; min-width: 0; }
main:focus { outline: none; }

/* Search form */
#filters { padding: 8px 10px; border-bottom: 1px solid var(--line); display: grid; grid-template-columns: 1fr 1fr; gap: 6px 8px; }
#filters label { display: flex; flex-direction: column; font-size: 11px; color: var(--muted); min-width: 0; }
#filters .wide { grid-column: 1 / -1; }
#filters input, #filters select { width: 100%; padding: 3px 4px; margin-top: 2px; color: #1d232b; min-width: 0; }
#filters .pair { display: flex; gap: 4px; }
#attr-list { display: flex; flex-direction: column; gap: 4px; }
#filters .actions { grid-column: 1 / -1; display: flex; gap: 6px; align-items: center; }
#filter-note { grid-column: 1 / -1; font-size: 11px; color: #8a5300; margin: 0; }

/* Trace list */
#traces { list-style: none; margin: 0; padding: 0; }
.trace { display: block; padding: 7px 10px; border-bottom: 1px solid #e3e7eb; cursor: pointer; color: inherit; text-decoration: none; }
.trace:hover, .trace.selected { background: #e6eefc; }
.trace:focus-visible { outline-offset: -2px; }
.trace .meta, .meta { color: var(--muted); font-size: 12px; }
.trace .when { float: right; color: var(--muted); font-size: 11px; margin-left: 6px; }
.badge { display: inline-block; padding: 0 6px; border-radius: 8px; font-size: 11px; margin-left: 4px; }
.badge.error { background: #fde2e1; color: #a3211b; }
.badge.forced { background: #fff0d5; color: #8a5300; }
.badge.running { background: #dcf5e7; color: #1f6f49; }
.badge.dup { background: #eceff3; color: #4a5360; }
.badge.svc { background: #e8eefb; color: #2a4a8a; }
#live.off { background: #eceff3; color: #8a929c; }
.empty { color: var(--muted); padding: 20px; }

/* Trace header and zoom toolbar */
.trace-head h2 { font-size: 15px; margin: 2px 0 2px; overflow-wrap: anywhere; }
.trace-head .meta { margin-bottom: 6px; overflow-wrap: anywhere; }
.toolbar { display: flex; gap: 4px; align-items: center; flex-wrap: wrap; margin: 4px 0 6px; }
.toolbar button, .copy { padding: 1px 8px; border: 1px solid #b9c2cd; background: #fff; border-radius: 4px; cursor: pointer; }
.toolbar button:hover, .copy:hover { background: #eef2f7; }
#window-text { color: var(--muted); font-size: 12px; margin-left: 4px; }

/* Waterfall: name | lane | duration. Only it scrolls sideways, and only when it must. */
/* It scrolls on its own (its head stays), so the details below it stay in reach. */
.waterfall { overflow: auto; max-height: 62vh; border: 1px solid var(--line); border-radius: 6px; }
.wf-grid { display: grid; grid-template-columns: var(--name-w) minmax(120px, 1fr) var(--dur-w); min-width: calc(var(--name-w) + 120px + var(--dur-w)); }
.wf-head { position: sticky; top: 0; z-index: 2; background: #fff; border-bottom: 1px solid var(--line); }
.wf-head .label { font-size: 11px; color: var(--muted); padding: 4px 6px; align-self: end; }
.wf-head .label.dur-h { text-align: right; }
.minimap { position: relative; height: 30px; background: #f3f5f8; cursor: crosshair; border-bottom: 1px solid #e3e7eb; touch-action: none; overflow: hidden; }
.minimap .mm { position: absolute; height: 2px; min-width: 1px; background: #7f9fd6; }
.minimap .mm.error { background: #d8473f; }
.minimap .window { position: absolute; top: 0; bottom: 0; background: rgba(47, 98, 194, 0.12); border-left: 2px solid var(--accent); border-right: 2px solid var(--accent); pointer-events: none; }
.axis { position: relative; height: 22px; cursor: crosshair; overflow: hidden; touch-action: none; }
.axis .tick { position: absolute; top: 0; bottom: 0; border-left: 1px solid #aab3bf; padding-left: 3px; font-size: 10px; color: var(--muted); white-space: nowrap; line-height: 22px; }
.brush { position: absolute; top: 0; bottom: 0; background: rgba(47, 98, 194, 0.25); pointer-events: none; }
.rows { position: relative; min-width: calc(var(--name-w) + 120px + var(--dur-w)); }
.gridlines { position: absolute; top: 0; bottom: 0; left: var(--name-w); right: var(--dur-w); pointer-events: none; }
.gridlines div { position: absolute; top: 0; bottom: 0; border-left: 1px solid #eef1f4; }
/* Rows out of view are not laid out or painted until scrolled to (a trace of thousands of spans opens fast). */
.row { align-items: center; height: var(--row-h); cursor: pointer; position: relative; content-visibility: auto; contain-intrinsic-size: auto var(--row-h); }
.row:hover { background: #f1f4f8; }
.row.open { background: #e6eefc; }
.row:focus-visible { outline-offset: -2px; }
.name { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; padding-right: 4px; }
.caret { display: inline-block; width: 14px; color: var(--muted); text-align: center; }
.lane { position: relative; height: var(--row-h); overflow: hidden; }
.lane.panning { cursor: grabbing; }
.bar { position: absolute; top: 6px; height: 12px; min-width: 2px; border-radius: 3px; background: #4a7fd6; }
.bar.error { background: #d8473f; }
/* Still open: drawn from its start to when the store was read, hatched, with no right edge. */
.bar.running { background: repeating-linear-gradient(135deg, #2e9d6a 0 4px, #8fd1ae 4px 8px); border-radius: 3px 0 0 3px; }
/* Cut by the visible window: the cut side is square. */
.bar.cut-l { border-top-left-radius: 0; border-bottom-left-radius: 0; border-left: 2px dotted #1d232b; }
.bar.cut-r { border-top-right-radius: 0; border-bottom-right-radius: 0; border-right: 2px dotted #1d232b; }
.ev { position: absolute; top: 7px; width: 9px; height: 9px; margin-left: -4.5px; transform: rotate(45deg); background: #f4b400; border: 1px solid #7a5a00; z-index: 1; }
.ev.warn { background: #ff8f3a; }
.ev.error { background: #b3261e; border-color: #5c120e; }
.dur { text-align: right; color: var(--muted); padding-right: 6px; white-space: nowrap; }

/* Details of the open span */
.details { margin: 10px 0 0; padding: 10px 12px; border: 1px solid var(--line); border-radius: 6px; background: #fbfcfd; overflow-wrap: anywhere; }
.details h3 { font-size: 14px; margin: 0 0 4px; }
.details h4 { font-size: 12px; margin: 10px 0 4px; color: #39414b; text-transform: uppercase; letter-spacing: 0.03em; }
.details .note { margin: 2px 0; }
.ids { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: 2px 10px; margin: 6px 0 0; }
.ids dt { color: var(--muted); }
.ids dd { margin: 0; min-width: 0; }
.kv { font-family: ui-monospace, monospace; font-size: 12px; white-space: pre-wrap; }
.kv .k { color: #2a4a8a; }
.evlist { list-style: none; margin: 0; padding: 0; font-family: ui-monospace, monospace; font-size: 12px; }
.evlist li { white-space: pre-wrap; }
.evlist .at { color: var(--muted); display: inline-block; min-width: 7em; }
.links a { font-family: ui-monospace, monospace; font-size: 12px; }

/* Metrics; a histogram as its buckets */
.metric { margin: 6px 0; }
.hist { list-style: none; margin: 4px 0 0; padding: 0; max-width: 420px; font-size: 11px; }
.hist li { display: grid; grid-template-columns: 70px 1fr 40px; gap: 6px; align-items: center; height: 15px; }
.hist .bound { text-align: right; color: var(--muted); white-space: nowrap; }
.hist .hbar { height: 10px; background: #7f9fd6; min-width: 1px; }
.hist .hbar.zero { background: transparent; min-width: 0; }
.hist .n { text-align: right; }

@media (max-width: 699px) {
  :root { --name-w: 118px; --dur-w: 58px; }
  body { height: auto; min-height: 100vh; }
  #toggle-list { display: inline-block; }
  .layout { display: block; }
  aside { border-right: 0; border-bottom: 1px solid var(--line); max-height: 70vh; }
  main { overflow: visible; padding: 8px; }
  .waterfall { max-height: none; }
  .ids { grid-template-columns: minmax(0, 1fr); }
  .hist li { grid-template-columns: 56px 1fr 32px; }
}
`;
