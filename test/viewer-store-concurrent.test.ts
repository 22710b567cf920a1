/**
 * A compaction runs beside the requests: while it copies a large store, the list and trace opens
 * are answered from the index as it was, at once, with whole and right data, including across the
 * moment the compacted files are renamed in. And while a large store is first indexed, requests
 * are answered with what is indexed so far, saying how far it got.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { ViewSpan } from '../host/viewer/store-reader.js';
import type { TraceSummary } from '../host/viewer/trace-digest.js';
import { INDEXING_HEADER, MATCHED_HEADER, startViewer, type Viewer } from '../host/viewer/view-server.js';
import { writeSyntheticStore } from './helpers/synthetic-store.js';

const folders: string[] = [];
const viewers: Viewer[] = [];
after(async () => {
  for (const v of viewers) await v.close();
  for (const f of folders) await rm(f, { recursive: true, force: true });
});
async function storeBytes(folder: string): Promise<number> {
  let n = 0;
  for (const f of ['traces.jsonl', 'logs.jsonl', 'metrics.jsonl']) n += (await stat(join(folder, f))).size;
  return n;
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

describe('requests during a compaction', () => {
  test('list and open answer from the current index in well under the compaction\'s time, with right data, across the swap', async () => {
    const folder = await mkdtemp(join(tmpdir(), 'sandtrace-concurrent-'));
    folders.push(folder);
    const store = await writeSyntheticStore(folder, { targetBytes: 120 * 2 ** 20, spansPerTrace: 4 });
    const total = store.traceIds.length;
    const bytes = await storeBytes(folder);
    // Capped at 95% of the store: it is rewritten whole (down to 85.5%), a long copy.
    const v = await startViewer({ folder, port: 0, maxStoreBytes: Math.floor(bytes * 0.95), evictEveryMs: 60_000, persistIndex: false });
    viewers.push(v);
    // The first request waits for the first index; it starts the compaction and does not wait for it.
    const first = await fetch(`${v.url}api/traces?limit=1`);
    assert.equal(first.headers.get(MATCHED_HEADER), String(total));
    await first.arrayBuffer();
    assert.equal(v.eviction.compacting, true, 'the store is over its cap: a compaction started');
    const started = performance.now();

    // Newest traces are kept by the compaction: each opened during it must come back whole.
    const newest = store.traceIds.slice(-500);
    const during: number[] = [];
    const across: number[] = [];
    let k = 0;
    while (v.eviction.compacting) {
      const t0 = performance.now();
      const list = await fetch(`${v.url}api/traces?limit=20`);
      const shown = (await list.json()) as TraceSummary[];
      assert.equal(list.status, 200);
      assert.equal(shown[0]!.traceId, store.traceIds.at(-1));
      const matched = Number(list.headers.get(MATCHED_HEADER));
      const id = newest[k++ % newest.length]!;
      const open = await fetch(`${v.url}api/traces/${id}`);
      assert.equal(open.status, 200);
      const detail = (await open.json()) as { spans: ViewSpan[]; logs: unknown[] };
      const ms = performance.now() - t0;
      assert.deepEqual(detail.spans.map((s) => s.traceId), [id, id, id, id], `${id} whole, its own spans`);
      assert.equal(detail.logs.length, 1);
      // Before the swap the list is the index as it was (every trace); after, without the evicted.
      (matched === total ? during : across).push(ms);
    }
    const compactionMs = performance.now() - started;
    assert.equal(v.eviction.failed, 0);
    assert.equal(v.eviction.runs, 1);
    const after = Number((await fetch(`${v.url}api/traces?limit=1`)).headers.get(MATCHED_HEADER));
    assert.equal(after, total - v.eviction.evictedTraces);
    assert.ok(v.eviction.evictedTraces > 0);
    console.log(
      `# store ${(bytes / 2 ** 20).toFixed(0)} MiB, ${total} traces; compaction ${compactionMs.toFixed(0)} ms (evicted ${v.eviction.evictedTraces}); ` +
        `${during.length} list+open pairs answered during it: median ${median(during).toFixed(1)} ms, slowest ${Math.max(...during).toFixed(1)} ms` +
        (across.length > 0 ? `; ${across.length} after the swap` : ''),
    );
    assert.ok(during.length >= 5, `requests were answered during the compaction (${during.length})`);
    // Generous (a shared machine): a list and an open together, the typical pair under a tenth of
    // the compaction's time, the slowest (which may meet its planning, on the event loop) under half.
    assert.ok(median(during) < compactionMs / 10, `median ${median(during).toFixed(0)} ms vs compaction ${compactionMs.toFixed(0)} ms`);
    assert.ok(Math.max(...during) < compactionMs / 2, `slowest ${Math.max(...during).toFixed(0)} ms vs compaction ${compactionMs.toFixed(0)} ms`);
  });
});

describe('requests during the first index of a large store', () => {
  test('are answered past firstIndexWaitMs with what is indexed so far and X-Sandtrace-Indexing, long before the index is whole', async () => {
    const folder = await mkdtemp(join(tmpdir(), 'sandtrace-first-index-'));
    folders.push(folder);
    const store = await writeSyntheticStore(folder, { targetBytes: 120 * 2 ** 20, spansPerTrace: 4 });
    const total = store.traceIds.length;
    const bytes = await storeBytes(folder);
    const started = performance.now();
    const v = await startViewer({ folder, port: 0, persistIndex: false, firstIndexWaitMs: 200 });
    viewers.push(v);
    const answers: Array<{ ms: number; done: number; listed: number }> = [];
    let firstWholeMs: number | undefined;
    for (;;) {
      const t0 = performance.now();
      const res = await fetch(`${v.url}api/traces?limit=5`);
      const shown = (await res.json()) as TraceSummary[];
      const ms = performance.now() - t0;
      assert.equal(res.status, 200);
      const indexing = res.headers.get(INDEXING_HEADER);
      const matched = Number(res.headers.get(MATCHED_HEADER));
      if (indexing === null) {
        assert.equal(matched, total, 'once whole, every trace');
        firstWholeMs = performance.now() - started;
        break;
      }
      const m = /^(\d+)\/(\d+)$/.exec(indexing);
      assert.ok(m, indexing);
      assert.equal(Number(m[2]), bytes);
      assert.ok(Number(m[1]) <= bytes);
      assert.ok(matched <= total);
      answers.push({ ms, done: Number(m[1]), listed: matched });
      // A trace listed so far opens whole, at once.
      if (shown.length > 0) {
        const t1 = performance.now();
        const open = await fetch(`${v.url}api/traces/${shown[0]!.traceId}`);
        assert.equal(open.status, 200);
        const detail = (await open.json()) as { spans: ViewSpan[] };
        assert.deepEqual(detail.spans.map((s) => s.traceId), [shown[0]!.traceId, shown[0]!.traceId, shown[0]!.traceId, shown[0]!.traceId]);
        answers.at(-1)!.ms += performance.now() - t1;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    const buildMs = firstWholeMs!;
    console.log(
      `# first index of ${(bytes / 2 ** 20).toFixed(0)} MiB: whole after ${buildMs.toFixed(0)} ms; ${answers.length} answers before (list + open): ` +
        `median ${median(answers.map((a) => a.ms)).toFixed(0)} ms, slowest ${Math.max(...answers.map((a) => a.ms)).toFixed(0)} ms; progress ${answers.map((a) => Math.floor((100 * a.done) / bytes)).join(' ')} %`,
    );
    assert.ok(answers.length >= 3, 'answered while indexing');
    assert.ok(answers.some((a) => a.listed > 0 && a.done < bytes), 'traces listed before the index was whole');
    for (let i = 1; i < answers.length; i++) assert.ok(answers[i]!.done >= answers[i - 1]!.done, 'progress only grows');
    // Generous (a shared machine): each answer far quicker than waiting for the whole index.
    assert.ok(median(answers.map((a) => a.ms)) < buildMs / 3, `median answer vs the whole index's ${buildMs.toFixed(0)} ms`);
  });
});
