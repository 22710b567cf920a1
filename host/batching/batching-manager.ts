/**
 * Batches completed records between the pipeline collector and an exporter: separate queues for
 * spans and logs, metric points aggregated per series, a memory bound, and explicit flushing.
 *
 * A batch is exported as soon as it is full, on the interval otherwise, and on shutdown within
 * a deadline; never more than `maxConcurrentExports` at once. Every item ends in exactly one of
 * exported, rejected by the collector (OTLP partial success) or dropped (counted with why), and
 * `produced = exported + rejected + dropped + queued + in flight` holds at all times.
 *
 * Admission and eviction are O(1) amortized: one queue per kind and priority, each a ring; a
 * record that needs room evicts the newest records of lower priority from the tails.
 */
import type { ExportFailureReason, ExportResult, Exporter, RecordEncoder } from '../export/exporter.js';
import { ConfigError } from '../export/exporter-config.js';
import { MetricAggregator, type AggregatorOptions, type MetricSeries } from '../export/metric-aggregation.js';
import type { TelemetryHandlers } from '../pipeline/pipeline-collector.js';
import type { LogRecord, MetricPoint, SpanRecord } from '../pipeline/telemetry-records.js';
import type { Value, Values } from '../../shared/records.js';
import { QueuedRecord, RecordChunks } from './record-chunks.js';

export interface BatchingConfig {
  /** Records per export (default 512). */
  maxBatchSize?: number;
  /** Export what is queued at least this often, in ms (default 5,000). */
  flushIntervalMs?: number;
  /**
   * Memory held at most, in bytes (default 16 MiB): queued records, batches in flight and their
   * encoded bodies (each record is charged its heap size plus twice its encoded size when it is
   * admitted), and metric series. Spans and logs for an exporter that encodes them as they are
   * queued (`OtlpHttpExporter` with protobuf) are charged their bytes exactly: the chunks that
   * hold them, whole, and twice their size for the request body and its gzip copy.
   */
  maxMemoryBytes?: number;
  /**
   * What a record that finds no room does:
   * - `'drop'` (default): room is made by dropping the newest less important queued records
   *   (trace/debug/info logs, then ordinary spans and warnings) before anything that ended in
   *   error; if there is none, the incoming record is dropped. Counted as `overflow`.
   * - `'block'`: nothing queued is evicted. A producer that must not lose records awaits
   *   `whenRoom()` before producing; a record added while there is no room is refused (counted).
   */
  whenFull?: 'drop' | 'block';
  /** With `whenFull: 'drop'`: false drops the incoming record instead of evicting (default true). */
  dropOnOverflow?: boolean;
  /** How long `whenRoom()` waits at most, in ms (default 10,000). */
  blockTimeoutMs?: number;
  /** The interval exports a queue only when it holds at least this many records (default 1). */
  minBatchSize?: number;
  /**
   * Exports in flight at most (default 4, the exporter's sockets per host). Each export waits a
   * round trip to the collector; with fewer in flight, a burst is exported at a few batches per
   * round trip however idle the host is.
   */
  maxConcurrentExports?: number;
  /** How long shutdown() waits for the last exports, in ms (default 10,000). */
  shutdownTimeoutMs?: number;
  metrics?: AggregatorOptions;
  /**
   * Per kind, what OpenTelemetry's batch processors and metric reader configure (defaults: the
   * environment's OTEL_BSP_*, OTEL_BLRP_* and OTEL_METRIC_EXPORT_INTERVAL, else `maxBatchSize`
   * and `flushIntervalMs` above). `maxQueueSize` caps the records queued, as those processors do,
   * on top of the memory bound (default: no cap but the bound).
   */
  spans?: KindSettings;
  logs?: KindSettings;
  /** How often metric series are exported, in ms. */
  metricsIntervalMs?: number;
}

/** A batch processor's settings for one kind of record. */
export interface KindSettings {
  maxBatchSize?: number;
  flushIntervalMs?: number;
  maxQueueSize?: number;
}

/** The settings OpenTelemetry's environment variables give a kind (undefined where unset); a bad value is a ConfigError. */
function kindFromEnv(env: NodeJS.ProcessEnv, prefix: 'OTEL_BSP' | 'OTEL_BLRP'): KindSettings {
  const out: KindSettings = {};
  const batch = positiveInt(env, `${prefix}_MAX_EXPORT_BATCH_SIZE`);
  const delay = positiveInt(env, `${prefix}_SCHEDULE_DELAY`);
  const queue = positiveInt(env, `${prefix}_MAX_QUEUE_SIZE`);
  if (batch !== undefined) out.maxBatchSize = batch;
  if (delay !== undefined) out.flushIntervalMs = delay;
  if (queue !== undefined) out.maxQueueSize = queue;
  return out;
}

function positiveInt(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const text = env[name];
  if (text === undefined || text === '') return undefined;
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n <= 0) throw new ConfigError(name, text, 'a positive integer');
  return n;
}

export type RecordKind = 'spans' | 'logs' | 'metrics';
const KINDS: RecordKind[] = ['spans', 'logs', 'metrics'];

/**
 * Why items were lost: `overflow` (no room), `tooLarge` (one record larger than the whole bound,
 * or than the exporter's request cap), `shutdown` (queued or in flight at the shutdown deadline),
 * `retriesExhausted`, `nonRetryable` (a status such as 400), `failed` (an exporter that threw or
 * rejected, or any other failure).
 */
export type DropReason = 'overflow' | 'tooLarge' | 'shutdown' | 'retriesExhausted' | 'nonRetryable' | 'failed';
const DROP_REASONS: DropReason[] = ['overflow', 'tooLarge', 'shutdown', 'retriesExhausted', 'nonRetryable', 'failed'];

export interface FlushEvent {
  kind: RecordKind;
  items: number;
  result: ExportResult;
}

export interface ExportFailure {
  at: number;
  kind: RecordKind;
  /** `rejected`: the collector accepted the request but rejected items (OTLP partial success). */
  reason: DropReason | 'rejected';
  items: number;
  /** HTTP status, when there was an answer. */
  status?: number;
  /** The collector's message, or the connection error. */
  message: string;
}

export interface BatchingStats {
  queued: { spans: number; logs: number; metricSeries: number };
  /** Spans and logs offered; for metrics, series intervals (a series with points since its last export). */
  produced: Record<RecordKind, number>;
  /** Records admitted (metrics: points). */
  accepted: Record<RecordKind, number>;
  /** Accepted by the collector (metrics: series). */
  exported: Record<RecordKind, number>;
  /** Rejected by the collector in a partial success (metrics: series, as the collector counted data points). */
  rejected: Record<RecordKind, number>;
  /** Lost, per kind and why (metrics: series). */
  dropped: Record<RecordKind, Record<DropReason, number>>;
  /** Metric points refused before they reached a series: no room for a new series, or after shutdown. */
  droppedPoints: { overflow: number; shutdown: number };
  /** Items in exports under way, per kind. */
  inFlightItems: Record<RecordKind, number>;
  memoryBytes: number;
  maxMemoryBytes: number;
  /** Exports under way. */
  inFlight: number;
  /** Errors thrown by the onFlush callback (caught). */
  callbackErrors: number;
  lastFlush?: { at: number; kind: RecordKind; items: number; code: ExportResult['code'] };
  /** The latest export that lost or had items rejected, with the reason. */
  lastFailure?: ExportFailure;
}

/** Priority when making room: 0 is dropped first. */
function spanPriority(s: SpanRecord): number {
  return s.status.code === 'error' ? 2 : 1;
}
function logPriority(l: LogRecord): number {
  return l.level === 'error' ? 2 : l.level === 'warn' ? 1 : 0;
}

/**
 * What a value costs: its heap size, plus twice its encoded size (the protobuf body and its gzip
 * copy, held while the batch is in flight). Strings are counted at two bytes per character.
 */
function valueBytes(v: Value): number {
  switch (typeof v) {
    case 'string':
      return 32 + v.length * 4;
    case 'object':
      if (v instanceof Uint8Array) return 128 + v.byteLength * 3;
      if ('debug' in v) return 64 + v.debug.length * 4;
      if ('error' in v) {
        let n = 32;
        for (let e: typeof v.error | undefined = v.error; e !== undefined; e = e.source) n += 64 + e.message.length * 4;
        return n;
      }
      return 32;
    default:
      return 32;
  }
}

function valuesSize(values: Values): number {
  let n = 0;
  for (let i = 0; i < values.length; i++) {
    const kv = values[i]!;
    n += 48 + kv[0].length * 4 + valueBytes(kv[1]);
  }
  return n;
}

/** What a span costs against the bound: heap size plus twice its encoded size. */
export function estimateSpanBytes(s: SpanRecord): number {
  let n = 520 + s.name.length * 4 + valuesSize(s.attributes) + s.links.length * 176;
  if (s.status.message !== undefined) n += s.status.message.length * 4;
  for (let i = 0; i < s.events.length; i++) {
    const e = s.events[i]!;
    n += 176 + e.name.length * 4 + valuesSize(e.attributes);
  }
  return n;
}
export function estimateLogBytes(l: LogRecord): number {
  return 400 + l.body.length * 4 + valuesSize(l.attributes);
}

/**
 * What a metric series costs while it is held: its slot, its series object and its key (the
 * name and attributes again, as text), plus twice its encoded size while an export of it is in
 * flight (charged then, see `start`); a histogram also holds its bucket counts, and each copy
 * handed to the exporter its boundaries.
 */
export function estimateSeriesBytes(p: MetricPoint, buckets: number): number {
  const attrs = valuesSize(p.attributes);
  const n = 360 + p.name.length * 6 + attrs + (attrs >> 1);
  return p.instrument === 'histogram' ? n + 64 + buckets * 32 : n;
}

/**
 * What a record queued as bytes costs besides its bytes: its QueuedRecord, its ring slots and its
 * place in a batch's list; and twice its bytes, for the request body and its gzip copy.
 */
const QUEUED_RECORD_BYTES = 96;
const encodedCharge = (len: number): number => QUEUED_RECORD_BYTES + 2 * len;

/**
 * The size of the chunks queued records' bytes are packed into, for a memory bound: a 64th of it
 * (a chunk is charged whole, so it must stay small against the bound), from 256 B to 64 KiB.
 */
export function chunkBytesFor(maxMemoryBytes: number): number {
  return Math.min(64 << 10, Math.max(256, Math.floor(maxMemoryBytes / 64)));
}

/** A FIFO of records with their sizes and arrival numbers: O(1) push, shift and pop. */
class Ring<T> {
  private items: Array<T | undefined> = new Array(16);
  private sizes: number[] = new Array(16).fill(0);
  private seqs: number[] = new Array(16).fill(0);
  private head = 0;
  length = 0;

  push(item: T, bytes: number, seq: number): void {
    if (this.length === this.items.length) this.grow();
    const i = (this.head + this.length) & (this.items.length - 1);
    this.items[i] = item;
    this.sizes[i] = bytes;
    this.seqs[i] = seq;
    this.length++;
  }
  headSeq(): number {
    return this.length === 0 ? Infinity : this.seqs[this.head]!;
  }
  headBytes(): number {
    return this.sizes[this.head]!;
  }
  shift(): T {
    const item = this.items[this.head]!;
    this.items[this.head] = undefined;
    this.head = (this.head + 1) & (this.items.length - 1);
    this.length--;
    return item;
  }
  tailBytes(): number {
    return this.sizes[(this.head + this.length - 1) & (this.items.length - 1)]!;
  }
  pop(): T {
    const i = (this.head + this.length - 1) & (this.items.length - 1);
    const item = this.items[i]!;
    this.items[i] = undefined;
    this.length--;
    return item;
  }
  clear(): void {
    this.items = new Array(16);
    this.sizes = new Array(16).fill(0);
    this.seqs = new Array(16).fill(0);
    this.head = 0;
    this.length = 0;
  }
  private grow(): void {
    const n = this.items.length;
    const items: Array<T | undefined> = new Array(n * 2);
    const sizes: number[] = new Array(n * 2).fill(0);
    const seqs: number[] = new Array(n * 2).fill(0);
    for (let k = 0; k < this.length; k++) {
      const i = (this.head + k) & (n - 1);
      items[k] = this.items[i];
      sizes[k] = this.sizes[i]!;
      seqs[k] = this.seqs[i]!;
    }
    this.items = items;
    this.sizes = sizes;
    this.seqs = seqs;
    this.head = 0;
  }
}

/** One export under way. */
interface Batch {
  kind: RecordKind;
  items: number;
  bytes: number;
  settled: boolean;
  /** Records queued as bytes: let go of when the batch is done. */
  encoded: QueuedRecord[] | undefined;
}

interface RoomWaiter {
  bytes: number;
  resolve: (room: boolean) => void;
  timer: NodeJS.Timeout | undefined;
}

type Counts = Record<DropReason, number>;
const zeroCounts = (): Counts => ({ overflow: 0, tooLarge: 0, shutdown: 0, retriesExhausted: 0, nonRetryable: 0, failed: 0 });
const GRACE_MS = 20;

/**
 * @example
 * const exporter = new OtlpHttpExporter({ endpoint });
 * const batching = new BatchingManager(exporter, { maxBatchSize: 256 });
 * const collector = new PipelineCollector({ handlers: batching.handlers() });
 * // … run guests …
 * await batching.shutdown();
 */
export class BatchingManager {
  private readonly cfg: Required<Omit<BatchingConfig, 'metrics' | 'spans' | 'logs' | 'metricsIntervalMs'>>;
  /** Per kind: records per export, ms between interval flushes, records queued at most. */
  private readonly batchSize: Record<'spans' | 'logs', number>;
  private readonly maxQueue: Record<'spans' | 'logs', number>;
  private readonly timers: NodeJS.Timeout[];
  /** Per kind, one ring per priority (0 dropped first). */
  private readonly spans: Array<Ring<SpanRecord | QueuedRecord>> = [new Ring(), new Ring(), new Ring()];
  private readonly logs: Array<Ring<LogRecord | QueuedRecord>> = [new Ring(), new Ring(), new Ring()];
  /** The exporter's own encodings, when it has them: records of that kind are then queued as bytes. */
  private readonly spanEncoder: RecordEncoder<SpanRecord> | undefined;
  private readonly logEncoder: RecordEncoder<LogRecord> | undefined;
  /** Per kind, the chunks its records' bytes are packed into. */
  private readonly chunks: Record<'spans' | 'logs', RecordChunks>;
  private queuedSpans = 0;
  private queuedLogs = 0;
  private seq = 0;
  private readonly aggregator: MetricAggregator;
  private readonly batches = new Set<Batch>();
  private readonly waiting: RecordKind[] = [];
  private settleWaiters: Array<() => void> = [];
  private roomWaiters: RoomWaiter[] = [];
  /** Bytes charged for queued records and batches in flight. */
  private memory = 0;
  private closing: Promise<void> | undefined;
  /** Set when shutdown gave up on what was left: nothing more is started. */
  private stopped = false;
  private readonly stats: BatchingStats;

  constructor(
    private readonly exporter: Exporter,
    config: BatchingConfig = {},
    private readonly onFlush?: (event: FlushEvent) => void,
    env: NodeJS.ProcessEnv = process.env,
  ) {
    this.cfg = {
      maxBatchSize: Math.max(1, config.maxBatchSize ?? 512),
      flushIntervalMs: config.flushIntervalMs ?? 5000,
      maxMemoryBytes: config.maxMemoryBytes ?? 16 << 20,
      whenFull: config.whenFull ?? 'drop',
      dropOnOverflow: config.dropOnOverflow ?? true,
      blockTimeoutMs: config.blockTimeoutMs ?? 10_000,
      minBatchSize: config.minBatchSize ?? 1,
      maxConcurrentExports: Math.max(1, config.maxConcurrentExports ?? 4),
      shutdownTimeoutMs: config.shutdownTimeoutMs ?? 10_000,
    };
    this.aggregator = new MetricAggregator(config.metrics);
    this.spanEncoder = exporter.spanEncoder?.();
    this.logEncoder = exporter.logEncoder?.();
    const chunkBytes = chunkBytesFor(this.cfg.maxMemoryBytes);
    this.chunks = { spans: new RecordChunks(chunkBytes), logs: new RecordChunks(chunkBytes) };
    const perKind = <T>(make: () => T): Record<RecordKind, T> => ({ spans: make(), logs: make(), metrics: make() });
    this.stats = {
      queued: { spans: 0, logs: 0, metricSeries: 0 },
      produced: perKind(() => 0),
      accepted: perKind(() => 0),
      exported: perKind(() => 0),
      rejected: perKind(() => 0),
      dropped: perKind(zeroCounts),
      droppedPoints: { overflow: 0, shutdown: 0 },
      inFlightItems: perKind(() => 0),
      memoryBytes: 0,
      maxMemoryBytes: this.cfg.maxMemoryBytes,
      inFlight: 0,
      callbackErrors: 0,
    };
    // Code first, then OpenTelemetry's variables, then the settings for every kind.
    const spans = { ...kindFromEnv(env, 'OTEL_BSP'), ...config.spans };
    const logs = { ...kindFromEnv(env, 'OTEL_BLRP'), ...config.logs };
    this.batchSize = { spans: Math.max(1, spans.maxBatchSize ?? this.cfg.maxBatchSize), logs: Math.max(1, logs.maxBatchSize ?? this.cfg.maxBatchSize) };
    this.maxQueue = { spans: spans.maxQueueSize ?? Infinity, logs: logs.maxQueueSize ?? Infinity };
    const interval = (kind: RecordKind, ms: number) => {
      const t = setInterval(() => this.onInterval(kind), ms);
      t.unref(); // a pending flush never keeps the process alive; shutdown() flushes
      return t;
    };
    this.timers = [
      interval('spans', spans.flushIntervalMs ?? this.cfg.flushIntervalMs),
      interval('logs', logs.flushIntervalMs ?? this.cfg.flushIntervalMs),
      interval('metrics', config.metricsIntervalMs ?? positiveInt(env, 'OTEL_METRIC_EXPORT_INTERVAL') ?? this.cfg.flushIntervalMs),
    ];
  }

  /** Handlers for a PipelineCollector that feed this manager. */
  handlers(): TelemetryHandlers {
    return { onSpan: (s) => this.addSpan(s), onLog: (l) => this.addLog(l), onMetric: (m) => this.addMetric(m) };
  }

  /** Queues a span; false when it was dropped (counted). */
  addSpan(span: SpanRecord): boolean {
    this.stats.produced.spans++;
    if (this.closing !== undefined) return this.drop('spans', 'shutdown');
    const p = spanPriority(span);
    if (this.spanEncoder !== undefined) {
      if (!this.addEncoded('spans', this.spans[p]!, this.spanEncoder, span, span.scope, p)) return false;
    } else {
      const bytes = estimateSpanBytes(span);
      if (!this.admit('spans', bytes, p)) return false;
      this.spans[p]!.push(span, bytes, this.seq++);
      this.memory += bytes;
    }
    this.stats.accepted.spans++;
    if (++this.queuedSpans >= this.batchSize.spans) this.schedule('spans', false);
    return true;
  }

  /** Queues a log record; false when it was dropped (counted). */
  addLog(log: LogRecord): boolean {
    this.stats.produced.logs++;
    if (this.closing !== undefined) return this.drop('logs', 'shutdown');
    const p = logPriority(log);
    if (this.logEncoder !== undefined) {
      if (!this.addEncoded('logs', this.logs[p]!, this.logEncoder, log, log.scope, p)) return false;
    } else {
      const bytes = estimateLogBytes(log);
      if (!this.admit('logs', bytes, p)) return false;
      this.logs[p]!.push(log, bytes, this.seq++);
      this.memory += bytes;
    }
    this.stats.accepted.logs++;
    if (++this.queuedLogs >= this.batchSize.logs) this.schedule('logs', false);
    return true;
  }

  /**
   * Queues a record as its encoded bytes. Its ring holds its own charge; the chunk it lands in is
   * charged when it is made and uncharged when its last record is let go (`release`).
   */
  private addEncoded<R>(kind: 'spans' | 'logs', ring: Ring<R | QueuedRecord>, encoder: RecordEncoder<R>, record: R, scope: string, p: number): boolean {
    let bytes: unknown;
    try {
      bytes = encoder.encode(record);
    } catch (e) {
      // An exporter that cannot encode a record (a bug in it, or a value it refuses) loses that record alone.
      // Whatever was thrown is counted; its text is taken only from an Error (String() of a
      // thrown object can itself throw).
      return this.encodeFailed(kind, e instanceof Error ? e.message : `a thrown ${typeof e}`);
    }
    if (!(bytes instanceof Uint8Array)) return this.encodeFailed(kind, `the encoder returned ${typeof bytes}, not bytes`);
    const chunks = this.chunks[kind];
    const charge = encodedCharge(bytes.length);
    let chunk = chunks.costOf(bytes.length);
    if (!this.admit(kind, charge + chunk, p)) return false;
    // Making room may have evicted the last records of the chunk this one was to join, letting
    // that chunk go: the record then needs a new chunk, charged like any other.
    const after = chunks.costOf(bytes.length);
    if (after !== chunk) {
      if (!this.admit(kind, charge + after, p)) return false;
      chunk = after;
    }
    ring.push(chunks.add(bytes, scope), charge, this.seq++);
    this.memory += charge + chunk;
    return true;
  }

  private encodeFailed(kind: 'spans' | 'logs', why: string): false {
    this.stats.lastFailure = { at: Date.now(), kind, reason: 'failed', items: 1, message: `encoding a ${kind === 'spans' ? 'span' : 'log record'} failed: ${why}` };
    return this.drop(kind, 'failed');
  }

  /** Lets go of a queued record; one queued as bytes uncharges its chunk when it was the chunk's last. */
  private release(kind: 'spans' | 'logs', item: SpanRecord | LogRecord | QueuedRecord): void {
    if (item instanceof QueuedRecord) this.memory -= this.chunks[kind].release(item);
  }

  /** Adds a point to its series; a new series needs room, a point of an existing one does not. */
  addMetric(point: MetricPoint): boolean {
    if (this.closing !== undefined) {
      this.stats.droppedPoints.shutdown++;
      return false;
    }
    const bytes = estimateSeriesBytes(point, this.aggregator.histogramBounds.length + 1);
    const roomForSeries = this.memoryInUse() + bytes <= this.cfg.maxMemoryBytes;
    const pending = this.aggregator.pending;
    if (!this.aggregator.add(point, roomForSeries, bytes)) {
      this.stats.droppedPoints.overflow++;
      return false;
    }
    if (this.aggregator.pending > pending) this.stats.produced.metrics++;
    this.stats.accepted.metrics++;
    return true;
  }

  /**
   * Resolves true once `bytes` more fit under the memory bound (at once when they do now), false
   * after `timeoutMs` or at shutdown. With `whenFull: 'block'`, a producer awaits it before
   * producing so that nothing is dropped for lack of room. A request for more than the whole
   * bound waits for the queues to empty (it could never fit otherwise).
   */
  whenRoom(bytes = 0, timeoutMs = this.cfg.blockTimeoutMs): Promise<boolean> {
    if (this.closing !== undefined) return Promise.resolve(false);
    bytes = Math.min(bytes, this.cfg.maxMemoryBytes);
    if (this.hasRoom(bytes)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter: RoomWaiter = { bytes, resolve, timer: undefined };
      waiter.timer = setTimeout(() => {
        this.roomWaiters = this.roomWaiters.filter((w) => w !== waiter);
        resolve(false);
      }, timeoutMs);
      this.roomWaiters.push(waiter);
    });
  }

  /** Exports everything queued now, batch by batch within the in-flight cap, and resolves when done. */
  async flushAll(): Promise<void> {
    for (;;) {
      if (this.stopped) return;
      for (const kind of KINDS) if (this.size(kind) > 0) this.schedule(kind, true);
      if (this.batches.size === 0) return;
      await new Promise<void>((resolve) => this.settleWaiters.push(resolve));
    }
  }

  getStats(): BatchingStats {
    this.stats.queued = { spans: this.queuedSpans, logs: this.queuedLogs, metricSeries: this.aggregator.pending };
    this.stats.memoryBytes = this.memoryInUse();
    this.stats.inFlight = this.batches.size;
    return structuredClone(this.stats);
  }

  /**
   * Stops the interval, flushes what is queued, and waits for exports up to the deadline; what
   * is still queued then is counted as dropped (shutdown). The exporter is shut down with what is
   * left of the deadline; exports it has not settled by then are counted as dropped (shutdown)
   * too, and whatever they report later is ignored. Returns within the deadline (+ ~20 ms).
   * Idempotent.
   */
  shutdown(timeoutMs = this.cfg.shutdownTimeoutMs): Promise<void> {
    return (this.closing ??= this.close(timeoutMs));
  }

  private async close(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + Math.max(0, timeoutMs);
    for (const t of this.timers) clearInterval(t);
    // Nothing is accepted any more: producers waiting for room stop waiting.
    for (const w of this.roomWaiters.splice(0)) {
      clearTimeout(w.timer);
      w.resolve(false);
    }
    const flushed = await within(this.flushAll(), Math.max(0, timeoutMs));
    this.stopped = true;
    this.waiting.length = 0;
    if (!flushed) {
      for (const kind of ['spans', 'logs'] as const) {
        const rings = kind === 'spans' ? this.spans : this.logs;
        for (const ring of rings) {
          while (ring.length > 0) {
            this.memory -= ring.headBytes();
            this.release(kind, ring.shift());
            this.stats.dropped[kind].shutdown++;
          }
          ring.clear();
        }
      }
      this.queuedSpans = 0;
      this.queuedLogs = 0;
    }
    // Series with points not yet exported are never exported now: counted here, once.
    this.stats.dropped.metrics.shutdown += this.aggregator.discardPending();
    const remaining = Math.max(0, deadline - Date.now());
    let exporterDone: Promise<unknown>;
    try {
      exporterDone = Promise.resolve(this.exporter.shutdown(remaining));
    } catch (e) {
      exporterDone = Promise.reject(e);
    }
    await within(exporterDone, remaining + GRACE_MS);
    // Exports the exporter did not settle in time are abandoned: counted now, their results ignored.
    for (const batch of [...this.batches]) this.finish(batch, { code: 'failure', items: batch.items, attempts: 0, retryable: true, error: new Error('export did not settle by the shutdown deadline'), reason: 'shutdown' });
    this.wakeSettled();
  }

  /** Whether a record of `bytes` at `priority` can be queued, making room if the policy allows. */
  private admit(kind: 'spans' | 'logs', bytes: number, priority: number): boolean {
    // A queue at its record cap (OTEL_BSP/BLRP_MAX_QUEUE_SIZE) drops the new record, as those processors do.
    if ((kind === 'spans' ? this.queuedSpans : this.queuedLogs) >= this.maxQueue[kind]) return this.drop(kind, 'overflow');
    const max = this.cfg.maxMemoryBytes;
    if (bytes > max) return this.drop(kind, 'tooLarge'); // refused alone: nobody is evicted for it
    if (this.memoryInUse() + bytes <= max) return true;
    if (this.cfg.whenFull === 'drop' && this.cfg.dropOnOverflow) {
      // Newest first among lower priorities: logs of a priority, then spans of it.
      for (let p = 0; p < priority; p++) {
        if (this.evict(this.logs[p]!, 'logs', bytes) || this.evict(this.spans[p]!, 'spans', bytes)) return true;
      }
    }
    return this.drop(kind, 'overflow');
  }

  /** Drops the newest records of `ring` until `need` fits; true when it does. */
  private evict(ring: Ring<SpanRecord | LogRecord | QueuedRecord>, kind: 'spans' | 'logs', need: number): boolean {
    const max = this.cfg.maxMemoryBytes;
    while (ring.length > 0) {
      this.memory -= ring.tailBytes();
      this.release(kind, ring.pop());
      if (kind === 'spans') this.queuedSpans--;
      else this.queuedLogs--;
      this.stats.dropped[kind].overflow++;
      if (this.memoryInUse() + need <= max) return true;
    }
    return false;
  }

  private drop(kind: RecordKind, why: DropReason): false {
    this.stats.dropped[kind][why]++;
    return false;
  }

  private hasRoom(bytes: number): boolean {
    return this.memoryInUse() + bytes <= this.cfg.maxMemoryBytes;
  }

  /** Queued records, batches in flight, and the metric series held (which go when they turn stale). */
  private memoryInUse(): number {
    return this.memory + this.aggregator.bytes;
  }

  private onInterval(kind: RecordKind): void {
    if (kind === 'metrics') {
      if (this.aggregator.pending > 0) this.schedule('metrics', true);
    } else if (this.size(kind) >= this.cfg.minBatchSize) this.schedule(kind, true);
  }

  private size(kind: RecordKind): number {
    return kind === 'spans' ? this.queuedSpans : kind === 'logs' ? this.queuedLogs : this.aggregator.pending;
  }

  /** Exports a batch of `kind` now if a slot is free, else when one frees up. `partial`: even if not full. */
  private schedule(kind: RecordKind, partial: boolean): void {
    if (this.stopped) return;
    const size = this.size(kind);
    if (size === 0 || (!partial && size < (kind === 'metrics' ? 1 : this.batchSize[kind]))) return;
    if (this.batches.size < this.cfg.maxConcurrentExports) this.start(kind);
    else if (!this.waiting.includes(kind)) this.waiting.push(kind);
  }

  /** Takes up to `max` records of a kind (its batch size), oldest first across its priority rings. */
  private take<T>(rings: Array<Ring<T>>, max: number): { records: T[]; bytes: number } {
    const records: T[] = [];
    let bytes = 0;
    const [a, b, c] = rings as [Ring<T>, Ring<T>, Ring<T>];
    while (records.length < max) {
      const sa = a.headSeq();
      const sb = b.headSeq();
      const sc = c.headSeq();
      const ring = sa <= sb && sa <= sc ? a : sb <= sc ? b : c;
      if (ring.length === 0) break;
      bytes += ring.headBytes();
      records.push(ring.shift());
    }
    return { records, bytes };
  }

  private start(kind: RecordKind): void {
    let items: number;
    let bytes: number;
    let run: () => Promise<ExportResult>;
    let encoded: QueuedRecord[] | undefined;
    if (kind === 'metrics') {
      const series: MetricSeries[] = this.aggregator.collect();
      items = series.length;
      bytes = this.aggregator.collectedBytes * 2; // the copies handed over, and their encoded body
      run = () => this.exporter.exportMetrics(series);
    } else if (kind === 'spans') {
      const t = this.take(this.spans, this.batchSize.spans);
      this.queuedSpans -= t.records.length;
      items = t.records.length;
      bytes = t.bytes;
      const encoder = this.spanEncoder;
      if (encoder !== undefined) {
        const spans = (encoded = t.records as QueuedRecord[]);
        run = () => encoder.exportEncoded(spans);
      } else run = () => this.exporter.exportSpans(t.records as SpanRecord[]);
    } else {
      const t = this.take(this.logs, this.batchSize.logs);
      this.queuedLogs -= t.records.length;
      items = t.records.length;
      bytes = t.bytes;
      const encoder = this.logEncoder;
      if (encoder !== undefined) {
        const logs = (encoded = t.records as QueuedRecord[]);
        run = () => encoder.exportEncoded(logs);
      } else run = () => this.exporter.exportLogs(t.records as LogRecord[]);
    }
    if (items === 0) return;
    const batch: Batch = { kind, items, bytes, settled: false, encoded };
    this.memory += kind === 'metrics' ? bytes : 0; // spans and logs stay charged as they were queued
    this.batches.add(batch);
    this.stats.inFlightItems[kind] += items;
    let p: Promise<ExportResult>;
    try {
      p = Promise.resolve(run());
    } catch (e) {
      p = Promise.reject(e);
    }
    // Both outcomes are handled, and settle() never throws: no rejection is left unhandled.
    p.then(
      (result) => this.settle(batch, result),
      (e: unknown) => this.settle(batch, { code: 'failure', items, attempts: 0, retryable: false, error: e instanceof Error ? e : new Error(String(e)), reason: 'failed' }),
    );
  }

  private settle(batch: Batch, result: ExportResult): void {
    if (batch.settled) return; // abandoned at the shutdown deadline, and counted then
    this.finish(batch, result);
    this.pump();
    this.wakeSettled();
    this.wakeRoom();
  }

  /** Counts what became of a batch: exported, rejected, or dropped per reason, adding up to its items. */
  private finish(batch: Batch, result: ExportResult): void {
    batch.settled = true;
    this.batches.delete(batch);
    this.memory -= batch.bytes;
    if (batch.encoded !== undefined) {
      const chunks = this.chunks[batch.kind as 'spans' | 'logs'];
      for (let i = 0; i < batch.encoded.length; i++) this.memory -= chunks.release(batch.encoded[i]!);
    }
    const { kind, items } = batch;
    this.stats.inFlightItems[kind] -= items;
    const o = outcome(result, items);
    this.stats.exported[kind] += o.exported;
    this.stats.rejected[kind] += o.rejected;
    const dropped = this.stats.dropped[kind];
    let worst: DropReason | undefined;
    for (const r of DROP_REASONS) {
      if (o.dropped[r] === 0) continue;
      dropped[r] += o.dropped[r];
      if (worst === undefined || o.dropped[r] > o.dropped[worst]) worst = r;
    }
    const at = Date.now();
    const code = (result as { code?: unknown } | null)?.code === 'success' && worst === undefined ? 'success' : 'failure';
    this.stats.lastFlush = { at, kind, items, code };
    if (worst !== undefined || o.rejected > 0) {
      const failure: ExportFailure = { at, kind, reason: worst ?? 'rejected', items: worst !== undefined ? o.dropped[worst] : o.rejected, message: o.message };
      if (o.status !== undefined) failure.status = o.status;
      this.stats.lastFailure = failure;
    }
    if (this.onFlush !== undefined) {
      try {
        this.onFlush({ kind, items, result });
      } catch {
        this.stats.callbackErrors++;
      }
    }
  }

  /** Fills free export slots: requests that waited first, then batches that filled up meanwhile. */
  private pump(): void {
    if (this.stopped) return;
    while (this.waiting.length > 0 && this.batches.size < this.cfg.maxConcurrentExports) {
      const kind = this.waiting.shift()!;
      if (this.size(kind) > 0) this.start(kind);
    }
    this.schedule('spans', false);
    this.schedule('logs', false);
  }

  private wakeSettled(): void {
    if (this.settleWaiters.length === 0) return;
    const waiters = this.settleWaiters;
    this.settleWaiters = [];
    for (const w of waiters) w();
  }

  private wakeRoom(): void {
    if (this.roomWaiters.length === 0) return;
    this.roomWaiters = this.roomWaiters.filter((w) => {
      if (!this.hasRoom(w.bytes)) return true;
      clearTimeout(w.timer);
      w.resolve(true);
      return false;
    });
  }
}

/** Resolves true when `p` settles within `ms`, false otherwise; never rejects. */
function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    const done = () => {
      clearTimeout(timer);
      resolve(true);
    };
    p.then(done, done);
  });
}

const FAILURE_REASONS: Record<ExportFailureReason, DropReason> = { shutdown: 'shutdown', retriesExhausted: 'retriesExhausted', nonRetryable: 'nonRetryable', tooLarge: 'tooLarge', failed: 'failed' };

const count = (n: unknown, max: number): number => (typeof n === 'number' && Number.isFinite(n) ? Math.min(max, Math.max(0, Math.trunc(n))) : 0);

/**
 * Reads an export result against the number of items actually sent, whatever the exporter says:
 * counts are clamped so that exported + rejected + dropped = items, never negative.
 */
export function outcome(result: ExportResult, items: number): { exported: number; rejected: number; dropped: Counts; message: string; status?: number } {
  const dropped = zeroCounts();
  const r = result as unknown as Omit<Partial<Extract<ExportResult, { code: 'failure' }>>, 'code'> & { code?: unknown; rejected?: unknown; message?: unknown };
  if (r === null || typeof r !== 'object' || (r.code !== 'success' && r.code !== 'failure')) {
    dropped.failed = items;
    return { exported: 0, rejected: 0, dropped, message: 'the exporter returned no result' };
  }
  if (r.code === 'success') {
    const rejected = count(r.rejected, items);
    return { exported: items - rejected, rejected, dropped, message: typeof r.message === 'string' && r.message ? r.message : `${rejected} rejected by the collector` };
  }
  const exported = count(r.exported, items);
  const rejected = count(r.rejected, items - exported);
  let left = items - exported - rejected;
  if (r.dropped !== undefined && r.dropped !== null && typeof r.dropped === 'object') {
    for (const [k, n] of Object.entries(r.dropped)) {
      const reason = FAILURE_REASONS[k as ExportFailureReason] ?? 'failed';
      const c = count(n, left);
      dropped[reason] += c;
      left -= c;
    }
  }
  dropped[FAILURE_REASONS[r.reason as ExportFailureReason] ?? 'failed'] += left;
  const out: { exported: number; rejected: number; dropped: Counts; message: string; status?: number } = {
    exported,
    rejected,
    dropped,
    message: r.error instanceof Error ? r.error.message : typeof r.message === 'string' ? r.message : 'export failed',
  };
  if (typeof r.status === 'number') out.status = r.status;
  return out;
}
