import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { appendFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { chromium } from 'playwright-core';
import { BatchingManager } from '../host/batching/batching-manager.js';
import { OtlpHttpExporter } from '../host/export/otlp-http-exporter.js';
import { FileExporter } from '../host/export/otlp-json.js';
import { otlpType } from '../host/export/otlp-proto.js';
import { PipelineCollector } from '../host/pipeline/pipeline-collector.js';
import { runQuickJS } from '../host/sandbox/quickjs-runner.js';
import type { IngestStats } from '../host/viewer/otlp-ingest.js';
import { loadStore, type TraceSummary, type ViewSpan } from '../host/viewer/trace-store.js';
import { SKIPPED_LINES_HEADER, startViewer, type Viewer } from '../host/viewer/view-server.js';

const CHROMIUM = '/usr/bin/chromium';
const folders: string[] = [];
const viewers: Viewer[] = [];

async function viewerOn(options: { otlpMaxBodyBytes?: number } = {}): Promise<{ viewer: Viewer; folder: string }> {
  const folder = await mkdtemp(join(tmpdir(), 'sandtrace-ingest-'));
  folders.push(folder);
  const viewer = await startViewer({ folder, port: 0, otlpPort: 0, pollMs: 50, ...options });
  viewers.push(viewer);
  return { viewer, folder };
}

after(async () => {
  for (const v of viewers) await v.close();
  for (const f of folders) await rm(f, { recursive: true });
});

const hex = (n: number) => [...crypto.getRandomValues(new Uint8Array(n))].map((b) => b.toString(16).padStart(2, '0')).join('');

/** An OTLP JSON trace request: one span per entry, times in ms after `base`. */
function jsonTrace(traceId: string, spans: Array<{ spanId: string; name: string; parent?: string; attributes?: unknown[] }>, base = Date.now()): string {
  return JSON.stringify({
    resourceSpans: [
      {
        resource: { attributes: [{ key: 'service.name', value: { stringValue: 'json-sender' } }] },
        scopeSpans: [
          {
            scope: { name: 'json-scope' },
            spans: spans.map((s, i) => ({
              traceId,
              spanId: s.spanId,
              ...(s.parent !== undefined && { parentSpanId: s.parent }),
              name: s.name,
              kind: 2,
              startTimeUnixNano: String(BigInt(base + i) * 1_000_000n),
              endTimeUnixNano: String(BigInt(base + i + 5) * 1_000_000n),
              attributes: s.attributes ?? [],
              status: {},
            })),
          },
        ],
      },
    ],
  });
}

function post(url: string, body: string | Uint8Array, headers: Record<string, string>): Promise<Response> {
  return fetch(url, { method: 'POST', headers, body: typeof body === 'string' ? body : Buffer.from(body) });
}

/** The status of a request naming another Host (fetch does not let a Host header through). */
function statusWithHost(url: string, host: string, method: string): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const req = http.request(url, { method, headers: { Host: host, 'Content-Type': 'application/json' } }, (res) => {
      res.resume();
      resolve(res.statusCode!);
    });
    req.on('error', reject);
    req.end(method === 'POST' ? '{}' : undefined);
  });
}

async function trace(viewer: Viewer, traceId: string): Promise<{ spans: ViewSpan[]; logs: Array<{ body: string; spanId?: string }> }> {
  const res = await fetch(`${viewer.url}api/traces/${traceId}`);
  assert.equal(res.status, 200, `trace ${traceId} is in the store`);
  return (await res.json()) as never;
}

describe('sandtrace view receives OTLP/HTTP', () => {
  test("the real OpenTelemetry SDK's spans and a guest run's spans are one trace", async () => {
    const { viewer, folder } = await viewerOn();
    const provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ 'service.name': 'shop' }),
      spanProcessors: [new SimpleSpanProcessor(new OTLPTraceExporter({ url: `${viewer.otlpUrl}v1/traces`, compression: 'gzip' as never }))],
    });
    const request = provider.getTracer('shop-http').startSpan('GET /checkout');
    const { traceId, spanId } = request.spanContext();
    const traceparent = `00-${traceId}-${spanId}-01`;

    // One guest exports to the store's files, the other to the viewer's OTLP port (protobuf, gzip).
    const toFile = new BatchingManager(new FileExporter(folder));
    await runQuickJS(`tracing.inSpan('price cart', { items: 3 }, () => tracing.info('priced'));`, {
      collector: new PipelineCollector({ eventsAs: 'both', handlers: toFile.handlers() }),
      executionId: 'ingest-file',
      traceparent,
    });
    await toFile.shutdown();
    const toOtlp = new BatchingManager(new OtlpHttpExporter({ endpoint: viewer.otlpUrl! }, {}));
    await runQuickJS(`tracing.inSpan('charge card', { amount: 42 }, () => { tracing.info('charged', { ok: true }); tracing.counter('charges', 1); });`, {
      collector: new PipelineCollector({ eventsAs: 'both', handlers: toOtlp.handlers() }),
      executionId: 'ingest-otlp',
      traceparent,
    });
    await toOtlp.shutdown();
    request.end();
    await provider.shutdown();

    const list = (await (await fetch(`${viewer.url}api/traces`)).json()) as TraceSummary[];
    assert.equal(list.length, 1, 'one trace');
    assert.equal(list[0]!.traceId, traceId);
    const { spans, logs } = await trace(viewer, traceId);
    const byName = (name: string) => spans.filter((s) => s.name === name);
    const root = byName('GET /checkout')[0]!;
    assert.equal(root.spanId, spanId);
    assert.equal(root.scope, 'shop-http', 'the SDK span, decoded from protobuf');
    assert.equal(root.parentSpanId, undefined);
    const executions = byName('sandtrace.execution');
    assert.equal(executions.length, 2);
    for (const e of executions) assert.equal(e.parentSpanId, spanId, 'each guest execution is a child of the host span');
    const price = byName('price cart')[0]!;
    const charge = byName('charge card')[0]!;
    assert.equal(price.executionId, 'ingest-file');
    assert.equal(charge.executionId, 'ingest-otlp');
    assert.deepEqual({ amount: charge.attributes.amount }, { amount: 42 });
    assert.ok(executions.some((e) => e.spanId === charge.parentSpanId));
    assert.ok(BigInt(charge.start) >= BigInt(root.start) && BigInt(charge.end) <= BigInt(root.end));
    assert.ok(logs.some((l) => l.body === 'charged' && l.spanId === charge.spanId), 'logs received as protobuf');
    const store = await loadStore(folder);
    assert.ok(store.metrics.some((m) => m.name === 'charges' && m.value === 1), 'metrics received as protobuf');
    assert.deepEqual(store.skippedLines, { traces: 0, logs: 0, metrics: 0 });
    const stats = viewer.ingest!;
    assert.ok(stats.accepted.traces >= 2 && stats.accepted.logs >= 1 && stats.accepted.metrics >= 1, JSON.stringify(stats));
    assert.equal(Object.values(stats.rejected).reduce((a, b) => a + b, 0), 0);
    // The stored protobuf request is the JSON mapping: hex ids, 64-bit integers as strings.
    const line = (await readFile(join(folder, 'traces.jsonl'), 'utf8')).split('\n').find((l) => l.includes('GET /checkout'))!;
    const span = JSON.parse(line).resourceSpans[0].scopeSpans[0].spans[0];
    assert.equal(span.traceId, traceId);
    assert.match(span.startTimeUnixNano, /^\d+$/);
  });

  test('OTLP JSON (plain and gzip) is stored; numbers for 64-bit integers and upper-case ids are accepted', async () => {
    const { viewer, folder } = await viewerOn();
    const traceId = hex(16);
    const rootId = hex(8);
    const childId = hex(8);
    const body = jsonTrace(traceId.toUpperCase(), [
      { spanId: rootId, name: 'json root', attributes: [{ key: 'n', value: { intValue: 7 } }] },
      { spanId: childId, name: 'json child', parent: rootId },
    ]);
    const res = await post(`${viewer.otlpUrl}v1/traces`, body, { 'Content-Type': 'application/json' });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/json');
    assert.deepEqual(await res.json(), {});
    const gz = await post(`${viewer.otlpUrl}v1/logs`, gzipSync(JSON.stringify({
      resourceLogs: [{ scopeLogs: [{ scope: { name: 'app' }, logRecords: [{ timeUnixNano: String(BigInt(Date.now()) * 1_000_000n), severityText: 'INFO', body: { stringValue: 'hello from json' }, traceId, spanId: childId }] }] }],
    })), { 'Content-Type': 'application/json; charset=utf-8', 'Content-Encoding': 'gzip' });
    assert.equal(gz.status, 200);
    // A kind the store does not hold is left out, with a warning; the rest is stored.
    const metrics = await post(`${viewer.otlpUrl}v1/metrics`, JSON.stringify({
      resourceMetrics: [{ scopeMetrics: [{ metrics: [
        { name: 'json.sum', sum: { dataPoints: [{ asInt: 5, timeUnixNano: Date.now() * 1e6 }], aggregationTemporality: 2, isMonotonic: true } },
        { name: 'json.exp', exponentialHistogram: { dataPoints: [{ count: '1' }] } },
      ] }] }],
    }), { 'Content-Type': 'application/json' });
    assert.equal(metrics.status, 200);
    assert.match((await metrics.json()).partialSuccess.errorMessage, /1 metric\(s\) of a kind the store does not hold/);

    const { spans, logs } = await trace(viewer, traceId);
    assert.deepEqual(spans.map((s) => [s.name, s.parentSpanId ?? null]).sort(), [['json child', rootId], ['json root', null]]);
    assert.equal(spans.find((s) => s.name === 'json root')!.attributes.n, 7);
    assert.ok(logs.some((l) => l.body === 'hello from json' && l.spanId === childId));
    const store = await loadStore(folder);
    assert.deepEqual(store.metrics.map((m) => [m.name, m.value]), [['json.sum', 5]]);
    assert.deepEqual(store.skippedLines, { traces: 0, logs: 0, metrics: 0 });

    // Protobuf answered in protobuf: an empty ExportTraceServiceResponse.
    const type = otlpType('ExportTraceServiceRequest');
    const empty = await post(`${viewer.otlpUrl}v1/traces`, type.encode(type.create({})).finish(), { 'Content-Type': 'application/x-protobuf' });
    assert.equal(empty.status, 200);
    assert.equal(empty.headers.get('content-type'), 'application/x-protobuf');
    assert.equal((await empty.arrayBuffer()).byteLength, 0);
  });

  test('bodies that do not decode, are too large or of another type are refused and counted; the viewer keeps serving', async () => {
    const { viewer, folder } = await viewerOn({ otlpMaxBodyBytes: 64 * 1024 });
    const url = `${viewer.otlpUrl}v1/traces`;
    const proto = { 'Content-Type': 'application/x-protobuf' };
    const json = { 'Content-Type': 'application/json' };
    const type = otlpType('ExportTraceServiceRequest');
    const shortId = type.encode(type.fromObject({ resourceSpans: [{ scopeSpans: [{ spans: [{ traceId: Buffer.from('abc'), spanId: Buffer.alloc(8, 1), name: 'x' }] }] }] })).finish();
    let deep = '0';
    for (let i = 0; i < 5000; i++) deep = `[${deep}]`;
    const bad: Array<[string, string | Uint8Array, Record<string, string>]> = [
      ['garbage protobuf', Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2]), proto],
      ['a trace id of 3 bytes', shortId, proto],
      ['not JSON', '{"resourceSpans": [', json],
      ['not UTF-8', Buffer.from([0x7b, 0xff, 0x7d]), json],
      ['a bad trace id', jsonTrace('xyz', [{ spanId: hex(8), name: 'a' }]), json],
      ['resourceSpans not a list', '{"resourceSpans": 3}', json],
      ['nested without end', `{"resourceSpans": ${deep}}`, json],
      ['gzip that is not', 'plainly not gzip', { ...json, 'Content-Encoding': 'gzip' }],
    ];
    for (const [what, body, headers] of bad) {
      const res = await post(url, body, headers);
      assert.equal(res.status, 400, what);
      if (headers['Content-Type'] === 'application/json') assert.equal((await res.json()).code, 3, what);
      else assert.ok((await res.arrayBuffer()).byteLength > 0, `${what}: a google.rpc.Status`);
    }
    const big = await post(url, Buffer.alloc(100 * 1024, 0x20), json);
    assert.equal(big.status, 413);
    const bomb = await post(url, gzipSync(Buffer.alloc(4 * 1024 * 1024, 0x20)), { ...json, 'Content-Encoding': 'gzip' });
    assert.equal(bomb.status, 413, 'the bound holds once decompressed');
    assert.equal((await post(url, '{}', { 'Content-Type': 'text/plain' })).status, 415);
    assert.equal((await post(url, '{}', { ...json, 'Content-Encoding': 'br' })).status, 415);
    assert.equal((await fetch(url)).status, 405);
    assert.equal((await post(`${viewer.otlpUrl}v1/profiles`, '{}', json)).status, 404);
    assert.equal(await statusWithHost(url, `rebound.example:${new URL(url).port}`, 'POST'), 421);

    const stats = (await (await fetch(`${viewer.url}api/ingest`)).json()) as IngestStats & { receiving: boolean };
    assert.equal(stats.receiving, true);
    assert.deepEqual(stats.rejected, { badBody: bad.length, tooLarge: 2, unsupportedMedia: 2, notFound: 1, methodNotAllowed: 1, misdirected: 1, storeFailed: 0 });
    assert.deepEqual(stats.accepted, { traces: 0, logs: 0, metrics: 0 });

    const traceId = hex(16);
    assert.equal((await post(url, jsonTrace(traceId, [{ spanId: hex(8), name: 'after the storm' }]), json)).status, 200);
    const res = await fetch(`${viewer.url}api/traces`);
    assert.equal(res.headers.get(SKIPPED_LINES_HEADER), '0', 'nothing refused reached the store');
    assert.deepEqual(((await res.json()) as TraceSummary[]).map((t) => t.traceId), [traceId]);
    assert.equal((await readFile(join(folder, 'traces.jsonl'), 'utf8')).trim().split('\n').length, 1);
  });
});

/** Reads server-sent events from the viewer until `until` says stop. */
async function sseEvents(viewer: Viewer, signal: AbortSignal, onEvent: (name: string) => void): Promise<void> {
  const res = await fetch(`${viewer.url}api/events`, { signal });
  assert.equal(res.headers.get('content-type'), 'text/event-stream');
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  let buffered = '';
  void (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buffered += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffered.indexOf('\n\n')) >= 0) {
          const block = buffered.slice(0, end);
          buffered = buffered.slice(end + 2);
          const name = /^event: (.*)$/m.exec(block)?.[1];
          if (name !== undefined) onEvent(name);
        }
      }
    } catch {
      // aborted
    }
  })();
}

function waitFor(check: () => boolean, what: string, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const tick = () => (check() ? resolve() : Date.now() > until ? reject(new Error(`timed out waiting for ${what}`)) : setTimeout(tick, 20));
    tick();
  });
}

describe('sandtrace view is live', () => {
  test('an event-stream client hears of an ingest, and of another writer appending to the store', async () => {
    const { viewer, folder } = await viewerOn();
    const abort = new AbortController();
    let events = 0;
    await sseEvents(viewer, abort.signal, (name) => name === 'store' && events++);
    try {
      await new Promise((r) => setTimeout(r, 150));
      assert.equal(events, 0, 'nothing changed yet');
      const res = await post(`${viewer.otlpUrl}v1/traces`, jsonTrace(hex(16), [{ spanId: hex(8), name: 'live one' }]), { 'Content-Type': 'application/json' });
      assert.equal(res.status, 200);
      await waitFor(() => events >= 1, 'a notification after an ingest');
      const seen = events;
      await new Promise((r) => setTimeout(r, 200));
      await appendFile(join(folder, 'traces.jsonl'), `${jsonTrace(hex(16), [{ spanId: hex(8), name: 'from elsewhere' }])}\n`);
      await waitFor(() => events > seen, 'a notification after another writer appended');
      assert.equal(await statusWithHost(`${viewer.url}api/events`, `rebound.example:${new URL(viewer.url).port}`, 'GET'), 421, 'the events keep the Host check');
    } finally {
      abort.abort();
    }
  });

  test('in Chromium: a trace received while the page is open appears, and a span added to the open trace is drawn, without a reload', { skip: existsSync(CHROMIUM) ? false : `needs ${CHROMIUM} (.ci/run installs Debian's chromium)` }, async () => {
    const { viewer } = await viewerOn();
    const json = { 'Content-Type': 'application/json' };
    const first = hex(16);
    const firstRoot = hex(8);
    await post(`${viewer.otlpUrl}v1/traces`, jsonTrace(first, [{ spanId: firstRoot, name: 'already there' }]), json);
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    try {
      const page = await browser.newPage({ viewport: { width: 1200, height: 700 } });
      await page.goto(viewer.url);
      await page.waitForSelector('#live:not(.off)');
      await page.waitForSelector('.trace'); // the list and the event stream load side by side
      assert.equal(await page.locator('.trace').count(), 1);
      await page.evaluate(() => ((window as unknown as { notReloaded: boolean }).notReloaded = true));
      await page.locator('.trace', { hasText: 'already there' }).click();
      await page.locator('.row', { hasText: 'already there' }).waitFor();

      await post(`${viewer.otlpUrl}v1/traces`, jsonTrace(hex(16), [{ spanId: hex(8), name: 'arrived <b>live</b>' }]), json);
      await page.locator('.trace', { hasText: 'arrived <b>live</b>' }).waitFor({ timeout: 5000 });
      assert.equal(await page.locator('.trace b').count(), 0, 'what arrives is escaped');
      await post(`${viewer.otlpUrl}v1/traces`, jsonTrace(first, [{ spanId: hex(8), name: 'late child', parent: firstRoot }]), json);
      await page.locator('.row', { hasText: 'late child' }).waitFor({ timeout: 5000 });
      assert.equal(await page.evaluate(() => (window as unknown as { notReloaded?: boolean }).notReloaded), true, 'the page was not reloaded');
      assert.equal(await page.locator('.trace.selected').count(), 1, 'the open trace stays selected');
    } finally {
      await browser.close();
    }
  });
});
