/**
 * The store cap: the oldest traces evicted by size or age, lines shared with kept traces rewritten
 * keeping them, the index moved rather than rebuilt, and appends by other writers during a
 * compaction kept.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { appendFile, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { appendFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { EvictionStats } from '../host/viewer/store-eviction.js';
import { COMPACT_LOCK, StoreCap, storeSizes } from '../host/viewer/store-eviction.js';
import { StoreIndex, type IndexStats } from '../host/viewer/store-index.js';
import type { TraceSummary } from '../host/viewer/trace-digest.js';
import type { ViewSpan } from '../host/viewer/store-reader.js';
import { loadStore, summarize } from '../host/viewer/trace-store.js';
import { MATCHED_HEADER, startViewer, type Viewer } from '../host/viewer/view-server.js';
import { writeSyntheticStore } from './helpers/synthetic-store.js';

const folders: string[] = [];
const viewers: Viewer[] = [];
after(async () => {
  for (const v of viewers) await v.close();
  for (const f of folders) await rm(f, { recursive: true });
});
async function newFolder(): Promise<string> {
  const f = await mkdtemp(join(tmpdir(), 'sandtrace-evict-'));
  folders.push(f);
  return f;
}
/** The store's three files together, as the cap counts them. */
async function storeBytes(folder: string): Promise<number> {
  const sizes = await storeSizes(folder);
  return sizes['traces.jsonl'] + sizes['logs.jsonl'] + sizes['metrics.jsonl'];
}
async function apiStore(v: Viewer): Promise<{ index: IndexStats; eviction: EvictionStats & { policy: unknown } }> {
  return (await fetch(`${v.url}api/store`)).json() as never;
}
/** Waits for a compaction under way (requests do not wait for it) to finish. */
async function settled(v: Viewer): Promise<void> {
  while (v.eviction.compacting) await new Promise((r) => setTimeout(r, 5));
}
async function list(v: Viewer): Promise<TraceSummary[]> {
  return (await fetch(`${v.url}api/traces?limit=100000`)).json() as Promise<TraceSummary[]>;
}

describe('the store cap', () => {
  test('over --max-store-bytes, the oldest traces are evicted: shared lines keep the other traces, the index is moved not rebuilt, a restart reuses it', async () => {
    const folder = await newFolder();
    const store = await writeSyntheticStore(folder, { traces: 2000, spansPerTrace: 10, batch: 512, services: 3 });
    const before = await storeBytes(folder);
    const cap = Math.floor(before / 2);
    const v = await startViewer({ folder, port: 0, maxStoreBytes: cap, evictEveryMs: 0 });
    viewers.push(v);

    await list(v);
    await settled(v);
    const kept = await list(v);
    const { index, eviction } = await apiStore(v);
    assert.equal(eviction.runs, 1);
    assert.ok(eviction.evictedTraces > 0);
    assert.equal(kept.length + eviction.evictedTraces, 2000);
    assert.equal(eviction.lastBytesBefore, before);
    const now = await storeBytes(folder);
    assert.equal(eviction.lastBytesAfter, now);
    assert.ok(now <= cap, `${now} bytes ≤ the cap of ${cap}`);
    assert.ok(now >= cap * 0.7, `not far below 90% of the cap: ${now}`);
    assert.deepEqual(eviction.policy, { maxBytes: cap });

    // The oldest went: every kept trace started after every evicted one.
    const keptIds = new Set(kept.map((t) => t.traceId));
    const evicted = store.traceIds.filter((id) => !keptIds.has(id));
    assert.deepEqual(evicted, store.traceIds.slice(0, evicted.length));
    const inFiles = new Set<string>();
    for (const f of ['traces.jsonl', 'logs.jsonl']) for (const m of (await readFile(join(folder, f), 'utf8')).matchAll(/"traceId":"([0-9a-f]{32})"/g)) inFiles.add(m[1]!);
    assert.deepEqual([...inFiles].sort(), [...keptIds].sort(), 'the files hold the kept traces, and only them');
    assert.equal((await fetch(`${v.url}api/traces/${evicted.at(-1)}`)).status, 404);

    // The first trace kept shared a line with evicted ones (lines hold ~50 traces): whole, from its moved range.
    const firstKept = store.traceIds[evicted.length]!;
    const detail = (await (await fetch(`${v.url}api/traces/${firstKept}`)).json()) as { spans: ViewSpan[]; logs: unknown[] };
    assert.equal(detail.spans.length, 10);
    assert.equal(detail.logs.length, 1);
    assert.equal(index.parsedBytes, before, 'the compacted store was not parsed again');
    assert.equal(index.rebuilds.inconsistent + index.rebuilds.storeReplaced, 0);

    // The rewritten files read back whole, and agree with the index.
    const whole = await loadStore(folder);
    assert.deepEqual(whole.skippedLines, { traces: 0, logs: 0, metrics: 0 });
    assert.deepEqual(summarize(whole.spans).map((t) => t.traceId), kept.map((t) => t.traceId));

    await v.close();
    viewers.pop();
    const again = await startViewer({ folder, port: 0, maxStoreBytes: cap, evictEveryMs: 0 });
    viewers.push(again);
    assert.equal((await fetch(`${again.url}api/traces?limit=1`)).headers.get(MATCHED_HEADER), String(kept.length));
    const restarted = await apiStore(again);
    assert.equal(restarted.index.loadedFromDisk, true);
    assert.equal(restarted.index.parsedBytes, 0);
    assert.equal(restarted.index.rebuilds.staleIndex, 0);
    assert.equal(restarted.eviction.runs, 0, 'under the cap now');
  });

  test('--max-store-age evicts traces that started before the age, and metric lines older than every trace kept', async () => {
    const folder = await newFolder();
    const nowMs = Date.now();
    // Trace i starts i ms after t0: the first 1,500 are older than 3 s.
    const t0 = BigInt(nowMs - 4000) * 1_000_000n;
    await writeSyntheticStore(folder, { traces: 2000, t0 });
    const metricsBefore = (await readFile(join(folder, 'metrics.jsonl'), 'utf8')).trim().split('\n').length;
    const index = new StoreIndex(folder, { persist: false });
    const cap = new StoreCap(folder, index, { maxAgeMs: 3000 }, 0);
    await index.refresh();
    await cap.check(nowMs);
    assert.equal(cap.stats.runs, 1);
    assert.equal(cap.stats.evictedTraces, 1000);
    const starts: number[] = [];
    index.forEachTrace(0n, (_, s) => void starts.push(s.startMs));
    assert.equal(starts.length, 1000);
    assert.ok(Math.min(...starts) >= nowMs - 3000);
    const metrics = await readFile(join(folder, 'metrics.jsonl'), 'utf8');
    const kept = metrics.trim().split('\n');
    assert.ok(kept.length < metricsBefore, 'old metric lines dropped');
    for (const line of kept) {
      const times = [...line.matchAll(/"timeUnixNano":"(\d+)"/g)].map((m) => Number(BigInt(m[1]!) / 1_000_000n));
      assert.ok(Math.max(...times) >= Math.min(...starts), 'each kept metric line has a point from the time of a kept trace');
    }
    await cap.check(nowMs);
    assert.equal(cap.stats.runs, 1, 'nothing more to evict');
    await index.close();
  });

  test('lines other writers append during a compaction are kept, and indexed at the next look', async () => {
    const folder = await newFolder();
    const store = await writeSyntheticStore(folder, { traces: 20_000, spansPerTrace: 4 });
    const extra = await newFolder();
    const more = await writeSyntheticStore(extra, { traces: 60, spansPerTrace: 2, batch: 2, t0: store.t0 + 10n ** 12n, idOffset: 1_000_000 });
    const lines = (await readFile(join(extra, 'traces.jsonl'), 'utf8')).trim().split('\n');
    assert.equal(lines.length, 60);
    const index = new StoreIndex(folder, { persist: false });
    await index.refresh();
    const cap = new StoreCap(folder, index, { maxBytes: Math.floor((await storeBytes(folder)) / 2) }, 0);
    // Another writer appends a line whenever the event loop turns, all through the compaction.
    let appending = true;
    let appended = 0;
    const writer = (async () => {
      while (appending || appended < lines.length) {
        if (appended < lines.length) await appendFile(join(folder, 'traces.jsonl'), `${lines[appended++]}\n`);
        else await new Promise((r) => setImmediate(r));
      }
    })();
    await cap.check();
    appending = false;
    await writer;
    assert.equal(cap.stats.runs, 1);
    await index.refresh();
    const listed = new Set<string>();
    index.forEachTrace(0n, (_, s) => void listed.add(s.traceId));
    for (const id of more.traceIds) assert.ok(listed.has(id), `${id}, appended during or after the compaction, is kept`);
    assert.equal(listed.size, 20_000 - cap.stats.evictedTraces + 60);
    const whole = await loadStore(folder);
    assert.deepEqual(whole.skippedLines, { traces: 0, logs: 0, metrics: 0 });
    assert.equal(new Set(whole.spans.map((s) => s.traceId)).size, listed.size);
    console.log(`# appended during compaction: ${cap.stats.tailBytesCopied} bytes copied before the rename, ${cap.stats.lateBytesCopied} after`);
    await index.close();
  });
});

describe('closing the cap', () => {
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const leftovers = async (folder: string) => (await readdir(folder)).filter((f) => f.includes('.compact-') || f === COMPACT_LOCK);

  test('close() while a compaction waits to plan (the index busy, as with a long first look): it does not start, the store and lock are left as they were', async () => {
    const folder = await newFolder();
    await writeSyntheticStore(folder, { traces: 2000 });
    const before = await storeBytes(folder);
    const index = new StoreIndex(folder, { persist: false });
    await index.refresh();
    const cap = new StoreCap(folder, index, { maxBytes: Math.floor(before / 2) }, 0);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const held = index.exclusive(() => gate);
    const compaction = cap.check();
    // It has the store's lock and waits for the index.
    while (!existsSync(join(folder, COMPACT_LOCK))) await sleep(2);
    const closed = cap.close();
    release();
    await Promise.all([held, closed, compaction]);
    assert.equal(cap.stats.runs, 0, 'no compaction after close()');
    assert.equal(await storeBytes(folder), before);
    assert.deepEqual(await leftovers(folder), []);
    await index.close();
  });

  test('close() while a compaction copies: the copy stops (counted as abandoned), the store and lock are left as they were', async () => {
    const folder = await newFolder();
    await writeSyntheticStore(folder, { traces: 40_000, spansPerTrace: 4 });
    const before = await storeBytes(folder);
    const index = new StoreIndex(folder, { persist: false });
    await index.refresh();
    const cap = new StoreCap(folder, index, { maxBytes: Math.floor(before / 2) }, 0);
    const compaction = cap.check();
    while (!(await readdir(folder)).some((f) => f.startsWith('.traces.jsonl.compact-'))) await sleep(1);
    await cap.close();
    await compaction;
    assert.equal(cap.stats.runs, 0, 'the copy was not swapped in');
    assert.equal(cap.stats.abandoned, 1);
    assert.equal(cap.stats.failed, 0);
    assert.equal(await storeBytes(folder), before);
    assert.deepEqual(await leftovers(folder), []);
    await index.close();
  });

  test('close() once the swap has begun: the swap finishes (its copies of appended bytes are not stopped halfway through the files)', async () => {
    const folder = await newFolder();
    await writeSyntheticStore(folder, { traces: 2000 });
    const logLine = (await readFile(join(folder, 'logs.jsonl'), 'utf8')).split('\n')[0]!;
    const index = new StoreIndex(folder, { persist: false });
    await index.refresh();
    const cap = new StoreCap(folder, index, { maxBytes: Math.floor((await storeBytes(folder)) / 2) }, 0);
    // frozenAt is asked with readers held off, just before the swap: closed then, with bytes
    // appended to logs.jsonl (the second file swapped) for the swap to copy.
    const frozenAt = index.frozenAt.bind(index);
    index.frozenAt = (generation: number) => {
      void cap.close();
      appendFileSync(join(folder, 'logs.jsonl'), `${logLine}\n`);
      return frozenAt(generation);
    };
    await cap.check();
    assert.equal(cap.stats.failed, 0, cap.stats.lastError);
    assert.equal(cap.stats.runs, 1);
    assert.equal(index.stats.rebuilds.inconsistent, 0);
    assert.ok(cap.stats.tailBytesCopied > 0);
    assert.deepEqual(await leftovers(folder), []);
    await index.close();
  });
});

describe('sandtrace view --max-store-bytes / --max-store-age', () => {
  const CLI = fileURLToPath(new URL('../host/cli/main.js', import.meta.url));

  test('the command caps the store it serves, and refuses sizes and durations it cannot read', async () => {
    for (const [option, value, message] of [
      ['--max-store-bytes', '12Q', /--max-store-bytes needs a size such as 500M or 2G, got '12Q'/],
      ['--max-store-age', '3 years', /--max-store-age needs a duration such as 30m, 12h or 7d/],
      ['--max-store-age', '0s', /--max-store-age must be above 0, got '0s'/],
      ['--max-store-bytes', '0.0001k', /--max-store-bytes must be above 0/],
    ] as const) {
      const { code, stderr } = await new Promise<{ code: number; stderr: string }>((resolve) =>
        execFile(process.execPath, [CLI, 'view', '--port', '0', '--otlp-port', 'off', option, value], (error, _, stderr) => resolve({ code: (error as { code?: number } | null)?.code ?? 0, stderr })),
      );
      assert.equal(code, 2);
      assert.match(stderr, message);
    }

    const folder = await newFolder();
    await writeSyntheticStore(folder, { traces: 500 });
    const before = await storeBytes(folder);
    const child = spawn(process.execPath, [CLI, 'view', folder, '--port', '0', '--otlp-port', 'off', '--max-store-bytes', `${Math.floor(before / 1024 / 2)}k`, '--max-store-age', '7d'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout.on('data', (d) => {
          out += d;
          const m = /sandtrace view: (http:\/\/\S+)/.exec(out);
          if (m) resolve(m[1]!);
        });
        child.on('close', (code) => reject(new Error(`exited ${code}`)));
      });
      await fetch(`${url}api/traces`);
      let eviction: EvictionStats & { policy: unknown };
      do ({ eviction } = (await (await fetch(`${url}api/store`)).json()) as { eviction: EvictionStats & { policy: unknown } });
      while (eviction.compacting);
      assert.deepEqual(eviction.policy, { maxBytes: Math.floor(before / 1024 / 2) * 1024, maxAgeMs: 7 * 86_400_000 });
      assert.equal(eviction.runs, 1);
      assert.ok((await storeBytes(folder)) <= Math.floor(before / 1024 / 2) * 1024);
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.on('close', r));
    }
  });
});
