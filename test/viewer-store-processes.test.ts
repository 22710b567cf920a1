/**
 * Processes sharing one store: two capped viewers (separate processes) compact it one at a time,
 * under the store's compaction lock, while a third process appends, and no appended line is lost.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { storeSizes, type EvictionStats } from '../host/viewer/store-eviction.js';
import type { IndexStats } from '../host/viewer/store-index.js';
import { loadStore } from '../host/viewer/trace-store.js';
import { writeSyntheticStore } from './helpers/synthetic-store.js';

const CAPPED_VIEWER = fileURLToPath(new URL('./fixtures/capped-viewer.js', import.meta.url));
const APPENDER = fileURLToPath(new URL('./fixtures/line-appender.js', import.meta.url));
const folders: string[] = [];
const children: ChildProcessWithoutNullStreams[] = [];
after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const f of folders) await rm(f, { recursive: true, force: true });
});
async function newFolder(): Promise<string> {
  const f = await mkdtemp(join(tmpdir(), 'sandtrace-procs-'));
  folders.push(f);
  return f;
}
/** The store's three files together, as the cap counts them. */
async function storeBytes(folder: string): Promise<number> {
  const sizes = await storeSizes(folder);
  return sizes['traces.jsonl'] + sizes['logs.jsonl'] + sizes['metrics.jsonl'];
}

/** Starts a child and resolves with the first match of `pattern` in its output. */
function child(args: string[], pattern: RegExp): { proc: ChildProcessWithoutNullStreams; match: Promise<string> } {
  const proc = spawn(process.execPath, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  children.push(proc);
  let out = '';
  let err = '';
  proc.stderr.on('data', (d) => (err += d));
  const match = new Promise<string>((resolve, reject) => {
    proc.stdout.on('data', (d) => {
      out += d;
      const m = pattern.exec(out);
      if (m) resolve(m[1]!);
    });
    proc.on('close', (code) => reject(new Error(`${args[0]} exited ${code} before printing ${pattern}: ${err}`)));
  });
  return { proc, match };
}

async function stop(proc: ChildProcessWithoutNullStreams): Promise<void> {
  if (proc.exitCode !== null) return;
  const closed = new Promise((r) => proc.on('close', r));
  proc.kill('SIGTERM');
  await closed;
}

describe('two viewer processes on one capped store', () => {
  test('compact one at a time (the other skips, counted at /api/store) while a third process appends, and no appended line is lost', async () => {
    const folder = await newFolder();
    await writeSyntheticStore(folder, { traces: 4000, spansPerTrace: 4 });
    const base = await storeBytes(folder);
    const cap = Math.floor(base * 0.6);
    // Lines of 1500 newer traces (they start after every trace of the store: never the oldest evicted).
    const extra = await newFolder();
    const more = await writeSyntheticStore(extra, { traces: 1500, spansPerTrace: 2, batch: 2, t0: 1_800_000_000_000_000_000n, idOffset: 5_000_000 });

    const a = child([CAPPED_VIEWER, folder, String(cap), '100'], /viewer: (\S+)/);
    const b = child([CAPPED_VIEWER, folder, String(cap), '100'], /viewer: (\S+)/);
    const urls = await Promise.all([a.match, b.match]);
    const appender = child([APPENDER, join(extra, 'traces.jsonl'), join(folder, 'traces.jsonl'), '2'], /appended (\d+)/);

    // Watch the compactions' temporary files (`.traces.jsonl.compact-<pid>.tmp`): never two processes' at once.
    let watching = true;
    let mostAtOnce = 0;
    const seenPids = new Set<string>();
    const watcher = (async () => {
      while (watching) {
        const pids = new Set<string>();
        for (const name of await readdir(folder)) {
          const m = /^\.\w+\.jsonl\.compact-(\d+)\.tmp$/.exec(name);
          if (m) pids.add(m[1]!);
        }
        for (const p of pids) seenPids.add(p);
        mostAtOnce = Math.max(mostAtOnce, pids.size);
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
    // Both viewers are asked for the list all along: each request looks at the files and the cap.
    let asking = true;
    const failures: string[] = [];
    const askers = urls.map(async (url) => {
      while (asking) {
        const res = await fetch(`${url}api/traces?limit=1`);
        if (res.status !== 200) failures.push(`${url}: ${res.status} ${await res.text()}`);
        else await res.arrayBuffer();
        await new Promise((r) => setTimeout(r, 30));
      }
    });
    assert.equal(await appender.match, '1500');
    // One more round of looks after the last append, past the cap's interval.
    await new Promise((r) => setTimeout(r, 500));
    asking = false;
    await Promise.all(askers);
    watching = false;
    await watcher;
    const stats = await Promise.all(urls.map(async (url) => (await (await fetch(`${url}api/store`)).json()) as { index: IndexStats; eviction: EvictionStats }));
    await Promise.all([stop(a.proc), stop(b.proc)]);

    assert.deepEqual(failures, []);
    const runs = stats.map((s) => s.eviction.runs);
    const skipped = stats.map((s) => s.eviction.skippedLockHeld);
    const failed = stats.map((s) => s.eviction.failed);
    console.log(`# store ${base} bytes, cap ${cap}; compactions per viewer ${runs.join(' + ')}, skipped (lock held) ${skipped.join(' + ')}, failed ${failed.join(' + ')}; most compacting at once: ${mostAtOnce} (pids seen ${seenPids.size})`);
    assert.deepEqual(failed, [0, 0]);
    assert.ok(runs[0]! + runs[1]! >= 2, 'the appends took the store over its cap again');
    assert.ok(skipped[0]! + skipped[1]! >= 1, 'a viewer found the other compacting and skipped');
    assert.equal(mostAtOnce, 1, 'one compaction at a time');
    for (const st of stats) {
      if (st.eviction.skippedLockHeld > 0) assert.match(st.eviction.lastSkipReason ?? '', /\.sandtrace-compact\.lock is held/, 'a skip says who holds the lock');
    }

    // Every appended line is in the store, whole: each appended trace with both its spans.
    const whole = await loadStore(folder);
    assert.deepEqual(whole.skippedLines, { traces: 0, logs: 0, metrics: 0 });
    const spansOf = new Map<string, number>();
    for (const s of whole.spans) spansOf.set(s.traceId, (spansOf.get(s.traceId) ?? 0) + 1);
    const lost = more.traceIds.filter((id) => spansOf.get(id) !== 2);
    assert.deepEqual(lost, [], 'no appended line lost (or doubled)');
    assert.ok((await storeBytes(folder)) <= cap);
  });
});
