/**
 * Caps a store: when it is over `maxBytes`, or holds traces that started more than `maxAgeMs`
 * ago, the oldest traces (by start) are evicted. Each of the three files is rewritten without
 * their records: lines that hold only other traces are copied byte for byte, a line that also
 * holds an evicted trace is rewritten with the rest of its records (or dropped when nothing is
 * left), and metric lines whose points all come before the oldest trace kept are dropped. Lines
 * that are not the exporter's (skipped as bad) are kept as they are: they belong to no trace.
 * Under a size cap, eviction goes down to 90% of it, so the store is not rewritten on every append;
 * traces the store holds only logs of (never listed) go first there.
 *
 * Each file is replaced atomically: written to a temporary file beside it, synced, renamed over
 * it. The index is not rebuilt: the new offset of every line kept is known, so its byte ranges
 * are moved (store-index.ts `applyCompaction`).
 *
 * Requests go on while the copies are written: the index is frozen meanwhile (it reads no new
 * bytes, so every range it serves is one of the files being copied, which are not changed), and
 * only the swap (copying what was appended since, the renames, moving the ranges) holds readers
 * off. Appends made during a compaction are listed once it ends. One process compacts a store at
 * a time: the others find its lock (`.sandtrace-compact.lock`, lock-file.ts) held and skip.
 *
 * Other writers keep appending meanwhile (the FileExporter and OTLP ingest open the file for each
 * append). Before the rename, what was appended since the copy began is copied too, until the
 * size holds still; after the rename, bytes that still reached the old file (an append that
 * opened it just before) are appended to the new one, for as long as the old file keeps growing
 * (until it has been still for 100 ms, at most 2 s; readers are held off meanwhile). What remains:
 * a writer that opened the old file and writes to it later than that, or whose write is split in
 * two and straddles the rename, could be cut, and such a late line can come after
 * lines written to the new file meanwhile (lines are whole requests, so order between them does
 * not matter to the reader). A crash between the three renames (traces.jsonl is renamed first)
 * leaves some files compacted and others not: the persisted index no longer matches the renamed
 * files, so the next start rebuilds it, and the logs of a trace evicted from traces.jsonl remain
 * as a log-only trace, not listed, evicted first by the next compaction under a size cap. A crash
 * before a rename leaves its `.<file>.compact-<pid>.tmp` beside the store.
 */
import { appendFile, open, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { LockFile, LockHeldError } from '../state/lock-file.js';
import { STORE_FILES, type StoreFile } from './store-reader.js';
import type { StoreIndex } from './store-index.js';
import { headHash } from './store-lines.js';

export interface EvictionPolicy {
  /** The store's three files together are kept at or under this many bytes. */
  maxBytes?: number;
  /** Traces that started longer ago than this are evicted. */
  maxAgeMs?: number;
}

export interface EvictionStats {
  /** Compactions done, and traces evicted by them. */
  runs: number;
  evictedTraces: number;
  /** A compaction is under way (requests are answered meanwhile from the index as it was before it). */
  compacting: boolean;
  /** The store's bytes before and after the last compaction. */
  lastBytesBefore?: number;
  lastBytesAfter?: number;
  /** Bytes other writers appended during compactions, copied before the rename; and after it. */
  tailBytesCopied: number;
  lateBytesCopied: number;
  /**
   * Compactions skipped because another process (a second viewer on this store) held the store's
   * compaction lock: it is compacting, this one looks again after `minIntervalMs`.
   */
  skippedLockHeld: number;
  /** Why the last skipped compaction was skipped: the lock's holder, as the lock file names it. */
  lastSkipReason?: string;
  /**
   * Compactions whose copy was thrown away before the swap because the index started over while
   * it was made (a line it pointed at was not there), or the viewer closed: the store is left as it was.
   */
  abandoned: number;
  /** Compactions that failed: files not yet replaced are left as they were; the index is rebuilt only if one was. */
  failed: number;
  lastError?: string;
}

/** Under a size cap, evict down to this share of it. */
const LOW_WATER = 0.9;
const COPY_CHUNK = 8 * 1024 * 1024;
/**
 * The store's compaction lock (lock-file.ts), beside its files: two processes compacting one
 * store at once would each rename their copy over the other's, and lines appended meanwhile
 * would be lost with the copy renamed over.
 */
export const COMPACT_LOCK = '.sandtrace-compact.lock';

/**
 * Where the lines of a compacted file went: `map(offset, length)` gives a kept line's new offset
 * and length, undefined for a dropped one.
 */
export class LineMap {
  /** Old offsets where a run of lines copied unchanged starts, and how far it moved (new − old). */
  private readonly runStarts: number[] = [];
  private readonly runShifts: number[] = [];
  private readonly rewritten = new Map<number, [number, number] | undefined>();

  copied(oldOffset: number, newOffset: number): void {
    this.runStarts.push(oldOffset);
    this.runShifts.push(newOffset - oldOffset);
  }

  rewrote(oldOffset: number, to: [number, number] | undefined): void {
    this.rewritten.set(oldOffset, to);
  }

  map(offset: number, length: number): [number, number] | undefined {
    if (this.rewritten.has(offset)) return this.rewritten.get(offset);
    let lo = 0;
    let hi = this.runStarts.length - 1;
    let at = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1;
      if (this.runStarts[mid]! <= offset) {
        at = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    return at < 0 ? undefined : [offset + this.runShifts[at]!, length];
  }
}

/** A store file after compaction: where its lines went, and its new identity (its indexed part). */
export interface CompactedFile {
  map: LineMap;
  consumed: number;
  dev: number;
  ino: number;
  mtimeMs: number;
  head: string;
}

/** The traces to evict, oldest first, and the metric lines to drop with them. */
export function planEviction(index: StoreIndex, policy: EvictionPolicy, sizes: Record<StoreFile, number>, nowMs: number): { traces: Set<string>; metricLines: Set<number> } {
  const traces = new Set<string>();
  const metricLines = new Set<number>();
  const oldestFirst: Array<{ id: string; startMs: number }> = [];
  index.forEachTrace(BigInt(nowMs) * 1_000_000n, (_, s) => void oldestFirst.push({ id: s.traceId, startMs: s.startMs }));
  oldestFirst.reverse();
  // Each line's bytes are shared among the traces it holds.
  const holders = new Map<string, number>();
  const refs = (id: string) => index.lines(id)!;
  for (const id of [...index.logOnlyTraces(), ...oldestFirst.map((t) => t.id)]) {
    const { spanLines, logLines } = refs(id);
    for (let i = 0; i < spanLines.length; i += 2) holders.set(`t${spanLines[i]}`, (holders.get(`t${spanLines[i]}`) ?? 0) + 1);
    for (let i = 0; i < logLines.length; i += 2) holders.set(`l${logLines[i]}`, (holders.get(`l${logLines[i]}`) ?? 0) + 1);
  }
  const share = (id: string) => {
    const { spanLines, logLines } = refs(id);
    let n = 0;
    for (let i = 0; i < spanLines.length; i += 2) n += spanLines[i + 1]! / holders.get(`t${spanLines[i]}`)!;
    for (let i = 0; i < logLines.length; i += 2) n += logLines[i + 1]! / holders.get(`l${logLines[i]}`)!;
    return n;
  };
  const metrics: Array<[offset: number, length: number, lastMs: number]> = [];
  const m = index.metricLineRanges();
  for (let i = 0; i < m.length; i += 4) metrics.push([m[i]!, m[i + 1]!, m[i + 3]!]);
  metrics.sort((a, b) => a[2] - b[2]);
  let bytes = sizes['traces.jsonl'] + sizes['logs.jsonl'] + sizes['metrics.jsonl'];
  const target = policy.maxBytes === undefined ? Infinity : bytes > policy.maxBytes ? policy.maxBytes * LOW_WATER : Infinity;
  const cutoff = policy.maxAgeMs === undefined ? -Infinity : nowMs - policy.maxAgeMs;
  // Traces the store holds only logs of (not listed, cannot be opened) go first, and only for the
  // size cap (their start is unknown). Without this, their bytes alone over the cap would have
  // every listed trace evicted at each run while the store stayed over it.
  for (const id of index.logOnlyTraces()) {
    if (bytes <= target) break;
    traces.add(id);
    bytes -= share(id);
  }
  let m0 = 0;
  for (let k = 0; k < oldestFirst.length; k++) {
    const t = oldestFirst[k]!;
    if (bytes <= target && t.startMs >= cutoff) break;
    traces.add(t.id);
    bytes -= share(t.id);
    // Metric points from before the oldest trace kept are shown with no trace: dropped with them.
    const keptStart = oldestFirst[k + 1]?.startMs ?? Infinity;
    for (; m0 < metrics.length && metrics[m0]![2] < keptStart; m0++) {
      metricLines.add(metrics[m0]![0]);
      bytes -= metrics[m0]![1];
    }
  }
  return { traces, metricLines };
}

/**
 * A compaction copied but not yet swapped in: each file's indexed part rewritten to a temporary
 * file beside it. {@link swap} copies what was appended since and renames the copies over the
 * files; {@link abandon} removes them and leaves the store as it was.
 */
export interface PreparedCompaction {
  /** Copies each file's appended bytes and renames the copies over the files (short: run it with readers held off). */
  swap(stats: EvictionStats): Promise<Record<StoreFile, CompactedFile>>;
  abandon(): Promise<void>;
}

/**
 * Rewrites the store's indexed part without `evict` (trace ids) and the metric lines at
 * `dropMetrics` (offsets), to temporary files: the long part of a compaction, which readers of the
 * files (at the offsets the index holds) may run beside, since the files are not touched. Call on
 * an index that is up to date and does not change until {@link PreparedCompaction.swap} (store-index.ts `freeze`).
 */
export async function prepareCompaction(folder: string, index: StoreIndex, evict: ReadonlySet<string>, dropMetrics: ReadonlySet<number>, stopped: () => boolean = () => false): Promise<PreparedCompaction> {
  const touched: Record<StoreFile, Set<number>> = { 'traces.jsonl': new Set(), 'logs.jsonl': new Set(), 'metrics.jsonl': new Set(dropMetrics) };
  for (const id of evict) {
    const { spanLines, logLines } = index.lines(id)!;
    for (let i = 0; i < spanLines.length; i += 2) touched['traces.jsonl'].add(spanLines[i]!);
    for (let i = 0; i < logLines.length; i += 2) touched['logs.jsonl'].add(logLines[i]!);
  }
  const indexed = Object.fromEntries(STORE_FILES.map((f) => [f, index.indexedBytes(f)])) as Record<StoreFile, number>;
  const copies: FileCopy[] = [];
  const abandon = async () => {
    for (const c of copies) await c.abandon();
  };
  for (const file of STORE_FILES) {
    try {
      copies.push(await copyIndexedPart(folder, file, indexed[file], touched[file], (line) => (file === 'metrics.jsonl' ? undefined : without(file, line, evict)), stopped));
    } catch (e) {
      await abandon();
      throw new CompactionFailed(`${file}: ${(e as Error).message}`, false, { cause: e });
    }
  }
  return {
    abandon,
    swap: async (stats) => {
      const out = {} as Record<StoreFile, CompactedFile>;
      let renamed = false;
      for (const c of copies) {
        try {
          out[c.file] = await c.swap(stats, () => (renamed = true));
        } catch (e) {
          await abandon();
          throw new CompactionFailed(`${c.file}: ${(e as Error).message}`, renamed, { cause: e });
        }
      }
      return out;
    },
  };
}

/**
 * Rewrites the store without `evict` (trace ids) and the metric lines at `dropMetrics` (offsets),
 * in one go: {@link prepareCompaction}, then its swap.
 */
export async function compactStore(folder: string, index: StoreIndex, evict: ReadonlySet<string>, dropMetrics: ReadonlySet<number>, stats: EvictionStats): Promise<Record<StoreFile, CompactedFile>> {
  return (await prepareCompaction(folder, index, evict, dropMetrics)).swap(stats);
}

/**
 * A compaction that did not finish. `storeChanged` says whether a file was already replaced: if
 * not, the store is as it was and the index still describes it (a read-only folder fails this way
 * at every run, and must not cost a full re-read of the store each time).
 */
export class CompactionFailed extends Error {
  override readonly name = 'CompactionFailed';
  constructor(
    message: string,
    readonly storeChanged: boolean,
    options: { cause: unknown },
  ) {
    super(message, options);
  }
}

/** A line with the records of evicted traces taken out: the line to write, or undefined when nothing is left. */
function without(file: StoreFile, text: string, evict: ReadonlySet<string>): string | undefined {
  const json = JSON.parse(text) as Record<string, any>;
  const [resourceKey, scopeKey, itemKey] = file === 'traces.jsonl' ? ['resourceSpans', 'scopeSpans', 'spans'] : ['resourceLogs', 'scopeLogs', 'logRecords'];
  json[resourceKey] = (json[resourceKey] as Array<Record<string, any>>).filter((r) => {
    r[scopeKey] = ((r[scopeKey] ?? []) as Array<Record<string, any>>).filter((s) => {
      s[itemKey] = ((s[itemKey] ?? []) as Array<Record<string, any>>).filter((item) => !evict.has(item.traceId));
      return s[itemKey].length > 0;
    });
    return r[scopeKey].length > 0;
  });
  return json[resourceKey].length > 0 ? `${JSON.stringify(json)}\n` : undefined;
}

/** One file's compaction in progress: its indexed part copied to a temporary file. */
interface FileCopy {
  file: StoreFile;
  swap(stats: EvictionStats, renamed: () => void): Promise<CompactedFile>;
  abandon(): Promise<void>;
}

async function copyIndexedPart(folder: string, file: StoreFile, indexed: number, touched: ReadonlySet<number>, rewrite: (line: string) => string | undefined, stopped: () => boolean): Promise<FileCopy> {
  const path = join(folder, file);
  const temp = join(folder, `.${file}.compact-${process.pid}.tmp`);
  const map = new LineMap();
  let source: FileHandle;
  try {
    source = await open(path, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    const none: CompactedFile = { map, consumed: 0, dev: 0, ino: 0, mtimeMs: 0, head: '' };
    return { file, swap: async () => none, abandon: async () => undefined };
  }
  let target: FileHandle;
  try {
    target = await open(temp, 'w');
  } catch (e) {
    await source.close();
    throw e;
  }
  let done = false;
  /** Closes both files and removes the temporary one (when it was not renamed); the first error is the one reported. */
  const abandon = async () => {
    if (done) return;
    done = true;
    await target.close().catch(() => undefined);
    await unlink(temp).catch(() => undefined);
    await source.close().catch(() => undefined);
  };
  let written = 0;
  /** `stoppable`: the long copy before the swap; the swap's own copies are never stopped (a half-swapped store is a failed compaction). */
  const copy = async (from: number, to: number, stoppable = false) => {
    for (let pos = from; pos < to; ) {
      // A viewer closing waits for its compaction: the copy of a large store stops at a chunk.
      if (stoppable && stopped()) throw new Error('stopped: the viewer is closing');
      const chunk = Buffer.allocUnsafe(Math.min(COPY_CHUNK, to - pos));
      const { bytesRead } = await source.read(chunk, 0, chunk.length, pos);
      if (bytesRead === 0) throw new Error(`${file} shrank during compaction`);
      await target.write(chunk, 0, bytesRead, written);
      written += bytesRead;
      pos += bytesRead;
    }
  };
  try {
    // The indexed part: runs of untouched lines copied as they are, touched lines rewritten.
    let pos = 0;
    for (const offset of [...touched].sort((a, b) => a - b)) {
      map.copied(pos, written);
      await copy(pos, offset, true);
      const line = await lineAt(source, offset);
      const kept = rewrite(line.text);
      if (kept === undefined) map.rewrote(offset, undefined);
      else {
        map.rewrote(offset, [written, Buffer.byteLength(kept)]);
        await target.write(kept, written);
        written += Buffer.byteLength(kept);
      }
      pos = offset + line.length;
    }
    map.copied(pos, written);
    await copy(pos, indexed, true);
    // Synced now, outside the swap: the swap then syncs only the few bytes appended since.
    await target.sync();
  } catch (e) {
    await abandon();
    throw e;
  }
  const consumed = written;
  const swap = async (stats: EvictionStats, renamed: () => void): Promise<CompactedFile> => {
    try {
      // What other writers appended meanwhile, until the size holds still, in at most TAIL_ROUNDS
      // rounds (readers are held off: a writer appending without pause must not stretch the swap;
      // what it appends after the rename is carried over below); then the rename.
      let copiedTo = indexed;
      let rounds = 0;
      for (let size = (await source.stat()).size; size > copiedTo && rounds < TAIL_ROUNDS; size = (await source.stat()).size, rounds++) {
        await copy(copiedTo, size);
        stats.tailBytesCopied += size - copiedTo;
        copiedTo = size;
      }
      await target.sync();
      await target.close();
      await rename(temp, path);
      renamed();
      // An append that opened the old file just before the rename lands there: carried over.
      // Such a writer may be descheduled between its open and its write (tens of ms on a loaded
      // machine: a line was lost that way in test), so the old file is watched until it has
      // stayed the same size for LATE_QUIET_MS, at most LATE_MAX_MS.
      const watchedSince = Date.now();
      for (let quietSince = Date.now(); Date.now() - quietSince < LATE_QUIET_MS && Date.now() - watchedSince < LATE_MAX_MS; ) {
        const late = (await source.stat()).size;
        if (late > copiedTo) {
          const rest = Buffer.allocUnsafe(late - copiedTo);
          await source.read(rest, 0, rest.length, copiedTo);
          await appendFile(path, rest);
          stats.lateBytesCopied += rest.length;
          copiedTo = late;
          quietSince = Date.now();
        }
        await new Promise((r) => setTimeout(r, LATE_POLL_MS));
      }
      done = true;
      await source.close();
      const st = await stat(path);
      return { map, consumed, dev: st.dev, ino: st.ino, mtimeMs: st.mtimeMs, head: await headHash(path, consumed) };
    } catch (e) {
      await abandon();
      throw e;
    }
  };
  return { file, swap, abandon };
}

/** How long the old file must stay the same size after the rename before it is let go, in ms. */
const LATE_QUIET_MS = 100;
/** The longest the old file is watched after the rename (a writer that keeps appending to it). */
const LATE_MAX_MS = 2_000;
const LATE_POLL_MS = 10;
/** Rounds of copying other writers' appends before the rename. */
const TAIL_ROUNDS = 8;

/** The size of each store file (0 for one not written yet). */
export async function storeSizes(folder: string): Promise<Record<StoreFile, number>> {
  const sizes = {} as Record<StoreFile, number>;
  for (const f of STORE_FILES) {
    try {
      sizes[f] = (await stat(join(folder, f))).size;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      sizes[f] = 0;
    }
  }
  return sizes;
}

/** The line starting at `offset` (its text without the newline, and its length with it). */
async function lineAt(fd: FileHandle, offset: number): Promise<{ text: string; length: number }> {
  let size = 64 * 1024;
  for (;;) {
    const buf = Buffer.allocUnsafe(size);
    const { bytesRead } = await fd.read(buf, 0, size, offset);
    const nl = buf.subarray(0, bytesRead).indexOf(10);
    if (nl >= 0) return { text: buf.toString('utf8', 0, nl), length: nl + 1 };
    if (bytesRead < size) throw new Error(`no whole line at ${offset}`);
    size *= 4;
  }
}

/**
 * Keeps a store under its cap: {@link check} (after reads, after ingest, and on a timer) compacts
 * when the store is over it, at most once per `minIntervalMs`.
 *
 * @example
 * const cap = new StoreCap('.sandtrace', index, { maxBytes: 500 * 2 ** 20, maxAgeMs: 7 * 86_400_000 });
 * await cap.check();
 */
export class StoreCap {
  readonly stats: EvictionStats = { runs: 0, evictedTraces: 0, compacting: false, tailBytesCopied: 0, lateBytesCopied: 0, skippedLockHeld: 0, abandoned: 0, failed: 0 };
  private lastRun = -Infinity;
  private running: Promise<void> | undefined;
  private closed = false;

  constructor(
    private readonly folder: string,
    private readonly index: StoreIndex,
    readonly policy: EvictionPolicy,
    private readonly minIntervalMs = 10_000,
  ) {}

  get active(): boolean {
    return this.policy.maxBytes !== undefined || this.policy.maxAgeMs !== undefined;
  }

  /**
   * Compacts if the store is over its cap (and the last compaction is not too recent); shares a
   * check already running. Whether it is over is read from the index: refresh it first.
   */
  check(nowMs = Date.now()): Promise<void> {
    if (!this.active || this.closed || nowMs - this.lastRun < this.minIntervalMs || !this.over(nowMs)) return Promise.resolve();
    if (this.running === undefined) {
      this.stats.compacting = true;
      this.running = this.run(nowMs).finally(() => {
        this.running = undefined;
        this.stats.compacting = false;
      });
    }
    return this.running;
  }

  /** Whether the store, as last indexed, is over the cap: a look at the index, no file read. */
  private over(nowMs: number): boolean {
    const bytes = STORE_FILES.reduce((n, f) => n + this.index.indexedBytes(f), 0);
    if (this.policy.maxBytes !== undefined && bytes > this.policy.maxBytes) return true;
    const oldest = this.index.oldestStartMs();
    return this.policy.maxAgeMs !== undefined && oldest !== undefined && oldest < nowMs - this.policy.maxAgeMs;
  }

  /**
   * One compaction, under the store's lock; skipped (and counted) when another process holds it.
   * The lock is taken before the index is brought up to the files: a compaction another process
   * just finished has replaced them, and a plan made on the index of the files it replaced would
   * copy the wrong bytes.
   */
  private async run(nowMs: number): Promise<void> {
    let lock: LockFile;
    try {
      lock = await LockFile.acquire(join(this.folder, COMPACT_LOCK));
    } catch (e) {
      this.lastRun = nowMs;
      if (e instanceof LockHeldError) {
        this.stats.skippedLockHeld++;
        // Says who holds it: a lock that is never let go (a pid reused, another host) stops every
        // compaction, and its message tells how to clear it.
        this.stats.lastSkipReason = e.message;
      }
      else {
        // A folder this process cannot write to: no compaction could be done either; counted like one that failed.
        this.stats.failed++;
        this.stats.lastError = `${COMPACT_LOCK}: ${(e as Error).message}`;
      }
      return;
    }
    try {
      await this.compact(nowMs);
    } finally {
      await lock.release();
    }
  }

  /**
   * Plans on the index brought up to the files, copies the store without the evicted traces while
   * requests go on being answered from the index (frozen meanwhile: it reads no new bytes, so the
   * offsets it hands out stay those of the files being copied), then, with readers held off
   * (StoreIndex.exclusive), renames the copies over the files and moves the index's ranges.
   */
  private async compact(nowMs: number): Promise<void> {
    const planned = await this.index.whenCurrent(async () => {
      // Closed while waiting for the index (a long first look): close() waits for this, so nothing starts.
      if (this.closed) return undefined;
      const sizes = await storeSizes(this.folder);
      const plan = planEviction(this.index, this.policy, sizes, nowMs);
      if (plan.traces.size === 0 && plan.metricLines.size === 0) return undefined;
      return { plan, before: sizes['traces.jsonl'] + sizes['logs.jsonl'] + sizes['metrics.jsonl'], generation: this.index.freeze() };
    });
    if (planned === undefined) return;
    const { plan, before, generation } = planned;
    this.lastRun = nowMs;
    try {
      let prepared: PreparedCompaction;
      try {
        prepared = await prepareCompaction(this.folder, this.index, plan.traces, plan.metricLines, () => this.closed);
      } catch (e) {
        if (!(e instanceof CompactionFailed)) throw e;
        // Stopped by close(): the copies are removed and the store is as it was (not a failure).
        if (this.closed && !e.storeChanged) {
          this.stats.abandoned++;
          return;
        }
        this.failed(e);
        return;
      }
      await this.index.exclusive(async () => {
        // The index started over meanwhile (a line it pointed at was not there): its ranges are
        // no longer the ones the copy was planned on. The store is left as it was.
        if (!this.index.frozenAt(generation)) {
          await prepared.abandon();
          this.stats.abandoned++;
          return;
        }
        let files;
        try {
          files = await prepared.swap(this.stats);
        } catch (e) {
          if (!(e instanceof CompactionFailed)) throw e;
          this.failed(e);
          return;
        } finally {
          this.index.thaw();
        }
        await this.index.applyCompaction(plan.traces, files);
        this.stats.runs++;
        this.stats.evictedTraces += plan.traces.size;
        this.stats.lastBytesBefore = before;
        const after = await storeSizes(this.folder);
        this.stats.lastBytesAfter = after['traces.jsonl'] + after['logs.jsonl'] + after['metrics.jsonl'];
      });
    } finally {
      this.index.thaw();
    }
  }

  private failed(e: CompactionFailed): void {
    this.stats.failed++;
    this.stats.lastError = e.message;
    // The files renamed so far are compacted, the others not: the index starts over on the
    // store as it is. With none renamed, the store is untouched and the index still right.
    if (e.storeChanged) this.index.reset('inconsistent');
  }

  /**
   * Stops looking at the cap and waits for a compaction under way: one still waiting to plan does
   * not start, one copying stops at its next chunk (its copies removed, counted as abandoned), one
   * swapping finishes (a few renames). Idempotent.
   */
  async close(): Promise<void> {
    this.closed = true;
    await this.running;
  }
}
