/**
 * Issue 15's scale target: a store of 200,000 spans, opened within 100 ms per trace. The store is
 * written in the FileExporter's own line format (batches of 512 spans, several services, traces
 * straddling lines), and everything goes through HTTP as the page does.
 *
 * Opening a trace is a user-visible latency with an absolute target, so it is asserted: the median
 * of 15 opens ≤ 100 ms (measured 5-16 ms on a shared 2-core machine, alone and in the full suite,
 * so the margin covers a loaded CI run), and no open over 1 s. The issue sets no target for the
 * list: a filtered list is held to a median of 500 ms (11 ms alone, 135 ms in a loaded full run),
 * which reading the whole store (seconds at this size) would break.
 */
import assert from 'node:assert/strict';
import { appendFile, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { IndexStats } from '../host/viewer/store-index.js';
import type { TraceSummary } from '../host/viewer/trace-digest.js';
import type { ViewSpan } from '../host/viewer/store-reader.js';
import { MATCHED_HEADER, startViewer, type Viewer } from '../host/viewer/view-server.js';
import { writeSyntheticStore, type SyntheticStore } from './helpers/synthetic-store.js';

const TARGET_MS = 100;
let folder = '';
let store: SyntheticStore;
const viewers: Viewer[] = [];

before(async () => {
  folder = await mkdtemp(join(tmpdir(), 'sandtrace-scale-'));
  store = await writeSyntheticStore(folder, { traces: 20_000, spansPerTrace: 10, batch: 512, services: 4 });
});
after(async () => {
  for (const v of viewers) await v.close();
  await rm(folder, { recursive: true });
});

async function viewer(): Promise<Viewer> {
  const v = await startViewer({ folder, port: 0 });
  viewers.push(v);
  return v;
}

async function timed(url: string): Promise<{ ms: number; res: Response; body: string }> {
  const t = performance.now();
  const res = await fetch(url);
  const body = await res.text();
  return { ms: performance.now() - t, res, body };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function storeStats(v: Viewer): Promise<IndexStats> {
  return ((await (await fetch(`${v.url}api/store`)).json()) as { index: IndexStats }).index;
}

describe('a store of 200,000 spans', () => {
  test('is indexed once; a trace opens in ≤ 100 ms (median of 15 opens over HTTP), a filtered list too', async () => {
    assert.equal(store.spans, 200_000);
    const v = await viewer();
    const first = await timed(`${v.url}api/traces?limit=20`);
    assert.equal(first.res.status, 200);
    assert.equal(first.res.headers.get(MATCHED_HEADER), '20000');
    const listed = JSON.parse(first.body) as TraceSummary[];
    assert.equal(listed.length, 20);
    assert.equal(listed[0]!.traceId, store.traceIds.at(-1), 'newest first');
    const stats = await storeStats(v);
    assert.equal(stats.traces, 20_000);
    assert.equal(stats.parsedBytes, store.bytes.traces + store.bytes.logs + store.bytes.metrics, 'every line parsed once');

    const opens: number[] = [];
    for (let i = 0; i < 15; i++) {
      const id = store.traceIds[(i * 1301 + 17) % store.traceIds.length]!;
      const { ms, res, body } = await timed(`${v.url}api/traces/${id}`);
      assert.equal(res.status, 200);
      const detail = JSON.parse(body) as { spans: ViewSpan[]; logs: unknown[]; metrics: unknown[]; resources: unknown[] };
      assert.equal(detail.spans.length, 10);
      assert.equal(detail.logs.length, 1);
      assert.ok(Array.isArray(detail.metrics));
      assert.equal(detail.resources.length, 1);
      opens.push(ms);
    }
    const sizes = await Promise.all(['traces.jsonl', 'logs.jsonl', 'metrics.jsonl'].map(async (f) => (await stat(join(folder, f))).size));
    console.log(`# 200,000 spans, ${(sizes.reduce((a, b) => a + b) / 2 ** 20).toFixed(0)} MB: index built in ${first.ms.toFixed(0)} ms; open median ${median(opens).toFixed(1)} ms, max ${Math.max(...opens).toFixed(1)} ms`);
    assert.ok(median(opens) <= TARGET_MS, `median open ${median(opens).toFixed(1)} ms`);
    assert.ok(Math.max(...opens) <= 1000, `slowest open ${Math.max(...opens).toFixed(1)} ms`);

    const searches: number[] = [];
    let matched = '';
    for (let i = 0; i < 7; i++) {
      const { ms, res, body } = await timed(`${v.url}api/traces?service=svc-2&service=svc-3&name=ORDER%2042&attr=customer=c-42&minMs=0.5`);
      matched = res.headers.get(MATCHED_HEADER)!;
      assert.ok((JSON.parse(body) as TraceSummary[]).every((t) => t.services[0] === 'svc-2' || t.services[0] === 'svc-3'));
      searches.push(ms);
    }
    // Trace i: service i % 4, span 'handle order <i % 97>', customer c-<i % 1000>, 0.9 ms long.
    const expected = store.traceIds.filter((_, i) => (i % 4 === 2 || i % 4 === 3) && i % 97 === 42 && i % 1000 === 42).length;
    assert.ok(expected > 0);
    assert.equal(matched, String(expected));
    console.log(`# filtered list: median ${median(searches).toFixed(1)} ms (${matched} of 20,000 match)`);
    // No absolute target for the list in the issue: a bound that a whole-store read (seconds at this size) would break, loose enough for a loaded run.
    assert.ok(median(searches) <= 5 * TARGET_MS, `median filtered list ${median(searches).toFixed(1)} ms`);
  });

  test('a restarted viewer reads the persisted index and parses only what was appended since', async () => {
    const before = viewers.pop() ?? (await viewer());
    await before.close();
    const v = await viewer();
    const { res } = await timed(`${v.url}api/traces?limit=1`);
    assert.equal(res.headers.get(MATCHED_HEADER), '20000');
    let stats = await storeStats(v);
    assert.equal(stats.loadedFromDisk, true);
    assert.equal(stats.parsedBytes, 0, 'nothing re-parsed');
    const opened = await timed(`${v.url}api/traces/${store.traceIds[123]}`);
    assert.equal(opened.res.status, 200);

    // Another writer appends one trace: only that line is read.
    const extra = await mkdtemp(join(tmpdir(), 'sandtrace-scale-extra-'));
    try {
      const more = await writeSyntheticStore(extra, { traces: 1, t0: store.t0 + 10n ** 15n, idOffset: 1_000_000 });
      await appendFile(join(folder, 'traces.jsonl'), await readFile(join(extra, 'traces.jsonl')));
      const list = JSON.parse((await timed(`${v.url}api/traces?limit=1`)).body) as TraceSummary[];
      assert.equal(list[0]!.traceId, more.traceIds[0]);
      stats = await storeStats(v);
      assert.equal(stats.parsedBytes, more.bytes.traces);
    } finally {
      await rm(extra, { recursive: true });
    }
  });
});
