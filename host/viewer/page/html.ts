/**
 * The viewer page's document: landmarks (banner, the trace list with its search form, the trace),
 * the search form's fields, and a polite live region. What fills them comes from the script.
 */
export function pageHtml(style: string, script: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sandtrace — traces</title>
<link rel="icon" href="data:,">
<style>${style}</style>
</head>
<body>
<a class="skip" href="#main">Skip to the trace</a>
<header class="top">
  <button id="toggle-list" type="button" aria-expanded="true" aria-controls="sidebar">Traces</button>
  <h1>sandtrace</h1> <span>traces</span>
  <span id="live" class="badge running off" title="the list follows the store as it changes">live</span>
  <span id="skipped" class="badge error" hidden></span>
  <span id="indexing" class="badge running" hidden></span>
  <span id="count"></span>
</header>
<div class="layout">
<aside id="sidebar" aria-label="Traces">
  <form id="filters" role="search" aria-label="Search traces">
    <label class="wide">span name contains<input id="filter-name" type="search" autocomplete="off"></label>
    <label>service<select id="filter-service"><option value="">all services</option></select></label>
    <label>status<select id="filter-status">
      <option value="all">all statuses</option>
      <option value="error">with errors</option>
      <option value="forced">force-closed</option>
      <option value="running">in progress</option>
      <option value="ok">without errors</option>
    </select></label>
    <div class="wide" role="group" aria-labelledby="attr-label">
      <label id="attr-label" for="filter-attr">attribute key=value (or key)</label>
      <div id="attr-list"><input id="filter-attr" class="attr-input" placeholder="http.route=/users" autocomplete="off"></div>
    </div>
    <label>duration min (ms)<input id="filter-min" type="number" min="0" step="any" inputmode="decimal"></label>
    <label>duration max (ms)<input id="filter-max" type="number" min="0" step="any" inputmode="decimal"></label>
    <label>started<select id="filter-range">
      <option value="all">any time</option>
      <option value="15">last 15 min</option>
      <option value="60">last hour</option>
      <option value="1440">last 24 h</option>
      <option value="custom">from … to …</option>
    </select></label>
    <label>execution id<input id="filter-execution" placeholder="contains" autocomplete="off"></label>
    <label id="from-label" hidden>from<input id="filter-from" type="datetime-local" step="1"></label>
    <label id="to-label" hidden>to<input id="filter-to" type="datetime-local" step="1"></label>
    <p id="filter-note" hidden></p>
    <div class="actions">
      <button id="add-attr" type="button">+ attribute</button>
      <button id="clear-filters" type="reset">clear</button>
    </div>
  </form>
  <ul id="traces" aria-label="Traces, newest first"></ul>
</aside>
<main id="main" tabindex="-1" aria-label="Trace"><div class="empty">Choose a trace.</div></main>
</div>
<div id="announce" class="sr-only" role="status" aria-live="polite"></div>
<script>
${script}
</script>
</body>
</html>
`;
}
