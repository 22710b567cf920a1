/**
 * The viewer's single page: plain HTML, CSS and script, nothing loaded from elsewhere. Its parts
 * live in page/: the document, the style, and the script in the order it runs (shared helpers,
 * the trace list and search, the time axis, the open trace, the span details, the wiring).
 */
import { pageHtml } from './page/html.js';
import { SCRIPT_CORE } from './page/script-core.js';
import { SCRIPT_DETAILS } from './page/script-details.js';
import { SCRIPT_LIST } from './page/script-list.js';
import { SCRIPT_MAIN } from './page/script-main.js';
import { SCRIPT_TIMELINE } from './page/script-timeline.js';
import { SCRIPT_TRACE } from './page/script-trace.js';
import { STYLE } from './page/style.js';

/** The script parts, in the order they run in the page's one script element. */
export const PAGE_SCRIPTS: readonly string[] = [SCRIPT_CORE, SCRIPT_LIST, SCRIPT_TIMELINE, SCRIPT_TRACE, SCRIPT_DETAILS, SCRIPT_MAIN];

export const PAGE = pageHtml(STYLE, PAGE_SCRIPTS.join('\n'));
