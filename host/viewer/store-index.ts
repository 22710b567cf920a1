/**
 * The index of a store: where each trace's lines are, and a digest of each trace, so the viewer
 * reads each line of the store once and then, to open a trace, only that trace's lines.
 *
 * Why an index beside the files, not a database: the store stays what the exporter writes (OTLP
 * JSON lines that other tools read and other processes append to), no native package is needed,
 * and an append by anyone is picked up by reading only the bytes added since the last look.
 *
 * How it follows the files. On every refresh each file is looked at (stat): a file that grew is
 * read from where the index stopped, up to its last complete line (a line still being written,
 * without its newline yet, is left for the next look). A file that shrank, has another inode, or
 * whose first bytes changed (a hash of up to 4 KiB) was replaced: the index starts over. Each new
 * line is parsed once: its spans and logs are filed under their traces, a bad line is counted.
 *
 * What it holds, per trace: the byte ranges (offset, length) of the traces.jsonl lines that hold
 * its spans and of the logs.jsonl lines that hold its logs, and its digest; per metrics.jsonl
 * line: its range and the time of its first and last point. It is kept on disk beside the store
 * (`.sandtrace-index/index.json`, format in store-index-file.ts), so a restart reads only the
 * bytes added since.
 *
 * How a trace is described (store-index-fold.ts): a trace first seen in a refresh is folded as its
 * lines come, with the same assembly as a whole-store read (trace-assembly.ts); a trace described
 * before that a new span or `span started` record changes is re-read from its own lines. A
 * compaction (store-eviction.ts) moves the ranges of the lines it kept instead of starting over.
 *
 * A digest (trace-digest.ts) is what the list shows of a trace and what filters look at. A
 * trace with only logs so far has none and is not listed. Metric lines are found by time, since
 * a trace shows the metric points recorded while it ran. An index file that does not parse, has
 * another version, or whose body does not match its hash is counted and not used; one whose
 * files' identity no longer matches the store is counted as stale and rebuilt.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { CompactedFile } from './store-eviction.js';
import { IndexFold } from './store-index-fold.js';
import { readIndexFile, writeIndexFile, type FileState, type TraceEntry } from './store-index-file.js';
import { HEAD_BYTES, headHash, IndexInconsistent, readLinesAt, sameStart, scanLines } from './store-lines.js';
import { readLogs, readMetrics, readSpans, Resources, STORE_FILES, type Attributes, type LogLine, type StoreFile, type ViewLog, type ViewMetric, type ViewSpan } from './store-reader.js';
import { TraceAssembler } from './trace-assembly.js';
import { newestFirst, summaryOf, type TraceDigest, type TraceSummary } from './trace-digest.js';

export { INDEX_FOLDER } from './store-index-file.js';
export { IndexInconsistent } from './store-lines.js';

/** A trace as the API serves it. */
export interface TraceDetail {
  spans: ViewSpan[];
  logs: ViewLog[];
  metrics: ViewMetric[];
  resources: Attributes[];
}

export interface IndexStats {
  traces: number;
  /** Per file: bytes indexed, and lines skipped as bad. */
  files: Record<StoreFile, { indexedBytes: number; skippedLines: number }>;
  /** The index was read from `.sandtrace-index/` when the viewer started, and matched the store. */
  loadedFromDisk: boolean;
  /** Store bytes (and lines) parsed to index them, since this viewer started. */
  parsedBytes: number;
  parsedLines: number;
  /** Times the index started over, by cause. */
  rebuilds: {
    /** The persisted index did not parse, had another version, did not match its hash, or was not a regular file of sane size. */
    corruptIndex: number;
    /** The persisted index described other files (replaced, shrunk or rewritten since). */
    staleIndex: number;
    /** A store file was replaced, shrank or had its first bytes changed while the viewer ran. */
    storeReplaced: number;
    /** A line the index points at was not a line of that trace when read (or a compaction failed). */
    inconsistent: number;
  };
  /** Times the index was written to disk, and the last failure to write it. */
  persisted: number;
  persistFailed: number;
  lastPersistError?: string;
}

/** A store file that exists but cannot be read as one (a directory, a FIFO): requests fail with this message until it is a file again. */
export class StoreFileUnreadable extends Error {
  override readonly name = 'StoreFileUnreadable';
}

const emptyFile = (): FileState => ({ consumed: 0, dev: 0, ino: 0, mtimeMs: 0, head: '', skipped: 0 });

/**
 * @example
 * const index = new StoreIndex('.sandtrace');
 * await index.refresh();
 * const detail = await index.openTrace(index.list({}, now).traces[0].traceId, now);
 * await index.close();
 */
export class StoreIndex {
  private files: Record<StoreFile, FileState> = { 'traces.jsonl': emptyFile(), 'logs.jsonl': emptyFile(), 'metrics.jsonl': emptyFile() };
  private traces = new Map<string, TraceEntry>();
  private metricLines: number[] = [];
  /** Files whose head must be checked at the next refresh (after loading a persisted index). */
  private unverified = new Set<StoreFile>();
  private loaded = false;
  private changed = false;
  private lastPersist = 0;
  /** Store bytes parsed since the index was last written: what a restart would parse again. */
  private unpersisted = 0;
  private sorted: Array<[string, TraceEntry]> | undefined;
  private serviceList: string[] | undefined;
  private lock: Promise<unknown> = Promise.resolve();
  private pending: Promise<void> | undefined;
  private closed = false;
  /** Bumped each time the index starts over: a compaction planned on one generation applies only to it. */
  private generation = 0;
  /** The generation a compaction froze (see {@link freeze}). */
  private frozen: number | undefined;
  /** The first look at the files (a first index of the whole store, or what was added since the saved one) has ended. */
  private firstLookDone = false;
  /** Store bytes indexed (before and during the look under way), of the files' sizes at its start. */
  private readonly progress = { done: 0, total: 0 };
  readonly stats: IndexStats = {
    traces: 0,
    files: { 'traces.jsonl': { indexedBytes: 0, skippedLines: 0 }, 'logs.jsonl': { indexedBytes: 0, skippedLines: 0 }, 'metrics.jsonl': { indexedBytes: 0, skippedLines: 0 } },
    loadedFromDisk: false,
    parsedBytes: 0,
    parsedLines: 0,
    rebuilds: { corruptIndex: 0, staleIndex: 0, storeReplaced: 0, inconsistent: 0 },
    persisted: 0,
    persistFailed: 0,
  };

  /**
   * @param options.persist write the index beside the store (default true).
   * @param options.persistEveryMs while the store grows, the index is written when what a restart
   *   would parse again passes 16 MiB and a quarter of the store, or after this long (default 60 s);
   *   close() writes the rest.
   */
  constructor(
    readonly folder: string,
    private readonly options: { persist?: boolean; persistEveryMs?: number } = {},
  ) {}

  /** Runs `fn` alone: no refresh, open or compaction runs beside it. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn, fn);
    this.lock = run.catch(() => undefined);
    return run;
  }

  /**
   * Brings the index up to the files. Callers that arrive while a refresh runs share the next one,
   * which starts after it: an append that finished before the call is always seen.
   */
  refresh(): Promise<void> {
    if (this.pending !== undefined) return this.pending;
    const next = this.exclusive(async () => {
      if (this.pending === next) this.pending = undefined;
      try {
        await this.update();
      } catch (e) {
        // A line re-read to describe a trace was not where the index had it: another process
        // replaced the file between the look and the read (a compaction's rename). Started over.
        if (!(e instanceof IndexInconsistent)) throw e;
        this.reset('inconsistent');
        await this.update();
      } finally {
        this.firstLookDone = true;
      }
    });
    this.pending = next;
    return next;
  }

  /**
   * While the first look at the files runs (a first index of a large store takes a while): how
   * far it got, in store bytes indexed of the files' sizes; undefined once it ended. Meanwhile
   * the list, services and opens answer from what is indexed so far (see {@link openTrace}).
   */
  indexing(): { done: number; total: number } | undefined {
    return this.firstLookDone ? undefined : { ...this.progress };
  }

  /** Traces listed (that have spans); counted afresh while the first look runs. */
  listedTraces(): number {
    if (this.firstLookDone) return this.stats.traces;
    let n = 0;
    for (const e of this.traces.values()) if (e.digest !== undefined) n++;
    return n;
  }

  /** Lines of the store skipped as bad, all files. */
  skippedLines(): number {
    return STORE_FILES.reduce((n, f) => n + this.files[f].skipped, 0);
  }

  /**
   * Calls `visit` for each trace that has spans, newest first, with its digest, its summary at
   * `now` (kept between calls unless the trace is running) and its lower-cased span names (made
   * when first asked for), until `visit` returns false.
   */
  forEachTrace(now: bigint, visit: (digest: TraceDigest, summary: TraceSummary, lowerNames: () => string[]) => boolean | void): void {
    for (const [id, e] of this.newestFirst()) {
      const d = e.digest!;
      const summary = d.running > 0 || e.summary === undefined ? (e.summary = summaryOf(id, d, now)) : e.summary;
      if (visit(d, summary, () => (e.lowerNames ??= d.names.map((n) => n.toLowerCase()))) === false) return;
    }
  }

  /** The start (unix ms) of the oldest trace listed. */
  oldestStartMs(): number | undefined {
    const oldest = this.newestFirst().at(-1)?.[1].digest;
    return oldest === undefined ? undefined : Number(BigInt(oldest.start) / 1_000_000n);
  }

  private newestFirst(): Array<[string, TraceEntry]> {
    // While the first look runs, traces are added under the cache: sorted again at each ask.
    if (!this.firstLookDone) this.sorted = undefined;
    return (this.sorted ??= [...this.traces].filter(([, e]) => e.digest !== undefined).sort((a, b) => newestFirst(a[1].digest!, b[1].digest!)));
  }

  /** Service names of the store's spans, sorted. */
  services(): string[] {
    if (this.serviceList === undefined || !this.firstLookDone) {
      const all = new Set<string>();
      for (const e of this.traces.values()) for (const s of e.digest?.services ?? []) all.add(s);
      this.serviceList = [...all].sort();
    }
    return this.serviceList;
  }

  summary(traceId: string, now: bigint): TraceSummary | undefined {
    const d = this.traces.get(traceId)?.digest;
    return d === undefined ? undefined : summaryOf(traceId, d, now);
  }

  /**
   * Traces the store holds only logs of (not listed, not openable), in the order their first log
   * line was written: what a size cap evicts first.
   */
  logOnlyTraces(): string[] {
    const out: Array<[string, number]> = [];
    for (const [id, e] of this.traces) if (e.digest === undefined) out.push([id, e.logLines[0] ?? 0]);
    return out.sort((a, b) => a[1] - b[1]).map(([id]) => id);
  }

  /** Where each trace's lines are (for compaction): offset, length pairs per file. */
  lines(traceId: string): { spanLines: readonly number[]; logLines: readonly number[] } | undefined {
    return this.traces.get(traceId);
  }

  /** The metrics.jsonl lines: offset, length, first and last point time (unix ms) for each. */
  metricLineRanges(): readonly number[] {
    return this.metricLines;
  }

  /** Bytes indexed per file. */
  indexedBytes(file: StoreFile): number {
    return this.files[file].consumed;
  }

  /**
   * One trace, read from its lines only: its spans assembled as a whole-store read would (running
   * spans ending at `now`), its logs, the metric points recorded while it ran, and its resources.
   * Undefined when the store holds no span of it.
   */
  async openTrace(traceId: string, now: bigint): Promise<TraceDetail | undefined> {
    if (!this.firstLookDone && this.traces.get(traceId)?.digest !== undefined) {
      // During the first look, a trace already described is read at once from the lines found so
      // far (whole lines, which the look does not change); one that does not read right waits.
      try {
        return await this.read(traceId, now);
      } catch (e) {
        if (!(e instanceof IndexInconsistent)) throw e;
      }
    }
    return this.exclusive(async () => {
      try {
        return await this.read(traceId, now);
      } catch (e) {
        if (!(e instanceof IndexInconsistent)) throw e;
        this.reset('inconsistent');
        await this.update();
        return this.read(traceId, now);
      }
    });
  }

  /** Runs `fn` alone, on an index brought up to the files first (compaction plans on it). */
  whenCurrent<T>(fn: () => Promise<T>): Promise<T> {
    return this.exclusive(async () => {
      await this.update();
      return fn();
    });
  }

  /**
   * After store-eviction.ts rewrote the files (planned under {@link whenCurrent}, the index frozen
   * since, called under {@link exclusive}): the evicted traces are
   * forgotten and every kept line's byte range moved to where the rewrite put it, so nothing is
   * parsed again. Bytes appended during the rewrite are read at the next refresh.
   */
  async applyCompaction(evicted: ReadonlySet<string>, files: Record<StoreFile, CompactedFile>): Promise<void> {
    const remap = (refs: number[], file: StoreFile): number[] => {
      const out: number[] = [];
      for (let i = 0; i < refs.length; i += 2) {
        const to = files[file].map.map(refs[i]!, refs[i + 1]!);
        if (to === undefined) throw new IndexInconsistent(`a kept line of ${file} at ${refs[i]} was dropped`);
        out.push(to[0], to[1]);
      }
      return out;
    };
    try {
      for (const id of evicted) this.traces.delete(id);
      for (const e of this.traces.values()) {
        e.spanLines = remap(e.spanLines, 'traces.jsonl');
        e.logLines = remap(e.logLines, 'logs.jsonl');
      }
    } catch (e) {
      if (!(e instanceof IndexInconsistent)) throw e;
      this.reset('inconsistent');
      return;
    }
    const metrics: number[] = [];
    for (let i = 0; i < this.metricLines.length; i += 4) {
      const to = files['metrics.jsonl'].map.map(this.metricLines[i]!, this.metricLines[i + 1]!);
      if (to !== undefined) metrics.push(to[0], to[1], this.metricLines[i + 2]!, this.metricLines[i + 3]!);
    }
    this.metricLines = metrics;
    for (const f of STORE_FILES) {
      const { consumed, dev, ino, mtimeMs, head } = files[f];
      this.files[f] = { consumed, dev, ino, mtimeMs, head, skipped: this.files[f].skipped };
    }
    this.touched();
    this.updateStats();
    if (this.options.persist !== false) await this.persist();
  }

  /**
   * While a compaction copies the store (store-eviction.ts), the index reads no new bytes: the
   * ranges it serves stay those of the files being copied, which the compaction moves when it
   * swaps the copies in. Appends made meanwhile are read at the first refresh after {@link thaw}.
   * Returns the generation frozen; a reset (the index starting over) ends the freeze.
   */
  freeze(): number {
    this.frozen = this.generation;
    return this.generation;
  }

  /** Whether the index is still the one frozen as `generation` (it has not started over). */
  frozenAt(generation: number): boolean {
    return this.frozen === generation && this.generation === generation;
  }

  thaw(): void {
    this.frozen = undefined;
  }

  /** Forgets everything: the next refresh reads the store from its start (after compaction, or a replaced file). */
  reset(cause: keyof IndexStats['rebuilds']): void {
    this.stats.rebuilds[cause]++;
    this.generation++;
    this.files = { 'traces.jsonl': emptyFile(), 'logs.jsonl': emptyFile(), 'metrics.jsonl': emptyFile() };
    this.traces = new Map();
    this.metricLines = [];
    this.unverified.clear();
    this.touched();
  }

  /** Writes the index if it changed since it was last written. */
  async close(): Promise<void> {
    if (this.closed) return;
    // A first read of a large store in progress stops at the next chunk; what it read is kept.
    this.closed = true;
    await this.exclusive(async () => {
      if (this.changed) await this.persist();
    });
  }

  private touched(): void {
    this.changed = true;
    this.sorted = undefined;
    this.serviceList = undefined;
  }

  private async read(traceId: string, now: bigint): Promise<TraceDetail | undefined> {
    const entry = this.traces.get(traceId);
    if (entry?.digest === undefined) return undefined;
    const resources = new Resources();
    const assembler = new TraceAssembler();
    await this.eachLine('traces.jsonl', entry.spanLines, (json) => {
      const spans: ViewSpan[] = [];
      readSpans(json, spans, resources, traceId);
      if (spans.length === 0) throw new IndexInconsistent(`a traces.jsonl line holds no span of ${traceId}`);
      for (const s of spans) assembler.addSpan(s);
    });
    await this.eachLine('logs.jsonl', entry.logLines, (json) => {
      const logs: LogLine[] = [];
      readLogs(json, logs, resources, traceId);
      if (logs.length === 0) throw new IndexInconsistent(`a logs.jsonl line holds no log of ${traceId}`);
      for (const l of logs) assembler.addLog(l);
    });
    const { spans, logs } = assembler.finish(now);
    // A digest comes only from spans (or `span started` records): none on its lines means the
    // index lists a trace the store does not hold (a persisted index not made from this store).
    if (spans.length === 0) throw new IndexInconsistent(`${traceId} is listed but its lines hold none of its spans`);
    // Metric series are aggregated across executions: show those recorded during the trace.
    let start = BigInt(spans[0]!.start);
    let end = BigInt(spans[0]!.end);
    for (const s of spans) {
      if (BigInt(s.start) < start) start = BigInt(s.start);
      if (BigInt(s.end) > end) end = BigInt(s.end);
    }
    const fromMs = Number(start / 1_000_000n);
    const toMs = Number(end / 1_000_000n) + 1;
    const wanted: number[] = [];
    for (let i = 0; i < this.metricLines.length; i += 4) {
      if (this.metricLines[i + 3]! >= fromMs && this.metricLines[i + 2]! <= toMs) wanted.push(this.metricLines[i]!, this.metricLines[i + 1]!);
    }
    const metrics: ViewMetric[] = [];
    await this.eachLine('metrics.jsonl', wanted, (json) => {
      const points: ViewMetric[] = [];
      readMetrics(json, points);
      for (const p of points) if (BigInt(p.time) >= start && BigInt(p.time) <= end) metrics.push(p);
    });
    // Each resource once, in the order its spans come (`span.resource` was numbered as they were read).
    return { spans, logs, metrics, resources: resources.list };
  }

  /** Reads a trace's lines of `file` (see store-lines.ts). */
  private eachLine(file: StoreFile, refs: readonly number[], use: (json: Record<string, any>) => void): Promise<void> {
    return readLinesAt(join(this.folder, file), refs, use);
  }

  /** One refresh (under the lock). */
  private async update(): Promise<void> {
    if (!this.loaded) {
      this.loaded = true;
      if (this.options.persist !== false) await this.load();
    }
    if (this.frozen === this.generation) return;
    let sizes = await this.check();
    if (sizes === undefined) sizes = (await this.check())!;
    this.progress.total = STORE_FILES.reduce((n, f) => n + sizes[f], 0);
    this.progress.done = STORE_FILES.reduce((n, f) => n + this.files[f].consumed, 0);
    const fold = new IndexFold(this.traces, this.metricLines);
    for (const file of STORE_FILES) {
      const size = sizes[file];
      if (size > this.files[file].consumed) await this.scan(file, size, fold);
    }
    await fold.finish((file, refs, use) => this.eachLine(file, refs, use));
    this.stats.parsedBytes += fold.bytes;
    this.stats.parsedLines += fold.lines;
    for (const f of STORE_FILES) this.files[f].skipped += fold.skipped[f];
    if (fold.lines > 0) this.touched();
    this.updateStats();
    this.unpersisted += fold.bytes;
    if (fold.bytes === 0 || this.options.persist === false) return;
    const indexed = STORE_FILES.reduce((n, f) => n + this.files[f].consumed, 0);
    const worthIt = this.unpersisted > 16 * 1024 * 1024 && this.unpersisted > indexed / 4;
    if (worthIt || Date.now() - this.lastPersist > (this.options.persistEveryMs ?? 60_000)) await this.persist();
  }

  /**
   * Looks at the files: their sizes, or undefined after starting over because one was replaced
   * (the caller looks again).
   */
  private async check(): Promise<Record<StoreFile, number> | undefined> {
    const sizes = {} as Record<StoreFile, number>;
    for (const file of STORE_FILES) {
      const state = this.files[file];
      let st;
      try {
        st = await stat(join(this.folder, file));
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
        st = undefined;
      }
      if (st === undefined) {
        if (state.consumed > 0) return this.startOver(file);
        sizes[file] = 0;
        continue;
      }
      // A directory or FIFO in a store file's place cannot be read as lines: said as such (and the
      // index kept, in case the file comes back), not as the read's EISDIR, nor a hang on a FIFO.
      if (!st.isFile()) throw new StoreFileUnreadable(`${file} is not a file (${st.isDirectory() ? 'a directory' : 'not a regular file'}) in ${this.folder}`);
      if (state.consumed === 0 && state.ino === 0) {
        Object.assign(state, { dev: st.dev, ino: st.ino });
      } else if (st.ino !== state.ino || st.dev !== state.dev || st.size < state.consumed) {
        return this.startOver(file);
      } else if (st.size !== state.consumed || st.mtimeMs !== state.mtimeMs || this.unverified.has(file)) {
        // It grew, or was written to: still the same file if its first bytes, and the newline that
        // ends what was indexed, are where they were.
        if (!(await sameStart(join(this.folder, file), state.consumed, state.head))) return this.startOver(file);
      }
      this.unverified.delete(file);
      state.mtimeMs = st.mtimeMs;
      sizes[file] = st.size;
    }
    return sizes;
  }

  private startOver(file: StoreFile): undefined {
    this.reset(this.unverified.has(file) ? 'staleIndex' : 'storeReplaced');
    return undefined;
  }

  /** Reads `file` from where the index stopped to its last complete line before `size`. */
  private async scan(file: StoreFile, size: number, fold: IndexFold): Promise<void> {
    const state = this.files[file];
    const from = state.consumed;
    const path = join(this.folder, file);
    const progress = this.progress;
    state.consumed = await scanLines(
      path,
      from,
      size,
      (text, offset, length) => {
        progress.done += length;
        fold.line(file, text, offset, length);
      },
      (_, length) => {
        progress.done += length;
        fold.tooLong(file, length);
      },
      () => this.closed,
    );
    // The head hash covers the first min(consumed, 4 KiB) bytes: redone while that grows.
    if (from < HEAD_BYTES && state.consumed !== from) state.head = await headHash(path, state.consumed);
  }

  private updateStats(): void {
    let listed = 0;
    for (const e of this.traces.values()) if (e.digest !== undefined) listed++;
    this.stats.traces = listed;
    for (const f of STORE_FILES) this.stats.files[f] = { indexedBytes: this.files[f].consumed, skippedLines: this.files[f].skipped };
  }

  /** Writes the index beside the store (see store-index-file.ts); a failure is counted, not thrown. */
  private async persist(): Promise<void> {
    if (STORE_FILES.every((f) => this.files[f].consumed === 0)) return;
    this.changed = false;
    this.lastPersist = Date.now();
    this.unpersisted = 0;
    try {
      await writeIndexFile(this.folder, { files: this.files, traces: this.traces, metrics: this.metricLines });
      this.stats.persisted++;
    } catch (e) {
      // A read-only or full disk: the viewer works without a persisted index, and says so.
      this.changed = true;
      this.stats.persistFailed++;
      this.stats.lastPersistError = (e as Error).message;
    }
  }

  /** Reads the persisted index, if any; one that is not exactly what {@link persist} writes is counted and left. */
  private async load(): Promise<void> {
    const saved = await readIndexFile(this.folder);
    if (saved === 'none') return;
    if (saved === 'corrupt') {
      this.stats.rebuilds.corruptIndex++;
      return;
    }
    this.files = saved.files;
    this.traces = saved.traces;
    this.metricLines = saved.metrics;
    // Its files' identity is checked against the store at the first look (check): stale if it differs.
    for (const f of STORE_FILES) if (this.files[f].consumed > 0 || this.files[f].ino !== 0) this.unverified.add(f);
    this.stats.loadedFromDisk = true;
    this.lastPersist = Date.now();
    this.touched();
    this.changed = false;
  }
}
