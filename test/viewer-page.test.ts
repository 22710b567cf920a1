/**
 * The viewer page in Chromium, over a store of real QuickJS runs (events exported both as span
 * events and as logs, a histogram, a deadline crash) plus one hand-written line for what guests
 * cannot produce here: 64-bit integers beyond 2^53, span links, a second resource.
 *
 * Tests that need the store's filter API (name, attribute and service search; resources, links and
 * exact integers in the trace answer) skip, saying so, when the viewer does not offer it.
 * Screenshots go to $SANDTRACE_SCREENSHOTS or <tmpdir>/sandtrace-screenshots (not committed).
 */
import assert from 'node:assert/strict';
import { appendFile, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { BatchingManager } from '../host/batching/batching-manager.js';
import { FileExporter } from '../host/export/otlp-json.js';
import { PipelineCollector } from '../host/pipeline/pipeline-collector.js';
import { runQuickJS } from '../host/sandbox/quickjs-runner.js';
import { PAGE, PAGE_SCRIPTS } from '../host/viewer/page.js';
import type { TraceSummary, ViewSpan } from '../host/viewer/trace-store.js';
import { startViewer, type Viewer } from '../host/viewer/view-server.js';
import { writeSyntheticStore } from './helpers/synthetic-store.js';

const CHROMIUM = '/usr/bin/chromium';
const skip = existsSync(CHROMIUM) ? false : `needs ${CHROMIUM} (.ci/run installs Debian's chromium)`;
const SHOTS = process.env.SANDTRACE_SCREENSHOTS ?? join(tmpdir(), 'sandtrace-screenshots');

const CHECKOUT = `tracing.inSpan('checkout', { cart: 3 }, () => {
  tracing.info('priced', { total: 42 });
  for (let i = 0; i < 3; i++) tracing.inSpan('price item', { i }, () => { let x = 0; for (let j = 0; j < 20000; j++) x += j; tracing.histogram('item_ms', i * 7); });
  tracing.inSpan('charge card', { provider: 'acme' }, () => { tracing.warn('slow provider'); tracing.counter('orders', 1); });
});`;

const BIG = '9007199254740993'; // 2^53 + 1: a double cannot hold it
const MIN64 = '-9223372036854775808';
const LINKED = 'c0ffee00c0ffee00c0ffee00c0ffee00';
const MISSING = 'ab'.repeat(16);

let folder = '';
let viewer: Viewer;
let browser: Browser;
let shop: string; // trace ids
let crash: string;
let shopSpans: ViewSpan[];
let filterApi = false;

/** A store line written by hand: a trace of another service, with exact integers and links. */
function handWrittenLine(chargeSpan: string): string {
  const now = BigInt(Date.now()) * 1_000_000n;
  const span = (id: string, name: string, start: bigint, end: bigint, extra: object) => ({
    traceId: LINKED, spanId: id, name, kind: 1, startTimeUnixNano: String(start), endTimeUnixNano: String(end), status: {}, ...extra,
  });
  return JSON.stringify({
    resourceSpans: [{
      resource: { attributes: [{ key: 'service.name', value: { stringValue: 'billing-api' } }, { key: 'host.name', value: { stringValue: 'ledger-7' } }, { key: 'team', value: { stringValue: '<u>ledger</u>' } }] },
      scopeSpans: [{
        scope: { name: 'billing' },
        spans: [
          span('1000000000000001', 'settle invoice', now - 5_000_000n, now, {
            attributes: [
              { key: 'ledger.big', value: { intValue: BIG } },
              { key: 'ledger.min', value: { intValue: MIN64 } },
              { key: 'ledger.small', value: { intValue: '42' } },
            ],
          }),
          span('1000000000000002', 'follow up', now - 4_000_000n, now - 1_000_000n, {
            parentSpanId: '1000000000000001',
            attributes: [{ key: '<b>note</b>', value: { stringValue: '<img src=x onerror="window.pwned=1">' } }],
            events: [{ timeUnixNano: String(now - 2_000_000n), name: '<i>retry</i>', attributes: [{ key: 'why', value: { stringValue: '<script>window.pwned=2</script>' } }] }],
            links: [
              { traceId: shop, spanId: chargeSpan, attributes: [{ key: 'why', value: { stringValue: 'paid by' } }] },
              { traceId: MISSING, spanId: '2000000000000002', attributes: [] },
            ],
          }),
        ],
      }],
    }],
  });
}

before(async () => {
  folder = await mkdtemp(join(tmpdir(), 'sandtrace-view-page-'));
  const shopStore = new BatchingManager(new FileExporter(folder, [['service.name', 'shop']]));
  await runQuickJS(CHECKOUT, { collector: new PipelineCollector({ eventsAs: 'both', handlers: shopStore.handlers() }), executionId: 'page-shop' });
  await shopStore.shutdown();
  const imagingStore = new BatchingManager(new FileExporter(folder, [['service.name', 'imaging']]));
  await runQuickJS(`tracing.inSpan('resize images', { count: 3 }, () => { tracing.info('resizing'); for (;;) {} });`, {
    collector: new PipelineCollector({ eventsAs: 'both', handlers: imagingStore.handlers() }),
    executionId: 'page-crash',
    // Long enough that a machine at load 30 still starts the guest and opens its span before the
    // deadline (500 ms was not: the worker took longer than that to begin the guest).
    deadlineMs: 2000,
  });
  await imagingStore.shutdown();
  viewer = await startViewer({ folder, port: 0 });
  const traces = (await (await fetch(`${viewer.url}api/traces`)).json()) as TraceSummary[];
  shop = traces.find((t) => t.executionIds.includes('page-shop'))!.traceId;
  crash = traces.find((t) => t.executionIds.includes('page-crash'))!.traceId;
  shopSpans = ((await (await fetch(`${viewer.url}api/traces/${shop}`)).json()) as { spans: ViewSpan[] }).spans;
  await appendFile(join(folder, 'traces.jsonl'), `${handWrittenLine(spanNamed('charge card').spanId)}\n`);
  filterApi = (await fetch(`${viewer.url}api/services`)).ok;
  if (!skip) browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
  await mkdir(SHOTS, { recursive: true });
});
after(async () => {
  await browser?.close();
  await viewer.close();
  await rm(folder, { recursive: true });
});

function spanNamed(name: string): ViewSpan {
  return shopSpans.find((s) => s.name === name)!;
}

/** A page on the viewer that records errors and requests that leave it; checked when the test ends. */
async function openPage(t: TestContext, options: { width?: number; height?: number; hash?: string; context?: BrowserContext } = {}): Promise<Page> {
  const context = options.context ?? (await browser.newContext({ viewport: { width: options.width ?? 1200, height: options.height ?? 760 } }));
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('request', (r) => {
    if (!r.url().startsWith(viewer.url)) problems.push(`request elsewhere: ${r.url()}`);
  });
  t.after(async () => {
    await context.close();
    assert.deepEqual(problems, []);
  });
  await page.goto(viewer.url + (options.hash ?? ''));
  await page.waitForSelector('.trace');
  return page;
}

async function openShop(page: Page): Promise<void> {
  await page.locator('.trace', { hasText: 'checkout' }).click();
  await page.locator('.row', { hasText: 'charge card' }).waitFor();
}

/**
 * Clicks a span's row and waits for its details: a click routes through the URL hash, so the
 * details are drawn after the click returns (under load, well after).
 */
async function openSpanRow(page: Page, name: string): Promise<void> {
  await page.locator('.row', { hasText: name }).click();
  await page.waitForFunction((id) => document.querySelector('#details')?.textContent?.includes(id) === true, spanNamed(name).spanId);
}

const tickLabels = (page: Page) => page.locator('#axis .tick').evaluateAll((els) => els.map((e) => e.textContent ?? ''));
const barBox = async (page: Page, name: string) => (await page.locator('.row', { hasText: name }).first().locator('.bar').boundingBox())!;
/**
 * The waterfall's state in one look (so nothing can change between its parts): the scale in px
 * per ns, read off two labelled ticks (labels show whole multiples of the step, so this is exact
 * to a pixel); each row's bar width in px, or null where the window cuts it, it is hidden, or it
 * is too small to measure; the window text; and, for a failure message, every row's raw state.
 */
interface Widths { scale: number; widths: Array<number | null>; window: string; raw: string }
const barWidths = (page: Page): Promise<Widths> =>
  page.evaluate(() => {
    const units: Record<string, number> = { ns: 1, µs: 1e3, ms: 1e6, s: 1e9 };
    const ticks = [...document.querySelectorAll<HTMLElement>('#axis .tick')].flatMap((e) => {
      const m = /^(\d+(?:\.\d+)?) (ns|µs|ms|s)$/.exec(e.textContent ?? '');
      return m ? [{ ns: Number(m[1]) * units[m[2]!]!, px: e.getBoundingClientRect().left }] : [];
    });
    const first = ticks[0];
    const last = ticks[ticks.length - 1];
    const scale = first && last && last.ns > first.ns ? (last.px - first.px) / (last.ns - first.ns) : NaN;
    const bars = [...document.querySelectorAll<HTMLElement>('.row .bar')];
    const widths = bars.map((e) => (e.classList.contains('cut-l') || e.classList.contains('cut-r') || e.hidden || e.getBoundingClientRect().width < 4 ? null : e.getBoundingClientRect().width));
    const raw = bars.map((e) => `${e.className}${e.hidden ? ' hidden' : ''}${(e.closest('.row') as HTMLElement).hidden ? ' row-hidden' : ''} ${e.style.left}+${e.style.width}=${e.getBoundingClientRect().width.toFixed(1)}px`).join('; ');
    return { scale, widths, window: document.querySelector('#window-text')?.textContent ?? '', raw: `${raw}; axis ${document.querySelector('#axis')?.clientWidth}px` };
  });
/**
 * The scale changed by the ratio, and so did every bar whole in both windows. Where the first
 * window was clamped to the trace's end, a zoom back about its middle may leave no bar whole in
 * both: the scale still tells.
 */
function assertRatio(before: Widths, after: Widths, ratio: number): void {
  const state = `\n  ${before.window}: ${before.raw}\n  ${after.window}: ${after.raw}`;
  assert.ok(Math.abs(after.scale / before.scale - ratio) < ratio * 0.01, `the scale went from ${before.scale} to ${after.scale} px/ns, not ×${ratio}${state}`);
  for (let i = 0; i < before.widths.length; i++) {
    const [b, a] = [before.widths[i], after.widths[i]];
    if (b != null && a != null) assert.ok(Math.abs(a - b * ratio) <= 1.5, `${b} px became ${a} px, not ×${ratio}${state}`);
  }
}
/** Each labelled tick's place on the page (px), by its time in ns (the unit follows the window's end, so 0.95 s is 950 ms). */
const tickPlaces = (page: Page): Promise<Map<number, number>> =>
  page.locator('#axis .tick').evaluateAll((els) => els.map((e) => [e.textContent ?? '', e.getBoundingClientRect().left] as [string, number])).then((pairs) =>
    new Map(pairs.flatMap(([label, px]) => {
      const m = /^(\d+(?:\.\d+)?) (ns|µs|ms|s)$/.exec(label);
      return m ? [[Math.round(Number(m[1]) * { ns: 1, µs: 1e3, ms: 1e6, s: 1e9 }[m[2] as 'ns']), px] as [number, number]] : [];
    })));
function assertMoved(before: Map<number, number>, after: Map<number, number>, dx: number, what: string): void {
  const common = [...before.keys()].filter((label) => after.has(label));
  const seen = `${[...before].join(' ')} → ${[...after].join(' ')}`;
  assert.ok(common.length >= 1, `${what}: some tick is in both windows (${seen})`);
  for (const label of common) assert.ok(Math.abs(after.get(label)! - before.get(label)! - dx) <= 1.5, `${what}: ${label} moved ${after.get(label)! - before.get(label)!} px, not ${dx} (${seen})`);
}
const laneBox = async (page: Page) => (await page.locator('#axis').boundingBox())!;

function needsFilterApi(t: TestContext): boolean {
  if (!filterApi) t.skip('needs the store filter API (GET /api/services, filtered /api/traces, resources/links/exact ints): the v-store branch');
  return !filterApi;
}

test('each part of the page script parses on its own, and the page names nothing outside itself', () => {
  for (const part of PAGE_SCRIPTS) assert.doesNotThrow(() => new Function(part));
  assert.doesNotMatch(PAGE, /(src|href)="(https?:)?\/\//);
  assert.doesNotMatch(PAGE, /<\/script>[\s\S]*<script/, 'one script element');
});

describe('viewer page', { skip }, () => {
  test('zoom by dragging on the axis makes a guest sliver readable; the ticks change; + − halve and double the scale and bar widths; pan moves bars; reset restores', async (t) => {
    const page = await openPage(t);
    await openShop(page);
    const ticks0 = await tickLabels(page);
    assert.ok(ticks0.length >= 3, `ticks at round steps: ${ticks0.join(' | ')}`);
    assert.equal(ticks0[0], '0', 'labels are relative to the trace start');
    const lane = await laneBox(page);
    const sliver = await barBox(page, 'checkout');
    assert.ok(sliver.width < lane.width * 0.5, 'the guest root is a part of a bar that is mostly sandbox start-up');

    // Drag across the axis over the guest's root span: the window becomes that range.
    await page.mouse.move(sliver.x - 1, lane.y + lane.height / 2);
    await page.mouse.down();
    await page.mouse.move(sliver.x + sliver.width / 2, lane.y + lane.height / 2, { steps: 4 });
    await page.mouse.move(sliver.x + sliver.width + 1, lane.y + lane.height / 2, { steps: 4 });
    await page.mouse.up();
    const zoomed = await barBox(page, 'checkout');
    // The window is the span and a pixel of the old scale either side; an end within 3 px of the
    // axis's end is that end (the guest's root often ends a few px before the execution does).
    const start = Math.max(0, sliver.x - 1 - lane.x);
    const end = Math.min(lane.width, sliver.x + sliver.width + 1 - lane.x);
    const fill = (lane.width * sliver.width) / ((end >= lane.width - 3 ? lane.width : end) - (start <= 3 ? 0 : start));
    assert.ok(zoomed.width >= fill - 3 && zoomed.width > sliver.width * 3, `the span fills the window after zoom (${zoomed.width} of ${lane.width} px; was ${sliver.width})`);
    const ticks1 = await tickLabels(page);
    assert.notDeepEqual(ticks1, ticks0, 'the axis has new ticks');
    assert.ok(ticks1.filter((l) => l !== '').every((l) => /^\d+(\.\d+)? (ns|µs|ms|s)$/.test(l)), ticks1.join(' | '));
    const widths0 = await barWidths(page);
    await page.screenshot({ path: join(SHOTS, 'waterfall-zoomed.png') });
    t.diagnostic(`screenshots: ${SHOTS}`);

    // Zoom out (button), then in (key on the axis): the scale and the bars whole in both windows halve, then double.
    await page.click('#zoom-out');
    const widths1 = await barWidths(page);
    assertRatio(widths0, widths1, 0.5);
    await page.focus('#axis');
    await page.keyboard.press('+');
    assertRatio(widths1, await barWidths(page), 2);

    // Pan left by the button: the window moves a fifth earlier, so everything on it, the ticks
    // among them, moves a fifth of the lane right. (Ticks, not a bar: which bars the window holds
    // here depends on how close the guest ran to the end of its execution.)
    const ticksBeforePan = await tickPlaces(page);
    await page.click('#pan-left');
    const panned = await tickPlaces(page);
    assertMoved(ticksBeforePan, panned, lane.width * 0.2, 'pan left');
    // Dragging along the bars pans too, and is not a click on the row.
    const row = page.locator('.row', { hasText: 'charge card' });
    const laneOfRow = (await row.locator('.lane').boundingBox())!;
    await page.mouse.move(laneOfRow.x + 20, laneOfRow.y + 5);
    await page.mouse.down();
    await page.mouse.move(laneOfRow.x + 50, laneOfRow.y + 5, { steps: 5 });
    await page.mouse.move(laneOfRow.x + 80, laneOfRow.y + 5, { steps: 5 });
    await page.mouse.up();
    const dragged = await tickPlaces(page);
    assertMoved(panned, dragged, 60, 'a drag of 60 px');
    assert.doesNotMatch(page.url(), /span=/, 'a drag opens no span');
    // Shift+wheel pans as well.
    await page.mouse.move(laneOfRow.x + 40, laneOfRow.y + 5);
    await page.keyboard.down('Shift');
    await page.mouse.wheel(0, -100);
    await page.keyboard.up('Shift');
    assertMoved(dragged, await tickPlaces(page), 100, 'shift+wheel by 100 px');

    await page.click('#zoom-reset');
    assert.deepEqual(await tickLabels(page), ticks0, 'reset shows the whole trace again');
    assert.ok(Math.abs((await barBox(page, 'checkout')).width - sliver.width) <= 1);
  });

  test('spans partly outside the window are cut with a square edge; spans wholly outside are not drawn', async (t) => {
    const page = await openPage(t);
    await openShop(page);
    const charge = page.locator('.row', { hasText: 'charge card' });
    await charge.dblclick(); // zooms to the span
    const exec = page.locator('.row', { hasText: 'sandtrace.execution' }).locator('.bar');
    assert.equal(await exec.evaluate((el) => el.classList.contains('cut-l') && el.classList.contains('cut-r')), true, 'the execution span runs past both edges');
    const lane = await laneBox(page);
    const box = (await exec.boundingBox())!;
    assert.ok(box.x >= lane.x - 0.5 && box.x + box.width <= lane.x + lane.width + 0.5, 'drawn only inside the lane');
    assert.equal(await page.locator('.row', { hasText: 'price item' }).first().locator('.bar').isHidden(), true, 'an earlier sibling is out of the window');
    // Dragging across the overview chooses a window of the whole trace: here its first tenth, where only the execution span is.
    await page.click('#zoom-reset');
    const overview = (await page.locator('#minimap').boundingBox())!;
    await page.mouse.move(overview.x + 1, overview.y + 10);
    await page.mouse.down();
    await page.mouse.move(overview.x + overview.width * 0.05, overview.y + 10, { steps: 3 });
    await page.mouse.move(overview.x + overview.width * 0.1, overview.y + 10, { steps: 3 });
    await page.mouse.up();
    assert.match(await page.locator('#window-text').innerText(), / of /);
    assert.equal(await exec.evaluate((el) => el.classList.contains('cut-r') && !el.classList.contains('cut-l')), true);
    assert.equal(await page.locator('.row', { hasText: 'checkout' }).locator('.bar').isHidden(), true, 'the guest runs later than the first tenth');
  });

  test('events are drawn on their span bar at their time, with a label, and listed once in the details with their offset', async (t) => {
    const page = await openPage(t);
    await openShop(page);
    const t0 = shopSpans.reduce((m, s) => (BigInt(s.start) < m ? BigInt(s.start) : m), BigInt(shopSpans[0]!.start));
    const t1 = shopSpans.reduce((m, s) => (BigInt(s.end) > m ? BigInt(s.end) : m), BigInt(shopSpans[0]!.end));
    const checkout = spanNamed('checkout');
    const priced = checkout.events.find((e) => e.name === 'priced')!;
    const marker = page.locator('.row', { hasText: 'checkout' }).locator('.ev');
    assert.equal(await marker.count(), 1, 'one marker for the one event (its log twin is not a second)');
    assert.match((await marker.getAttribute('aria-label'))!, /^event priced at [\d.]+ m?s from the trace start$/);
    const centre = async () => {
      const m = (await marker.boundingBox())!;
      return m.x + m.width / 2;
    };
    // The whole trace: the lane is [t0, t1].
    const lane = await laneBox(page);
    const whole = lane.x + (Number(BigInt(priced.time) - t0) / Number(t1 - t0)) * lane.width;
    assert.ok(Math.abs((await centre()) - whole) <= 1.5, `marker at ${await centre()}, expected ${whole}`);
    // Zoomed to the span (double click): where the span's own bar puts that time.
    await page.locator('.row', { hasText: 'checkout' }).dblclick();
    const bar = await barBox(page, 'checkout');
    const s = BigInt(checkout.start);
    const expected = bar.x + (Number(BigInt(priced.time) - s) / Number(BigInt(checkout.end) - s)) * bar.width;
    assert.ok(Math.abs((await centre()) - expected) <= 1.5, `marker at ${await centre()}, expected ${expected}`);
    assert.ok(bar.width > lane.width * 0.8, 'the span fills the window');

    await openSpanRow(page, 'checkout');
    const details = await page.locator('#details').innerText();
    assert.equal(details.match(/priced/g)?.length, 1, `the event once:\n${details}`);
    assert.match(details, /\+[\d.]+ m?s\s+INFO priced \{"total": 42\}/);
    await openSpanRow(page, 'charge card');
    assert.equal((await page.locator('#details').innerText()).match(/slow provider/g)?.length, 1);
    assert.equal(await page.locator('.row', { hasText: 'charge card' }).locator('.ev.warn').count(), 1, 'a warning is drawn as one');
  });

  test('the trace header and list show wall-clock start times; the details show and copy ids (clipboard)', async (t) => {
    const context = await browser.newContext({ viewport: { width: 1200, height: 760 } });
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: viewer.url.slice(0, -1) });
    const page = await openPage(t, { context });
    const stamp = /\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}/;
    assert.match(await page.locator('.trace', { hasText: 'checkout' }).innerText(), stamp);
    await openShop(page);
    assert.match(await page.locator('.trace-head .meta').innerText(), new RegExp(`started ${stamp.source}.*${shop}`));
    await openSpanRow(page, 'charge card');
    const charge = spanNamed('charge card');
    const details = await page.locator('#details').innerText();
    assert.match(details, new RegExp(`trace id\\s+${shop}`));
    assert.match(details, new RegExp(`span id\\s+${charge.spanId}`));
    await page.click('#details button[aria-label="Copy the span id"]');
    await page.locator('#details button[aria-label="Copy the span id"]', { hasText: 'Copied' }).waitFor();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), charge.spanId);
  });

  test('without a clipboard, Copy selects the id for Ctrl+C', async (t) => {
    const context = await browser.newContext({ viewport: { width: 1200, height: 760 } });
    await context.addInitScript(() => Object.defineProperty(Navigator.prototype, 'clipboard', { get: () => undefined }));
    const page = await openPage(t, { context });
    await openShop(page);
    await page.click('.trace-head button[data-copy]');
    assert.equal(await page.evaluate(() => String(window.getSelection())), shop);
    assert.match(await page.locator('.trace-head button[data-copy]').innerText(), /Selected/);
  });

  test('a permalink opens the trace and the span on a fresh page, scrolled into view; opening spans updates the hash; back and forward work', async (t) => {
    const item = shopSpans.filter((s) => s.name === 'price item')[1]!;
    const page = await openPage(t, { hash: `#trace=${shop}&span=${item.spanId}`, height: 420 });
    const open = page.locator('.row.open');
    await open.waitFor();
    assert.equal(await open.getAttribute('data-span'), item.spanId);
    assert.equal(await open.getAttribute('aria-selected'), 'true');
    assert.match(await page.locator('#details').innerText(), new RegExp(`span id\\s+${item.spanId}`));
    assert.equal(await open.isVisible(), true);
    const inView = await open.evaluate((el) => {
      const r = el.getBoundingClientRect();
      const w = document.getElementById('waterfall')!.getBoundingClientRect();
      return r.top >= w.top && r.bottom <= w.bottom;
    });
    assert.ok(inView, 'the span row is scrolled into the waterfall view');
    assert.equal(await page.locator('.trace.selected').getAttribute('data-trace'), shop);

    // Open another span, then another trace: each is a history entry.
    const charge = spanNamed('charge card');
    await openSpanRow(page, 'charge card');
    await page.waitForURL(new RegExp(`#trace=${shop}&span=${charge.spanId}$`));
    await page.locator('.trace', { hasText: 'resize images' }).click();
    await page.locator('.row', { hasText: 'resize images' }).waitFor();
    assert.match(page.url(), new RegExp(`#trace=${crash}$`));

    await page.goBack();
    await page.locator('.row.open', { hasText: 'charge card' }).waitFor();
    assert.match(await page.locator('#details').innerText(), new RegExp(charge.spanId));
    await page.goBack();
    await page.waitForFunction((id) => document.querySelector('.row.open')?.getAttribute('data-span') === id, item.spanId);
    await page.goForward();
    await page.locator('.row.open', { hasText: 'charge card' }).waitFor();
    await page.goForward();
    await page.locator('.row', { hasText: 'resize images' }).waitFor();
    assert.equal(await page.locator('.row.open').count(), 0);
  });

  test('a permalink to a trace not in the store says so, with a way back', async (t) => {
    const page = await openPage(t, { hash: `#trace=${MISSING}` });
    await page.locator('#missing').waitFor();
    assert.match(await page.locator('#missing').innerText(), new RegExp(`${MISSING} is not in the store`));
  });

  test('keyboard alone: Tab reaches the list, arrows move, Enter opens a trace, arrows reach a span, Enter opens it, Escape goes back; focus is visible', async (t) => {
    const page = await openPage(t);
    let tabs = 0;
    while (!(await page.evaluate(() => document.activeElement?.classList.contains('trace') ?? false))) {
      await page.keyboard.press('Tab');
      assert.ok(++tabs < 30, 'the list is reachable by Tab');
    }
    const focused = () => page.evaluate(() => ({
      cls: document.activeElement!.className,
      trace: (document.activeElement as HTMLElement).dataset.trace,
      span: (document.activeElement as HTMLElement).dataset.span,
      visible: document.activeElement!.matches(':focus-visible') && getComputedStyle(document.activeElement!).outlineStyle !== 'none',
    }));
    const first = await focused();
    assert.equal(first.visible, true, 'a visible focus outline');
    const traces = await page.locator('.trace').evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.trace));
    assert.equal(first.trace, traces[0]);
    await page.keyboard.press('ArrowDown');
    assert.equal((await focused()).trace, traces[1]);
    await page.keyboard.press('End');
    assert.equal((await focused()).trace, traces[traces.length - 1]);
    // Move to the shop trace by arrows, then open it.
    const at = traces.indexOf(shop);
    await page.keyboard.press('Home');
    for (let i = 0; i < at; i++) await page.keyboard.press('ArrowDown');
    assert.equal((await focused()).trace, shop);
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => document.activeElement?.classList.contains('row') ?? false);
    const root = await focused();
    assert.equal(root.visible, true);
    assert.match(root.cls, /row/);
    const rows = await page.locator('.row').evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.span));
    assert.equal(root.span, rows[0], 'the first span row takes focus');
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('ArrowDown');
    const third = await focused();
    assert.equal(third.span, rows[2]);
    await page.keyboard.press('Enter');
    await page.locator('.row.open').waitFor();
    assert.equal(await page.locator('.row.open').getAttribute('data-span'), rows[2]);
    const name = shopSpans.find((s) => s.spanId === rows[2])!.name;
    assert.match(await page.locator('#details h3').innerText(), new RegExp(name));
    // Left folds a parent (its children leave the tree), Right unfolds.
    await page.keyboard.press('Home');
    await page.keyboard.press('ArrowLeft');
    assert.equal(await page.locator('.row:not([hidden])').count(), 1);
    assert.equal(await page.locator('.row').first().getAttribute('aria-expanded'), 'false');
    await page.keyboard.press('ArrowRight');
    assert.equal(await page.locator('.row:not([hidden])').count(), rows.length);
    await page.keyboard.press('Escape');
    const back = await focused();
    assert.equal(back.trace, shop, 'Escape returns to the open trace in the list');
    assert.equal(back.visible, true);
  });

  test('labels for screen readers: landmarks, a tree of spans with levels, rows that read name, duration and status, a live region', async (t) => {
    const page = await openPage(t);
    assert.equal(await page.locator('header.top').count(), 1);
    assert.equal(await page.locator('aside[aria-label="Traces"]').count(), 1);
    assert.equal(await page.locator('main#main').count(), 1);
    assert.equal(await page.locator('form[role="search"]').count(), 1);
    assert.equal(await page.locator('[role="status"][aria-live="polite"]').count(), 1);
    const crashLabel = (await page.locator(`.trace[data-trace="${crash}"]`).getAttribute('aria-label'))!;
    assert.match(crashLabel, /^resize images · guest\.js, 2 spans, [\d.]+ (µs|ms|s), 2 errors, force-closed: deadline, started \d{4}-/);
    await page.locator(`.trace[data-trace="${crash}"]`).click();
    await page.locator('.row', { hasText: 'resize images' }).waitFor();
    assert.equal(await page.locator('#rows[role="tree"]').count(), 1);
    const labels = await page.locator('.row').evaluateAll((els) => els.map((e) => [e.getAttribute('role'), e.getAttribute('aria-level'), e.getAttribute('aria-label')]));
    assert.deepEqual(labels.map(([r, l]) => [r, l]), [['treeitem', '1'], ['treeitem', '2']]);
    assert.match(labels[1]![2]!, /^resize images, [\d.]+ (µs|ms|s), force-closed: deadline(, service imaging)?, 1 event$/);
    assert.match(await page.locator('#announce').innerText(), /Opened trace resize images/);
    assert.equal(await page.locator('#axis[role="slider"][aria-valuetext]').count(), 1);
  });

  test('at 360 px wide nothing overflows the page: the list is a panel that closes when a trace opens; the waterfall narrows', async (t) => {
    const page = await openPage(t, { width: 360, height: 740 });
    const width = () => page.evaluate(() => document.documentElement.scrollWidth);
    assert.ok((await width()) <= 360, `list: ${await width()}`);
    await page.screenshot({ path: join(SHOTS, 'narrow-list.png') });
    await page.locator('.trace', { hasText: 'checkout' }).click();
    await openSpanRow(page, 'charge card');
    await page.locator('#details h3').waitFor();
    assert.equal(await page.locator('#sidebar').isHidden(), true, 'the list panel closed');
    assert.equal(await page.locator('#toggle-list').getAttribute('aria-expanded'), 'false');
    assert.ok((await width()) <= 360, `trace: ${await width()}`);
    const overflowing = await page.evaluate(() => [...document.querySelectorAll('body *')].filter((el) => el.getBoundingClientRect().right > 360.5 && !el.closest('.waterfall') && (el as HTMLElement).offsetParent !== null).map((el) => el.tagName + '.' + el.className));
    assert.deepEqual(overflowing, [], 'only the waterfall may be wider than the page');
    const nameCol = (await page.locator('.row .name').first().boundingBox())!.width;
    assert.ok(nameCol <= 130, `the name column narrows (${nameCol} px)`);
    await page.screenshot({ path: join(SHOTS, 'narrow-trace.png'), fullPage: true });
    t.diagnostic(`screenshots: ${SHOTS}`);
    await page.click('#toggle-list');
    assert.equal(await page.locator('#sidebar').isVisible(), true);
    assert.ok((await width()) <= 360);
  });

  test('histograms are drawn as their buckets, each with its bound and count', async (t) => {
    const page = await openPage(t);
    await openShop(page);
    const hist = page.locator('.hist');
    assert.match((await hist.getAttribute('aria-label'))!, /^item_ms histogram, 3 values, by bucket$/);
    const buckets = await hist.locator('li').evaluateAll((els) => els.map((e) => (e as HTMLElement).innerText.replace(/\s+/g, '')));
    assert.deepEqual(buckets, ['≤0:1', '≤5:0', '≤10:1', '≤25:1']);
    const bars = await hist.locator('.hbar').evaluateAll((els) => els.map((e) => e.getBoundingClientRect().width));
    assert.ok(bars[0]! > 0 && bars[0] === bars[2] && bars[1] === 0, bars.join(','));
  });

  test('the search form narrows the list by status and execution at once; "N of M traces"', async (t) => {
    const page = await openPage(t);
    assert.match(await page.locator('#count').innerText(), /^3 of 3 traces$/);
    await page.fill('#filter-execution', 'page-shop');
    assert.equal(await page.locator('.trace').count(), 1);
    await page.fill('#filter-execution', '');
    await page.selectOption('#filter-status', 'forced');
    assert.equal(await page.locator('.trace').count(), 1);
    // M is what the server matched; a viewer that does not filter matches every trace.
    await page.locator('#count', { hasText: filterApi ? /^1 of 1 traces$/ : /^1 of 3 traces$/ }).waitFor();
    await page.selectOption('#filter-status', 'all');
    await page.fill('#filter-min', '100000');
    await page.locator('#count', { hasText: filterApi ? /^0 of 0 traces$/ : /^0 of 3 traces$/ }).waitFor();
    assert.equal(await page.locator('.trace').count(), 0);
    await page.click('#clear-filters');
    await page.locator('#count', { hasText: /^3 of 3 traces$/ }).waitFor();
    // Time range: the store was written just now.
    await page.selectOption('#filter-range', '15');
    await page.locator('#count', { hasText: /^3 of 3 traces$/ }).waitFor();
    await page.selectOption('#filter-range', 'custom');
    const local = (ms: number) => new Date(ms - new Date(ms).getTimezoneOffset() * 60_000).toISOString().slice(0, 19);
    await page.fill('#filter-from', local(Date.now() + 3_600_000));
    await page.locator('#count', { hasText: filterApi ? /^0 of 0 traces$/ : /^0 of 3 traces$/ }).waitFor();
    await page.fill('#filter-from', local(Date.now() - 3_600_000));
    await page.fill('#filter-to', local(Date.now() + 3_600_000));
    await page.locator('#count', { hasText: /^3 of 3 traces$/ }).waitFor();
    await page.click('#clear-filters');
    await page.locator('#filter-from').waitFor({ state: 'hidden' });
    await page.screenshot({ path: join(SHOTS, 'trace-list.png') });
    t.diagnostic(`screenshots: ${SHOTS}`);
  });

  test('search by span name, attribute and service narrows the list (the server filters)', async (t) => {
    if (needsFilterApi(t)) return;
    const page = await openPage(t);
    await page.fill('#filter-name', 'CHARGE');
    await page.locator('#count', { hasText: /^1 of 1 traces$/ }).waitFor();
    assert.equal(await page.locator('.trace').getAttribute('data-trace'), shop);
    await page.fill('#filter-name', '');
    await page.fill('#filter-attr', 'provider=acme');
    await page.locator('#count', { hasText: /^1 of 1 traces$/ }).waitFor();
    await page.click('#add-attr');
    await page.locator('.attr-input').nth(1).fill('cart=4');
    await page.locator('#count', { hasText: /^0 of 0 traces$/ }).waitFor();
    await page.locator('.attr-input').nth(1).fill('cart=3');
    await page.locator('#count', { hasText: /^1 of 1 traces$/ }).waitFor();
    await page.click('#clear-filters');
    await page.locator('#count', { hasText: /^3 of 3 traces$/ }).waitFor();
    const services = await page.locator('#filter-service option').evaluateAll((els) => els.map((e) => (e as HTMLOptionElement).value));
    assert.deepEqual(services, ['', 'billing-api', 'imaging', 'shop']);
    await page.selectOption('#filter-service', 'billing-api');
    await page.locator('#count', { hasText: /^1 of 1 traces$/ }).waitFor();
    assert.equal(await page.locator('.trace').getAttribute('data-trace'), LINKED);
  });

  test('64-bit integers are shown exactly, as digits; resource attributes are shown for the span', async (t) => {
    if (needsFilterApi(t)) return;
    const page = await openPage(t, { hash: `#trace=${LINKED}&span=1000000000000001` });
    await page.locator('#details h3', { hasText: 'settle invoice' }).waitFor();
    const details = await page.locator('#details').innerText();
    assert.match(details, new RegExp(`ledger\\.big = ${BIG}\\n`));
    assert.match(details, new RegExp(`ledger\\.min = ${MIN64}\\n`));
    assert.match(details, /ledger\.small = 42\n/);
    assert.match(details, /resource[\s\S]*service\.name = "billing-api"[\s\S]*host\.name = "ledger-7"/i);
  });

  test('span links open the linked trace and span; a link to a trace not in the store says so', async (t) => {
    if (needsFilterApi(t)) return;
    const page = await openPage(t, { hash: `#trace=${LINKED}&span=1000000000000002` });
    await page.locator('#details .links').waitFor();
    const charge = spanNamed('charge card');
    await page.locator('#details .links a', { hasText: charge.spanId }).click();
    await page.locator('.row.open', { hasText: 'charge card' }).waitFor();
    assert.match(page.url(), new RegExp(`#trace=${shop}&span=${charge.spanId}$`));
    await page.goBack();
    await page.locator('#details .links a', { hasText: MISSING }).click();
    await page.locator('#missing').waitFor();
    assert.match(await page.locator('#missing').innerText(), /is not in the store/);
  });

  test('what the store holds is text, never markup: span fields, events, resources', async (t) => {
    if (needsFilterApi(t)) return;
    const page = await openPage(t, { hash: `#trace=${LINKED}&span=1000000000000002` });
    await page.locator('#details .links').waitFor();
    const details = await page.locator('#details').innerText();
    assert.match(details, /<b>note<\/b> = "<img src=x onerror=\\"window\.pwned=1\\">"/);
    assert.match(details, /<i>retry<\/i> \{"why": "<script>window\.pwned=2<\/script>"\}/);
    assert.match(details, /team = "<u>ledger<\/u>"/);
    assert.match((await page.locator('.row', { hasText: 'follow up' }).locator('.ev').getAttribute('aria-label'))!, /^event <i>retry<\/i> at /);
    assert.equal(await page.locator('#main img, #main b, #main i, #main u, #main script').count(), 0);
    assert.equal(await page.evaluate(() => (window as unknown as { pwned?: number }).pwned), undefined);
  });

  test('while a large store is first indexed, the page lists what is indexed so far and says "indexing… N%", then the whole list', async (t) => {
    const big = await mkdtemp(join(tmpdir(), 'sandtrace-page-indexing-'));
    const store = await writeSyntheticStore(big, { targetBytes: 100 * 2 ** 20, spansPerTrace: 4 });
    const v = await startViewer({ folder: big, port: 0, persistIndex: false, firstIndexWaitMs: 100 });
    const context = await browser.newContext({ viewport: { width: 1200, height: 760 } });
    t.after(async () => {
      await context.close();
      await v.close();
      await rm(big, { recursive: true });
    });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(v.url);
    const badge = page.locator('#indexing');
    await badge.waitFor({ state: 'visible' });
    assert.match(await badge.innerText(), /^indexing… \d+%$/);
    // It asks again while indexing: the badge goes once the index is whole, and the newest trace is listed.
    await badge.waitFor({ state: 'hidden', timeout: 120_000 });
    await page.locator('.trace').first().waitFor();
    assert.match(await page.locator('#count').innerText(), new RegExp(`${store.traceIds.length}`));
    assert.deepEqual(errors, []);
  });

  test('a trace opened while the store is first indexed (answered from the lines found so far) is drawn again whole once the index is', async (t) => {
    const big = await mkdtemp(join(tmpdir(), 'sandtrace-page-indexing-'));
    const split = await mkdtemp(join(tmpdir(), 'sandtrace-page-split-'));
    // One trace of two lines: the first at the store's start, the second at its end.
    const one = await writeSyntheticStore(split, { traces: 1, spansPerTrace: 4, services: 1, batch: 2, idOffset: 9_000_000 });
    const lines = (await readFile(join(split, 'traces.jsonl'), 'utf8')).trim().split('\n');
    assert.equal(lines.length, 2);
    await appendFile(join(big, 'traces.jsonl'), `${lines[0]}\n`);
    await writeSyntheticStore(big, { targetBytes: 100 * 2 ** 20, spansPerTrace: 4 });
    await appendFile(join(big, 'traces.jsonl'), `${lines[1]}\n`);
    const v = await startViewer({ folder: big, port: 0, persistIndex: false, firstIndexWaitMs: 100 });
    const context = await browser.newContext({ viewport: { width: 1200, height: 760 } });
    t.after(async () => {
      await context.close();
      await v.close();
      await rm(big, { recursive: true });
      await rm(split, { recursive: true });
    });
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${v.url}#trace=${one.traceIds[0]}`);
    const badge = page.locator('#indexing');
    await badge.waitFor({ state: 'visible' });
    await page.locator('#rows .row').first().waitFor();
    await badge.waitFor({ state: 'hidden', timeout: 120_000 });
    await page.waitForFunction(() => document.querySelectorAll('#rows .row').length === 4, undefined, { timeout: 20_000 });
    assert.deepEqual(errors, []);
  });
});
