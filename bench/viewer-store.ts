/**
 * By hand (not in `npm run bench`: it writes hundreds of MB): the viewer on a large store.
 *
 *   node dist/bench/viewer-store.js [traces.jsonl MB, default 500] [folder to keep, default a temporary one]
 *
 * Writes a store in the FileExporter's format (test/helpers/synthetic-store.ts), then through
 * HTTP: the first list (the index is built), opening traces (median and max of 25), a filtered
 * list, the viewer restarted (the persisted index read, only new bytes parsed), and a cap at half
 * the store (the compaction timed, traces opened after it).
 */
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startViewer } from '../host/viewer/view-server.js';
import { writeSyntheticStore } from '../test/helpers/synthetic-store.js';

const mb = Number(process.argv[2] ?? 500);
const keep = process.argv[3];
const folder = keep ?? (await mkdtemp(join(tmpdir(), 'sandtrace-bench-view-')));

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const t = performance.now();
  const v = await fn();
  return [v, performance.now() - t];
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const size = async (f: string) => (await stat(join(folder, f)).catch(() => ({ size: 0 }))).size;

try {
  let traceIds: string[];
  const existing = await size('traces.jsonl');
  if (existing > 0) {
    console.log(`using the store in ${folder}`);
    traceIds = [];
  } else {
    const [store, ms] = await timed(() => writeSyntheticStore(folder, { targetBytes: mb * 1024 * 1024 }));
    traceIds = store.traceIds;
    console.log(`wrote ${store.spans} spans in ${traceIds.length} traces in ${(ms / 1000).toFixed(1)} s`);
  }
  const total = (await size('traces.jsonl')) + (await size('logs.jsonl')) + (await size('metrics.jsonl'));
  console.log(`store: traces.jsonl ${((await size('traces.jsonl')) / 2 ** 20).toFixed(0)} MB, logs.jsonl ${((await size('logs.jsonl')) / 2 ** 20).toFixed(0)} MB, metrics.jsonl ${((await size('metrics.jsonl')) / 2 ** 20).toFixed(0)} MB, ${(total / 2 ** 20).toFixed(0)} MB in all`);

  const mem0 = process.memoryUsage().rss;
  let viewer = await startViewer({ folder, port: 0 });
  const [first, buildMs] = await timed(async () => (await fetch(`${viewer.url}api/traces?limit=50`)).json() as Promise<Array<{ traceId: string }>>);
  const stats = (await (await fetch(`${viewer.url}api/store`)).json()).index;
  console.log(`first list (index built): ${(buildMs / 1000).toFixed(2)} s, ${stats.traces} traces, parsed ${(stats.parsedBytes / 2 ** 20).toFixed(0)} MB; rss +${((process.memoryUsage().rss - mem0) / 2 ** 20).toFixed(0)} MB`);
  if (traceIds.length === 0) traceIds = first.map((t) => t.traceId);

  const opens: number[] = [];
  for (let i = 0; i < 25; i++) {
    const id = traceIds[Math.floor((i * 7919) % traceIds.length)]!;
    const [res, ms] = await timed(async () => {
      const r = await fetch(`${viewer.url}api/traces/${id}`);
      await r.arrayBuffer();
      return r;
    });
    if (res.status !== 200) throw new Error(`trace ${id}: ${res.status}`);
    opens.push(ms);
  }
  console.log(`open a trace (HTTP, 25 opens): median ${median(opens).toFixed(1)} ms, max ${Math.max(...opens).toFixed(1)} ms`);

  const lists: number[] = [];
  for (let i = 0; i < 9; i++) lists.push((await timed(async () => (await fetch(`${viewer.url}api/traces?service=svc-1&name=ORDER%2042&attr=customer=c-42&minMs=0.5`)).arrayBuffer()))[1]);
  console.log(`filtered list (service, name, attr, duration): median ${median(lists).toFixed(1)} ms, max ${Math.max(...lists).toFixed(1)} ms`);
  const plain: number[] = [];
  for (let i = 0; i < 9; i++) plain.push((await timed(async () => (await fetch(`${viewer.url}api/traces`)).arrayBuffer()))[1]);
  console.log(`unfiltered list (500 of ${stats.traces}): median ${median(plain).toFixed(1)} ms`);

  const [, closeMs] = await timed(() => viewer.close());
  viewer = await startViewer({ folder, port: 0 });
  const [, reloadMs] = await timed(async () => (await fetch(`${viewer.url}api/traces?limit=1`)).arrayBuffer());
  const after = (await (await fetch(`${viewer.url}api/store`)).json()).index;
  console.log(`restart: close (index written) ${(closeMs / 1000).toFixed(2)} s; first list after restart ${(reloadMs / 1000).toFixed(2)} s, loadedFromDisk ${after.loadedFromDisk}, parsed ${after.parsedBytes} bytes`);
  const reopen: number[] = [];
  for (let i = 0; i < 9; i++) reopen.push((await timed(async () => (await fetch(`${viewer.url}api/traces/${traceIds[i * 31]}`)).arrayBuffer()))[1]);
  console.log(`open after restart: median ${median(reopen).toFixed(1)} ms`);
  await viewer.close();

  // The cap: half the store evicted (the oldest traces), the files rewritten, the index moved.
  viewer = await startViewer({ folder, port: 0, maxStoreBytes: Math.floor(total / 2), evictEveryMs: 0 });
  const [, capMs] = await timed(async () => (await fetch(`${viewer.url}api/traces?limit=1`)).arrayBuffer());
  const capped = (await (await fetch(`${viewer.url}api/store`)).json()) as { index: { parsedBytes: number; traces: number }; eviction: { evictedTraces: number; lastBytesBefore: number; lastBytesAfter: number } };
  console.log(
    `cap at half: first list with the compaction ${(capMs / 1000).toFixed(2)} s, ${capped.eviction.evictedTraces} traces evicted, ${(capped.eviction.lastBytesBefore / 2 ** 20).toFixed(0)} → ${(capped.eviction.lastBytesAfter / 2 ** 20).toFixed(0)} MB, ${capped.index.traces} kept, parsed ${capped.index.parsedBytes} bytes`,
  );
  const afterCap: number[] = [];
  for (let i = 0; i < 9; i++) afterCap.push((await timed(async () => (await fetch(`${viewer.url}api/traces/${traceIds[traceIds.length - 1 - i * 31]}`)).arrayBuffer()))[1]);
  console.log(`open after the compaction: median ${median(afterCap).toFixed(1)} ms`);
  await viewer.close();
} finally {
  if (keep === undefined) await rm(folder, { recursive: true });
}
