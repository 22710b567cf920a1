/**
 * Durable workflows in the local store: spans still open at a step commit arrive as `span started`
 * log records and are shown as running until the span itself is written; a replayed step re-emits
 * the same span ids, which the reader collapses and counts. Stores are written through the real
 * FileExporter from hand-made records, in the shape the pipeline collector gives them.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { chromium } from 'playwright-core';
import type { Values } from '../shared/records.js';
import { FileExporter } from '../host/export/otlp-json.js';
import { SEVERITY, type LogRecord, type SpanRecord } from '../host/pipeline/telemetry-records.js';
import { loadStore, summarize, type TraceSummary, type ViewLog, type ViewSpan } from '../host/viewer/trace-store.js';
import { startViewer, type Viewer } from '../host/viewer/view-server.js';
import { textMatching } from './helpers/page-text.js';

const CHROMIUM = '/usr/bin/chromium';
const bytes = (hex: string) => Uint8Array.from(Buffer.from(hex, 'hex'));
const SEC = 1_000_000_000n;
/** Times a few seconds before now, so the page draws running spans at a sensible scale. */
const T0 = (BigInt(Date.now()) - 10_000n) * 1_000_000n;

// Trace A: a workflow in progress. Trace B: only a running root. Trace C: finished, one step replayed.
const A = 'a0000000000000000000000000000001';
const B = 'b0000000000000000000000000000002';
const C = 'c0000000000000000000000000000003';
const ids = { wf: '00000000000000a1', charge: '00000000000000a2', ship: '00000000000000a3', nightly: '00000000000000b1', billing: '00000000000000c1', invoice: '00000000000000c2' };

function span(traceId: string, spanId: string, parent: string | undefined, name: string, start: bigint, end: bigint, attributes: Values = [], executionId = 'wf-1'): SpanRecord {
  return {
    traceId: bytes(traceId),
    spanId: bytes(spanId),
    parentSpanId: parent === undefined ? undefined : bytes(parent),
    traceFlags: 1,
    name,
    scope: 'workflow',
    start,
    end,
    attributes: [...attributes, ['sandtrace.execution.id', executionId]],
    events: [],
    links: [],
    status: { code: 'unset' },
    executionId,
    forced: undefined,
    droppedEvents: 0,
  };
}

/** The record the pipeline collector writes at a step commit for a span still open. */
function started(traceId: string, spanId: string, parent: string | undefined, name: string, start: bigint, fields: Values = [], executionId = 'wf-1'): LogRecord {
  return {
    time: start,
    level: 'info',
    severityNumber: SEVERITY.info,
    body: 'span started',
    attributes: [
      ['sandtrace.span.name', name],
      ...(parent === undefined ? [] : ([['sandtrace.span.parent_span_id', parent]] as Values)),
      ['sandtrace.span.start_time_unix_nano', start.toString()],
      ...fields,
    ],
    scope: 'workflow',
    traceId: bytes(traceId),
    spanId: bytes(spanId),
    traceFlags: 1,
    executionId,
  };
}

function log(traceId: string, spanId: string, body: string, time: bigint, attributes: Values = []): LogRecord {
  return { time, level: 'info', severityNumber: SEVERITY.info, body, attributes, scope: 'workflow', traceId: bytes(traceId), spanId: bytes(spanId), traceFlags: 1, executionId: 'wf-1' };
}

/** The store after step 1 of workflow A committed (its root and `ship` open), B started, and C finished with its `invoice` step replayed. */
async function writeStore(folder: string): Promise<void> {
  const store = new FileExporter(folder);
  // Step 1 of A commits: `charge` closed, the workflow root still open.
  await store.exportSpans([span(A, ids.charge, ids.wf, 'charge', T0 + SEC, T0 + 2n * SEC, [['amount', 42]])]);
  await store.exportLogs([log(A, ids.charge, 'charged', T0 + SEC, [['card', 'visa']]), started(A, ids.wf, undefined, 'order workflow', T0, [['order', 'o-7']])]);
  // Step 2 of A commits with `ship` open too: the root's record again, identical.
  await store.exportLogs([
    started(A, ids.wf, undefined, 'order workflow', T0, [['order', 'o-7']]),
    started(A, ids.ship, ids.wf, 'ship', T0 + 3n * SEC, [['carrier', 'ups']]),
    // A guest's own log with that body (its `sandtrace.*` keys renamed by the receiver) stays a log.
    log(A, ids.ship, 'span started', T0 + 4n * SEC, [['guest.sandtrace.span.name', 'forged']]),
  ]);
  // B: a run that has committed once with its only span open.
  await store.exportLogs([started(B, ids.nightly, undefined, 'nightly import', T0 + 5n * SEC, [], 'wf-2')]);
  // C: `invoice` is written, then its step is replayed with the same ids (and dies this time).
  await store.exportLogs([started(C, ids.billing, undefined, 'billing', T0, [], 'wf-3')]);
  await store.exportSpans([span(C, ids.invoice, ids.billing, 'invoice', T0 + SEC, T0 + 2n * SEC, [['lines', 3]], 'wf-3')]);
  await store.exportSpans([
    span(C, ids.invoice, ids.billing, 'invoice', T0 + SEC, T0 + 9n * SEC, [['lines', 3], ['sandtrace.force_closed', true], ['sandtrace.termination.cause', 'deadline']], 'wf-3'),
    span(C, ids.billing, undefined, 'billing', T0, T0 + 9n * SEC, [], 'wf-3'),
  ]);
  await store.shutdown();
}

/** Workflow A finishes: its open spans are written once each. */
async function finishA(folder: string): Promise<void> {
  const store = new FileExporter(folder);
  await store.exportSpans([span(A, ids.ship, ids.wf, 'ship', T0 + 3n * SEC, T0 + 6n * SEC, [['carrier', 'ups']]), span(A, ids.wf, undefined, 'order workflow', T0, T0 + 7n * SEC, [['order', 'o-7']])]);
  await store.shutdown();
}

const byName = (spans: ViewSpan[], name: string) => spans.find((s) => s.name === name)!;
const trace = (traces: TraceSummary[], id: string) => traces.find((t) => t.traceId === id)!;

let folder = '';
let viewer: Viewer;

before(async () => {
  folder = await mkdtemp(join(tmpdir(), 'sandtrace-view-wf-'));
  await writeStore(folder);
  viewer = await startViewer({ folder, port: 0 });
});
after(async () => {
  await viewer.close();
  await rm(folder, { recursive: true });
});

describe('sandtrace view: durable workflows', () => {
  test('a span with only `span started` records is running: under its parent, from its start to when the store was read', async () => {
    const now = T0 + 20n * SEC;
    const store = await loadStore(folder, { now });
    assert.equal(store.readAt, now.toString());
    const a = store.spans.filter((s) => s.traceId === A);
    assert.deepEqual(a.map((s) => s.name).sort(), ['charge', 'order workflow', 'ship']);
    const root = byName(a, 'order workflow');
    const ship = byName(a, 'ship');
    assert.equal(root.running, true);
    assert.equal(root.parentSpanId, undefined);
    assert.equal(root.start, T0.toString());
    assert.equal(root.end, now.toString());
    assert.equal(root.durationMs, 20_000);
    assert.equal(root.duplicates, 1, 'the identical record of the second commit');
    assert.equal(ship.running, true);
    assert.equal(ship.parentSpanId, ids.wf);
    assert.equal(ship.start, (T0 + 3n * SEC).toString());
    assert.equal(ship.scope, 'workflow');
    assert.deepEqual(ship.attributes, { carrier: 'ups', 'sandtrace.execution.id': 'wf-1' }, 'its fields, not the record-describing keys');
    assert.equal(ship.executionId, 'wf-1');
    assert.equal(ship.duplicates, undefined);
    assert.equal(byName(a, 'charge').running, undefined);
    assert.equal(byName(a, 'charge').parentSpanId, ids.wf);

    // `span started` records are not logs; ordinary ones (and a guest's lookalike) are.
    const logs = store.logs.filter((l) => l.traceId === A);
    assert.deepEqual(logs.map((l) => l.body).sort(), ['charged', 'span started']);
    assert.deepEqual(logs.find((l) => l.body === 'span started')!.attributes, { 'guest.sandtrace.span.name': 'forged', 'sandtrace.execution.id': 'wf-1' });

    const traces = summarize(store.spans);
    assert.equal(traces.length, 3);
    assert.equal(trace(traces, A).running, 2);
    assert.equal(trace(traces, A).spans, 3);
    assert.equal(trace(traces, A).durationMs, 20_000);
    assert.deepEqual(trace(traces, B), { traceId: B, root: 'nightly import', start: (T0 + 5n * SEC).toString(), startMs: Number((T0 + 5n * SEC) / 1_000_000n), durationMs: 15_000, spans: 1, errors: 0, forced: [], executionIds: ['wf-2'], running: 1, duplicateSpans: 0, services: ['sandtrace'] });

    // A store read before a span's start (another clock) draws it with no length, never negative.
    const early = await loadStore(folder, { now: T0 + SEC });
    assert.equal(byName(early.spans, 'nightly import').end, (T0 + 5n * SEC).toString());
    assert.equal(byName(early.spans, 'nightly import').durationMs, 0);
  });

  test('a replayed span is kept once (the first written, unless a later record ended normally where it was force-closed), and counted; a closed span replaces its running placeholder', async () => {
    const store = await loadStore(folder, { now: T0 + 20n * SEC });
    const c = store.spans.filter((s) => s.traceId === C);
    assert.deepEqual(c.map((s) => s.name).sort(), ['billing', 'invoice'], 'billing is written: no running placeholder');
    const invoice = byName(c, 'invoice');
    assert.equal(invoice.forcedCause, undefined, 'the first record, not the replay that died');
    assert.equal(invoice.end, (T0 + 2n * SEC).toString());
    assert.equal(invoice.duplicates, 1);
    assert.equal(byName(c, 'billing').running, undefined);
    assert.deepEqual(store.duplicates, { spans: 1, spanStarts: 1 });
    const summary = trace(summarize(store.spans), C);
    assert.equal(summary.duplicateSpans, 1);
    assert.equal(summary.running, 0);
    assert.deepEqual(summary.forced, [], 'the dropped replay does not mark the trace');

    // The other order: the attempt that died was written first, the replay that finished later.
    const replay = await mkdtemp(join(tmpdir(), 'sandtrace-view-wf-replay-'));
    try {
      const out = new FileExporter(replay);
      await out.exportSpans([span(C, ids.invoice, ids.billing, 'invoice', T0 + SEC, T0 + 9n * SEC, [['lines', 3], ['sandtrace.force_closed', true], ['sandtrace.termination.cause', 'deadline']], 'wf-3')]);
      await out.exportSpans([span(C, ids.invoice, ids.billing, 'invoice', T0 + SEC, T0 + 2n * SEC, [['lines', 3]], 'wf-3')]);
      await out.shutdown();
      const kept = byName((await loadStore(replay, { now: T0 + 20n * SEC })).spans, 'invoice');
      assert.equal(kept.forcedCause, undefined, 'the replay that finished replaces the attempt that died');
      assert.equal(kept.end, (T0 + 2n * SEC).toString());
      assert.equal(kept.duplicates, 1);
    } finally {
      await rm(replay, { recursive: true });
    }

    // Workflow A finishes: the real spans win, the trace is no longer in progress.
    const later = await mkdtemp(join(tmpdir(), 'sandtrace-view-wf-done-'));
    try {
      await writeStore(later);
      await finishA(later);
      const done = await loadStore(later, { now: T0 + 20n * SEC });
      const a = done.spans.filter((s) => s.traceId === A);
      assert.equal(a.length, 3);
      assert.ok(a.every((s) => s.running === undefined));
      assert.equal(byName(a, 'ship').end, (T0 + 6n * SEC).toString());
      assert.equal(byName(a, 'order workflow').duplicates, undefined, 'the placeholder and its count are gone');
      const summary = trace(summarize(done.spans), A);
      assert.equal(summary.running, 0);
      assert.equal(summary.durationMs, 7_000);
      assert.equal(summary.duplicateSpans, 0);
    } finally {
      await rm(later, { recursive: true });
    }
  });

  test('the HTTP API serves running spans and duplicate counts', async () => {
    const before = BigInt(Date.now()) * 1_000_000n;
    const traces = (await (await fetch(`${viewer.url}api/traces`)).json()) as TraceSummary[];
    assert.deepEqual(traces.map((t) => [t.traceId, t.running, t.duplicateSpans]).sort(), [[A, 2, 0], [B, 1, 0], [C, 0, 1]]);
    const detail = (await (await fetch(`${viewer.url}api/traces/${A}`)).json()) as { spans: ViewSpan[]; logs: ViewLog[] };
    const ship = byName(detail.spans, 'ship');
    assert.equal(ship.running, true);
    assert.equal(ship.parentSpanId, ids.wf);
    assert.equal(ship.start, (T0 + 3n * SEC).toString());
    assert.ok(BigInt(ship.end) >= before && BigInt(ship.end) <= BigInt(Date.now()) * 1_000_000n, 'ends when the store was read');
    assert.deepEqual(detail.logs.map((l) => l.body).sort(), ['charged', 'span started']);
    const onlyRunning = (await (await fetch(`${viewer.url}api/traces/${B}`)).json()) as { spans: ViewSpan[] };
    assert.deepEqual(onlyRunning.spans.map((s) => [s.name, s.running]), [['nightly import', true]]);
  });

  test('in Chromium: in-progress traces and running spans are marked, duplicates counted', { skip: existsSync(CHROMIUM) ? false : `needs ${CHROMIUM}` }, async () => {
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'] });
    try {
      const page = await browser.newPage({ viewport: { width: 1200, height: 700 } });
      await page.goto(viewer.url);
      await page.waitForSelector('.trace');
      assert.equal(await page.locator('.trace').count(), 3);
      assert.equal(await page.locator('.trace', { hasText: 'in progress' }).count(), 2);
      assert.match(await textMatching(page.locator('.trace', { hasText: 'billing' }), /1 duplicate/), /1 duplicate/);
      await page.selectOption('#filter-status', 'running');
      assert.equal(await page.locator('.trace').count(), 2);

      await page.locator('.trace', { hasText: 'order workflow' }).click();
      const ship = page.locator('.row.running', { hasText: 'ship' });
      await ship.waitFor();
      assert.match(await textMatching(ship, /running/), /running/);
      assert.equal(await ship.locator('.bar.running').count(), 1);
      assert.equal(await page.locator('.row.running').count(), 2);
      assert.equal(await page.locator('.row:not(.running)', { hasText: 'charge' }).count(), 1);
      // `ship` is drawn under the workflow root, indented one level.
      assert.equal(await ship.locator('.name').evaluate((el) => (el as HTMLElement).style.paddingLeft), '16px');
      await ship.click();
      const details = await textMatching(page.locator('#details'), /running: started, not ended/);
      assert.match(details, /running: started, not ended/);
      assert.match(details, /carrier = "ups"/);

      await page.selectOption('#filter-status', 'all');
      await page.locator('.trace', { hasText: 'billing' }).click();
      const invoice = page.locator('.row', { hasText: 'invoice' });
      await invoice.waitFor();
      const invoiceText = await textMatching(invoice, /×2/);
      assert.match(invoiceText, /×2/);
      assert.doesNotMatch(invoiceText, /deadline/);
    } finally {
      await browser.close();
    }
  });
});
