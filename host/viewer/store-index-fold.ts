/**
 * One refresh of the store index: the lines appended since the last one, each parsed once and
 * filed under its traces (byte ranges), and the digests of the traces they changed.
 *
 * A trace first seen in this refresh is folded as its lines come (the same assembly as a
 * whole-store read, trace-assembly.ts, on light spans) and digested once no traces.jsonl line has
 * added to it for {@link SETTLE_LINES} lines, so a first read of a large store never holds every
 * span at once. A trace described before, or let go earlier in this refresh, that a new span or
 * `span started` record changes is re-read from its own lines at the end. Ordinary logs add only
 * a line range: they change nothing in a digest.
 */
import type { TraceEntry } from './store-index-file.js';
import { parseLine, readLogs, readMetrics, readSpans, Resources, textOf, BadStoreLine, type LogLine, type StoreFile, type ViewMetric, type ViewSpan } from './store-reader.js';
import { TraceAssembler } from './trace-assembly.js';
import { attributeHash, digestOf } from './trace-digest.js';

/** A trace no traces.jsonl line has added to in this many lines is digested during a read. */
const SETTLE_LINES = 64;
const NONE: never[] = [];

/** A span made light for a digest: its attributes as hashes. */
interface LightSpan extends ViewSpan {
  hashes: number[];
}

/**
 * Makes a span read for the index light, in place: only what its digest reads stays (its
 * attributes become their hashes).
 */
function light(s: ViewSpan): LightSpan {
  const h: number[] = [];
  for (const k in s.attributes) h.push(attributeHash(k), attributeHash(k, textOf(s.attributes[k]!)));
  const source = s.attributes['guest.source'];
  s.attributes = source === undefined ? {} : { 'guest.source': source };
  s.events = NONE;
  s.links = NONE;
  return Object.assign(s, { hashes: h });
}

/** Reads the lines of a trace in a file (offset, length pairs), each parsed. */
export type ReadTraceLines = (file: StoreFile, refs: readonly number[], use: (json: Record<string, any>) => void) => Promise<void>;

export class IndexFold {
  /** Store bytes and lines parsed (blank lines aside). */
  bytes = 0;
  lines = 0;
  /** Bad lines skipped, per file. */
  readonly skipped: Record<StoreFile, number> = { 'traces.jsonl': 0, 'logs.jsonl': 0, 'metrics.jsonl': 0 };
  private spanLinesRead = 0;
  private readonly resources = new Resources();
  /** Traces first seen in this refresh, not digested yet: their spans so far, and the traces.jsonl line that last added to them. */
  private readonly fresh = new Map<string, { assembler: TraceAssembler<LightSpan>; lastLine: number }>();
  private readonly reload = new Set<string>();

  /**
   * @param traces the index's traces: entries are added and their ranges and digests updated in place.
   * @param metricLines the index's metric lines (offset, length, first ms, last ms): appended to.
   */
  constructor(
    private readonly traces: Map<string, TraceEntry>,
    private readonly metricLines: number[],
  ) {}

  /** Files one complete line of `file` (its text without the newline) at `offset`, `length` bytes with it. */
  line(file: StoreFile, text: string, offset: number, length: number): void {
    // A blank line is no record (and no bad line); a line is rarely blank, so trim only when it may be.
    if (text.charCodeAt(0) !== 123 && text.trim() === '') return;
    this.bytes += length;
    this.lines++;
    try {
      const json = parseLine(text);
      if (file === 'traces.jsonl') this.spans(json, offset, length);
      else if (file === 'logs.jsonl') this.logs(json, offset, length);
      else this.metrics(json, offset, length);
    } catch (e) {
      if (!(e instanceof BadStoreLine)) throw e;
      this.skipped[file]++;
    }
  }

  /** Counts a line too long to read (store-lines.ts `MAX_LINE_BYTES`) as a bad line of `file`. */
  tooLong(file: StoreFile, length: number): void {
    this.bytes += length;
    this.lines++;
    this.skipped[file]++;
  }

  /** Digests what is left: the traces still folded, and those to re-read from their lines. */
  async finish(read: ReadTraceLines): Promise<void> {
    for (const [traceId, { assembler }] of this.fresh) setDigest(this.traces.get(traceId)!, assembler.finish(0n).spans);
    for (const traceId of this.reload) {
      const entry = this.traces.get(traceId)!;
      const assembler = new TraceAssembler<LightSpan>();
      const resources = new Resources();
      await read('traces.jsonl', entry.spanLines, (json) => {
        const spans: ViewSpan[] = [];
        readSpans(json, spans, resources, traceId);
        for (const s of spans) assembler.addSpan(light(s));
      });
      await read('logs.jsonl', entry.logLines, (json) => {
        const logs: LogLine[] = [];
        readLogs(json, logs, resources, traceId);
        for (const r of logs) if ('started' in r) assembler.addLog({ started: light(r.started), identity: r.identity });
      });
      setDigest(entry, assembler.finish(0n).spans);
    }
  }

  private spans(json: Record<string, any>, offset: number, length: number): void {
    const spans: ViewSpan[] = [];
    readSpans(json, spans, this.resources);
    for (const s of spans) {
      const entry = this.entry(s.traceId, true);
      if (entry.spanLines[entry.spanLines.length - 2] !== offset) entry.spanLines.push(offset, length);
      this.fresh.get(s.traceId)?.assembler.addSpan(light(s));
    }
    if (++this.spanLinesRead % SETTLE_LINES === 0) this.settle();
  }

  private logs(json: Record<string, any>, offset: number, length: number): void {
    const logs: LogLine[] = [];
    readLogs(json, logs, this.resources);
    for (const r of logs) {
      const traceId = 'log' in r ? r.log.traceId : r.started.traceId;
      if (traceId === undefined) continue; // shown with no trace
      const entry = this.entry(traceId, 'started' in r);
      if (entry.logLines[entry.logLines.length - 2] !== offset) entry.logLines.push(offset, length);
      if ('started' in r) this.fresh.get(traceId)?.assembler.addLog({ started: light(r.started), identity: r.identity });
    }
  }

  private metrics(json: Record<string, any>, offset: number, length: number): void {
    const points: ViewMetric[] = [];
    readMetrics(json, points);
    if (points.length === 0) return;
    let first = Infinity;
    let last = -Infinity;
    for (const p of points) {
      const ms = Number(BigInt(p.time) / 1_000_000n);
      if (ms < first) first = ms;
      if (ms > last) last = ms;
    }
    this.metricLines.push(offset, length, first, last);
  }

  /**
   * The trace's entry, made when new (and folded from then on). One described before that a
   * record changes (`changes`: spans and `span started` records do) is marked to be re-read.
   */
  private entry(traceId: string, changes: boolean): TraceEntry {
    let entry = this.traces.get(traceId);
    if (entry === undefined) {
      entry = { spanLines: [], logLines: [], digest: undefined };
      this.traces.set(traceId, entry);
      this.fresh.set(traceId, { assembler: new TraceAssembler<LightSpan>(), lastLine: this.spanLinesRead });
    } else {
      const fresh = this.fresh.get(traceId);
      if (fresh !== undefined) fresh.lastLine = this.spanLinesRead;
      else if (changes) this.reload.add(traceId);
    }
    return entry;
  }

  /** Digests and lets go the traces no line has added to for a while (a trace's spans are written close together). */
  private settle(): void {
    for (const [traceId, f] of this.fresh) {
      if (this.spanLinesRead - f.lastLine < SETTLE_LINES) continue;
      setDigest(this.traces.get(traceId)!, f.assembler.finish(0n).spans);
      this.fresh.delete(traceId);
    }
  }
}

/** A trace's digest from its assembled light spans (none: only logs so far, not listed). */
function setDigest(entry: TraceEntry, spans: LightSpan[]): void {
  entry.lowerNames = undefined;
  entry.summary = undefined;
  if (spans.length === 0) {
    entry.digest = undefined;
    return;
  }
  const digest = digestOf(spans, false);
  let n = 0;
  for (const s of spans) n += s.hashes.length;
  const all = new Float64Array(n);
  n = 0;
  for (const s of spans) for (const h of s.hashes) all[n++] = h;
  all.sort();
  const distinct: number[] = [];
  for (let i = 0; i < all.length; i++) if (i === 0 || all[i] !== all[i - 1]) distinct.push(all[i]!);
  digest.attributes = distinct;
  entry.digest = digest;
}
