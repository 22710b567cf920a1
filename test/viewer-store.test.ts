/**
 * The viewer's store index and API over HTTP: appends, torn lines, replaced files, the persisted
 * index (corrupt and stale ones rebuilt), each list filter, exact 64-bit integers, resources and links.
 */
import assert from 'node:assert/strict';
import { appendFile, mkdtemp, readFile, rename, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { Values } from '../shared/records.js';
import { FileExporter } from '../host/export/otlp-json.js';
import { SEVERITY, type LogRecord, type SpanRecord } from '../host/pipeline/telemetry-records.js';
import { INDEX_FOLDER, type IndexStats } from '../host/viewer/store-index.js';
import type { TraceSummary } from '../host/viewer/trace-digest.js';
import type { ViewLog, ViewMetric, ViewSpan } from '../host/viewer/store-reader.js';
import { loadStore, summarize } from '../host/viewer/trace-store.js';
import { MATCHED_HEADER, SKIPPED_LINES_HEADER, startViewer, type Viewer } from '../host/viewer/view-server.js';

const folders: string[] = [];
const viewers: Viewer[] = [];
after(async () => {
  for (const v of viewers) await v.close();
  for (const f of folders) await rm(f, { recursive: true });
});

async function newFolder(): Promise<string> {
  const f = await mkdtemp(join(tmpdir(), 'sandtrace-store-'));
  folders.push(f);
  return f;
}
async function viewerOn(folder: string): Promise<Viewer> {
  const v = await startViewer({ folder, port: 0 });
  viewers.push(v);
  return v;
}
async function close(v: Viewer): Promise<void> {
  viewers.splice(viewers.indexOf(v), 1);
  await v.close();
}

const bytes = (hex: string) => Uint8Array.from(Buffer.from(hex, 'hex'));
const MS = 1_000_000n;
const T0 = 1_700_000_000_000n * MS;
const tid = (n: number) => n.toString(16).padStart(32, '0');
const sid = (n: number) => n.toString(16).padStart(16, '0');

function span(trace: number, id: number, name: string, startMs: number, endMs: number, o: { parent?: number; attributes?: Values; error?: boolean; execution?: string; links?: SpanRecord['links']; events?: SpanRecord['events'] } = {}): SpanRecord {
  return {
    traceId: bytes(tid(trace)),
    spanId: bytes(sid(id)),
    parentSpanId: o.parent === undefined ? undefined : bytes(sid(o.parent)),
    traceFlags: 1,
    name,
    scope: 'test',
    start: T0 + BigInt(startMs) * MS,
    end: T0 + BigInt(endMs) * MS,
    attributes: [...(o.attributes ?? []), ...(o.execution === undefined ? [] : ([['sandtrace.execution.id', o.execution]] as Values))],
    events: o.events ?? [],
    links: o.links ?? [],
    status: o.error ? { code: 'error', message: 'failed' } : { code: 'unset' },
    executionId: o.execution,
    forced: undefined,
    droppedEvents: 0,
  };
}

async function json<T>(v: Viewer, path: string): Promise<{ status: number; body: T; headers: Headers }> {
  const res = await fetch(`${v.url}${path}`);
  return { status: res.status, body: (await res.json()) as T, headers: res.headers };
}
const stats = async (v: Viewer) => (await json<{ index: IndexStats }>(v, 'api/store')).body.index;
const ids = async (v: Viewer, query = '') => (await json<TraceSummary[]>(v, `api/traces${query}`)).body.map((t) => t.traceId);

describe('the store index', () => {
  test('follows appends: a torn last line is read once complete, a span added to a known trace updates it, bad lines are counted', async () => {
    const folder = await newFolder();
    const out = new FileExporter(folder);
    await out.exportSpans([span(1, 1, 'one', 0, 10), span(2, 2, 'two', 5, 20)]);
    await out.shutdown();
    const v = await viewerOn(folder);
    assert.deepEqual(await ids(v), [tid(2), tid(1)]);

    const line = (await readFile(join(folder, 'traces.jsonl'), 'utf8')).split('\n')[0]!.replaceAll(tid(1), tid(3)).replaceAll(sid(1), sid(3));
    await appendFile(join(folder, 'traces.jsonl'), line.slice(0, 50));
    const torn = await json<TraceSummary[]>(v, 'api/traces');
    assert.equal(torn.body.length, 2, 'half a line is not read yet');
    assert.equal(torn.headers.get(SKIPPED_LINES_HEADER), '0', 'nor counted as bad');
    await appendFile(join(folder, 'traces.jsonl'), `${line.slice(50)}\n`);
    assert.equal((await ids(v)).length, 3);

    // A later line with another span of trace 1: its summary and its detail include it.
    const more = new FileExporter(folder);
    await more.exportSpans([span(1, 11, 'one more', 12, 40, { parent: 1, error: true })]);
    await more.shutdown();
    const one = (await json<TraceSummary[]>(v, 'api/traces')).body.find((t) => t.traceId === tid(1))!;
    assert.equal(one.spans, 2);
    assert.equal(one.errors, 1);
    assert.equal(one.durationMs, 40);
    const detail = await json<{ spans: ViewSpan[] }>(v, `api/traces/${tid(1)}`);
    assert.deepEqual(detail.body.spans.map((s) => s.name), ['one', 'one more']);

    await appendFile(join(folder, 'traces.jsonl'), 'not json\n{"resourceSpans": 3}\n');
    const after = await json<TraceSummary[]>(v, 'api/traces');
    assert.equal(after.headers.get(SKIPPED_LINES_HEADER), '2');
    assert.equal(after.body.length, 3);
    const s = await stats(v);
    assert.equal(s.files['traces.jsonl'].skippedLines, 2);
    assert.equal(s.rebuilds.storeReplaced, 0);
  });

  test('a trace whose records lie far apart in one read is described as a whole-store read describes it', async () => {
    const folder = await newFolder();
    const out = new FileExporter(folder);
    await out.exportSpans([span(1, 1, 'root', 0, 10, { execution: 'far' })]);
    // 100 lines of other traces: trace 1 is digested and let go before its next span comes.
    for (let i = 0; i < 100; i++) await out.exportSpans([span(100 + i, 100 + i, `filler ${i}`, i, i + 1)]);
    await out.exportSpans([span(1, 2, 'late child', 20, 90, { parent: 1, error: true }), span(1, 1, 'root', 0, 15, { execution: 'far' })]);
    const started = (spanId: number, name: string, atMs: number): LogRecord => ({
      time: T0 + BigInt(atMs) * MS,
      level: 'info',
      severityNumber: SEVERITY.info,
      body: 'span started',
      attributes: [['sandtrace.span.name', name], ['sandtrace.span.parent_span_id', sid(1)], ['sandtrace.span.start_time_unix_nano', (T0 + BigInt(atMs) * MS).toString()]],
      scope: 'wf',
      traceId: bytes(tid(1)),
      spanId: bytes(sid(spanId)),
      traceFlags: 1,
      executionId: 'far',
    });
    await out.exportLogs([started(3, 'still running', 50), started(2, 'late child', 20), { ...started(1, 'x', 1), body: 'an ordinary log' }]);
    await out.shutdown();
    const v = await viewerOn(folder);
    const whole = await loadStore(folder);
    const listed = (await json<TraceSummary[]>(v, 'api/traces')).body.find((t) => t.traceId === tid(1))!;
    const expected = summarize(whole.spans).find((t) => t.traceId === tid(1))!;
    assert.deepEqual({ ...listed, durationMs: 0 }, { ...expected, durationMs: 0 });
    assert.ok(listed.durationMs >= expected.durationMs, 'running until read');
    assert.deepEqual([listed.spans, listed.errors, listed.running, listed.duplicateSpans], [3, 1, 1, 1]);
    const detail = (await json<{ spans: ViewSpan[]; logs: ViewLog[] }>(v, `api/traces/${tid(1)}`)).body;
    const strip = (spans: ViewSpan[]) => spans.map((s) => ({ ...s, end: s.running ? '' : s.end, durationMs: s.running ? 0 : s.durationMs }));
    assert.deepEqual(strip(detail.spans), strip(whole.spans.filter((s) => s.traceId === tid(1))));
    assert.deepEqual(detail.logs.map((l) => l.body), ['an ordinary log']);
  });

  test('a store file replaced or shrunk starts the index over; an unknown trace is 404', async () => {
    const folder = await newFolder();
    const out = new FileExporter(folder);
    await out.exportSpans([span(1, 1, 'one', 0, 10)]);
    await out.exportSpans([span(2, 2, 'two', 5, 20)]);
    await out.shutdown();
    const v = await viewerOn(folder);
    assert.equal((await ids(v)).length, 2);

    // Replaced (another inode), as a compaction by another process would.
    const other = await newFolder();
    const writer = new FileExporter(other);
    await writer.exportSpans([span(7, 7, 'seven', 0, 1)]);
    await writer.shutdown();
    await rename(join(other, 'traces.jsonl'), join(folder, 'traces.jsonl'));
    assert.deepEqual(await ids(v), [tid(7)]);
    assert.equal((await json(v, `api/traces/${tid(1)}`)).status, 404);
    assert.equal((await stats(v)).rebuilds.storeReplaced, 1);

    // Shrunk in place.
    await appendFile(join(folder, 'traces.jsonl'), (await readFile(join(folder, 'traces.jsonl'), 'utf8')).replaceAll(tid(7), tid(8)));
    assert.equal((await ids(v)).length, 2);
    const first = (await readFile(join(folder, 'traces.jsonl'), 'utf8')).indexOf('\n') + 1;
    await truncate(join(folder, 'traces.jsonl'), first);
    assert.deepEqual(await ids(v), [tid(7)]);
    assert.equal((await stats(v)).rebuilds.storeReplaced, 2);
  });

  test('a restarted viewer uses the persisted index; a corrupt or stale one is counted and rebuilt, never trusted', async () => {
    const folder = await newFolder();
    const out = new FileExporter(folder);
    await out.exportSpans([span(1, 1, 'one', 0, 10), span(2, 2, 'two', 5, 20)]);
    await out.shutdown();
    let v = await viewerOn(folder);
    assert.equal((await ids(v)).length, 2);
    await close(v);

    v = await viewerOn(folder);
    assert.equal((await ids(v)).length, 2);
    let s = await stats(v);
    assert.equal(s.loadedFromDisk, true);
    assert.equal(s.parsedBytes, 0);
    await close(v);

    // A byte of the body changed: its hash no longer matches.
    const path = join(folder, INDEX_FOLDER, 'index.json');
    const index = await readFile(path, 'utf8');
    await writeFile(path, index.replace(tid(1), tid(9)));
    v = await viewerOn(folder);
    assert.deepEqual(await ids(v), [tid(2), tid(1)]);
    s = await stats(v);
    assert.equal(s.loadedFromDisk, false);
    assert.equal(s.rebuilds.corruptIndex, 1);
    assert.ok(s.parsedBytes > 0);
    await close(v);
    // Cut short, and not JSON at all.
    for (const junk of [index.slice(0, index.length / 2), 'garbage']) {
      await writeFile(path, junk);
      v = await viewerOn(folder);
      assert.equal((await ids(v)).length, 2);
      assert.equal((await stats(v)).rebuilds.corruptIndex, 1);
      await close(v);
    }

    // Stale: the store was rewritten (same size, another inode) while no viewer ran.
    const content = await readFile(join(folder, 'traces.jsonl'), 'utf8');
    await writeFile(join(folder, 'traces.tmp'), content.replaceAll(tid(1), tid(5)));
    await rename(join(folder, 'traces.tmp'), join(folder, 'traces.jsonl'));
    v = await viewerOn(folder);
    assert.deepEqual(await ids(v), [tid(2), tid(5)]);
    s = await stats(v);
    assert.equal(s.rebuilds.staleIndex, 1);
    assert.equal(s.loadedFromDisk, true, 'it was read, then found stale');
  });
});

describe('finding traces (server side)', () => {
  async function store(): Promise<Viewer> {
    const folder = await newFolder();
    const shop = new FileExporter(folder, [['service.name', 'shop']]);
    const billing = new FileExporter(folder, [['service.name', 'billing']]);
    // 1: shop, 30 ms, ok.  2: shop + billing, 200 ms, an error.  3: billing, 5 ms, force-closed.  4: a running span only.
    await shop.exportSpans([
      span(1, 1, 'GET /cart', 0, 30, { attributes: [['http.route', '/cart'], ['items', 3]], execution: 'run-alpha' }),
      span(2, 2, 'POST /Checkout', 1000, 1200, { attributes: [['http.route', '/checkout']], execution: 'run-beta' }),
    ]);
    await billing.exportSpans([
      span(2, 3, 'charge card', 1010, 1100, { parent: 2, error: true, attributes: [['amount', 42]] }),
      span(3, 4, 'refund', 2000, 2005, { attributes: [['sandtrace.force_closed', true], ['sandtrace.termination.cause', 'deadline']] }),
    ]);
    const started: LogRecord = {
      time: T0 + 3000n * MS,
      level: 'info',
      severityNumber: SEVERITY.info,
      body: 'span started',
      attributes: [['sandtrace.span.name', 'nightly'], ['sandtrace.span.start_time_unix_nano', (T0 + 3000n * MS).toString()]],
      scope: 'wf',
      traceId: bytes(tid(4)),
      spanId: bytes(sid(5)),
      traceFlags: 1,
      executionId: 'run-gamma',
    };
    await billing.exportLogs([started]);
    await shop.shutdown();
    await billing.shutdown();
    return viewerOn(folder);
  }

  test('each filter of /api/traces, X-Sandtrace-Matched and limit; /api/services', async () => {
    const v = await store();
    const t0ms = Number(T0 / MS);
    assert.deepEqual((await json(v, 'api/services')).body, ['billing', 'shop']);
    const all = await json<TraceSummary[]>(v, 'api/traces');
    assert.deepEqual(all.body.map((t) => t.traceId), [tid(4), tid(3), tid(2), tid(1)]);
    assert.equal(all.headers.get(MATCHED_HEADER), '4');
    assert.deepEqual(all.body.find((t) => t.traceId === tid(2))!.services, ['billing', 'shop']);
    assert.equal(all.body.find((t) => t.traceId === tid(2))!.startMs, t0ms + 1000);

    const cases: Array<[string, number[]]> = [
      ['service=shop', [2, 1]],
      ['service=billing&service=nobody', [4, 3, 2]],
      ['service=sho', []],
      ['name=checkout', [2]],
      ['name=CHARGE', [2]],
      ['attr=http.route=/cart', [1]],
      ['attr=items=3', [1]],
      ['attr=amount', [2]],
      ['attr=http.route&attr=amount=42', [2]],
      ['attr=amount=41', []],
      ['minMs=10&maxMs=100', [1]],
      ['minMs=100', [4, 2]], // the running trace lasts until now
      ['status=error', [2]],
      ['status=ok', [4, 3, 1]],
      ['status=forced', [3]],
      ['status=running', [4]],
      [`from=${t0ms + 500}&to=${t0ms + 2500}`, [3, 2]],
      [`to=${t0ms}`, [1]],
      ['execution=run-', [4, 2, 1]],
      ['execution=beta', [2]],
      ['service=shop&status=error&name=charge', [2]],
    ];
    for (const [query, expected] of cases) {
      const res = await json<TraceSummary[]>(v, `api/traces?${query}`);
      assert.deepEqual(res.body.map((t) => t.traceId), expected.map(tid), query);
      assert.equal(res.headers.get(MATCHED_HEADER), String(expected.length), query);
    }
    const limited = await json<TraceSummary[]>(v, 'api/traces?limit=2');
    assert.deepEqual(limited.body.map((t) => t.traceId), [tid(4), tid(3)]);
    assert.equal(limited.headers.get(MATCHED_HEADER), '4', 'matched counts before the limit');
    for (const bad of ['status=broken', 'minMs=abc', 'limit=-1', 'limit=1.5']) {
      const res = await json<{ error: string }>(v, `api/traces?${bad}`);
      assert.equal(res.status, 400, bad);
      assert.ok(res.body.error.length > 0);
    }
  });
});

describe('values as written', () => {
  test('64-bit integers beyond 2^53 stay exact in attributes, events, logs, resources and metrics; resources and links are served', async () => {
    const folder = await newFolder();
    const out = new FileExporter(folder, [['service.name', 'exact'], ['process.pid', 9007199254740993n]]);
    const big = 9007199254740993n;
    const min = -9223372036854775808n;
    await out.exportSpans([
      span(1, 1, 'root', 0, 10, { attributes: [['big', big], ['min', min], ['small', 42], ['neg', -7n]], events: [{ name: 'tick', time: T0 + MS, attributes: [['at', big]] }] }),
      span(1, 2, 'linked', 2, 8, { parent: 1, links: [{ traceId: bytes(tid(2)), spanId: bytes(sid(9)), traceFlags: 1, remote: false }] }),
    ]);
    await out.exportLogs([{ time: T0 + 2n * MS, level: 'info', severityNumber: SEVERITY.info, body: 'counted', attributes: [['n', min]], scope: 'test', traceId: bytes(tid(1)), spanId: bytes(sid(1)), traceFlags: 1, executionId: undefined }]);
    await out.exportMetrics([
      { name: 'huge', kind: 'sum', sum: big, monotonic: true, attributes: [['k', big]], start: T0, time: T0 + 5n * MS },
      { name: 'low', kind: 'gauge', last: min, attributes: [], start: T0, time: T0 + 5n * MS },
      { name: 'plain', kind: 'gauge', last: 5n, attributes: [], start: T0, time: T0 + 5n * MS },
    ]);
    await out.shutdown();
    // A link with attributes, as OTLP ingest stores an SDK's.
    const line = JSON.parse((await readFile(join(folder, 'traces.jsonl'), 'utf8')).trim());
    line.resourceSpans[0].scopeSpans[0].spans[1].links[0].attributes = [{ key: 'reason', value: { stringValue: 'retry of' } }, { key: 'attempt', value: { intValue: '-9223372036854775808' } }];
    await writeFile(join(folder, 'traces.jsonl'), `${JSON.stringify(line)}\n`);

    const v = await viewerOn(folder);
    const { body } = await json<{ spans: ViewSpan[]; logs: ViewLog[]; metrics: ViewMetric[]; resources: Array<Record<string, unknown>> }>(v, `api/traces/${tid(1)}`);
    const root = body.spans.find((s) => s.name === 'root')!;
    assert.deepEqual(root.attributes, { big: { intValue: '9007199254740993' }, min: { intValue: '-9223372036854775808' }, small: 42, neg: -7 });
    assert.deepEqual(root.events, [{ time: (T0 + MS).toString(), name: 'tick', attributes: { at: { intValue: '9007199254740993' } } }]);
    assert.deepEqual(body.logs[0]!.attributes, { n: { intValue: '-9223372036854775808' } });
    assert.deepEqual(body.resources, [{ 'service.name': 'exact', 'process.pid': { intValue: '9007199254740993' } }]);
    assert.equal(root.resource, 0);
    assert.equal(root.service, 'exact');
    const linked = body.spans.find((s) => s.name === 'linked')!;
    assert.deepEqual(linked.links, [{ traceId: tid(2), spanId: sid(9), attributes: { reason: 'retry of', attempt: { intValue: '-9223372036854775808' } } }]);
    assert.deepEqual(root.links, []);
    assert.deepEqual(
      body.metrics.map((m) => [m.name, m.value, m.attributes]),
      [['huge', { intValue: '9007199254740993' }, { k: { intValue: '9007199254740993' } }], ['low', { intValue: '-9223372036854775808' }, {}], ['plain', 5, {}]],
    );
    // A filter compares the exact text.
    assert.deepEqual(await ids(v, '?attr=big=9007199254740993'), [tid(1)]);
    assert.deepEqual(await ids(v, '?attr=big=9007199254740992'), []);
  });
});
