/**
 * Batches completed records between the pipeline collector and an exporter: separate queues for
 * spans and logs, metric points aggregated per series, a memory bound, and explicit flushing.
 *
 * A batch is exported as soon as it is full, on the interval otherwise, and on shutdown within
 * a deadline; never more than `maxConcurrentExports` at once. Nothing is lost silently: records
 * dropped on overflow, in a failed export or at a shutdown deadline are counted per kind.
 */
import type { ExportResult, Exporter } from '../export/exporter.js';
import { MetricAggregator, type AggregatorOptions } from '../export/metric-aggregation.js';
import type { TelemetryHandlers } from '../pipeline/pipeline-collector.js';
import type { LogRecord, MetricPoint, SpanRecord } from '../pipeline/telemetry-records.js';
import type { Values } from '../../shared/records.js';

export interface BatchingConfig {
  /** Records per export (default 512). */
  maxBatchSize?: number;
  /** Export what is queued at least this often, in ms (default 5,000). */
  flushIntervalMs?: number;
  /** Estimated memory held in queues at most (default 16 MiB). */
  maxMemoryBytes?: number;
  /**
   * When full: true (default) makes room by dropping the newest least important records
   * (trace/debug/info logs, then ordinary spans and warnings) before anything that ended in
   * error; false drops the incoming record.
   */
  dropOnOverflow?: boolean;
  /** The interval exports a queue only when it holds at least this many records (default 1). */
  minBatchSize?: number;
  /** Exports in flight at most (default 2). */
  maxConcurrentExports?: number;
  /** How long shutdown() waits for the last exports, in ms (default 10,000). */
  shutdownTimeoutMs?: number;
  metrics?: AggregatorOptions;
}

export type RecordKind = 'spans' | 'logs' | 'metrics';
const KINDS: RecordKind[] = ['spans', 'logs', 'metrics'];

export interface FlushEvent {
  kind: RecordKind;
  items: number;
  result: ExportResult;
}

export interface BatchingStats {
  queued: { spans: number; logs: number; metricSeries: number };
  accepted: Record<RecordKind, number>;
  exported: Record<RecordKind, number>;
  /** Why records were lost: no room, a failed export, or the shutdown deadline. */
  dropped: Record<RecordKind, { overflow: number; failed: number; shutdown: number }>;
  memoryBytes: number;
  inFlight: number;
  lastFlush?: { at: number; kind: RecordKind; items: number; code: ExportResult['code'] };
}

/** Priority when making room: 0 is dropped first. */
function spanPriority(s: SpanRecord): number {
  return s.status.code === 'error' ? 2 : 1;
}
function logPriority(l: LogRecord): number {
  return l.level === 'error' ? 2 : l.level === 'warn' ? 1 : 0;
}

function valuesSize(values: Values): number {
  let n = 0;
  for (const [k, v] of values) n += 48 + k.length * 2 + (typeof v === 'string' ? v.length * 2 : 16);
  return n;
}

/** Rough heap size of a record: enough to bound memory, cheap to compute. */
export function estimateSpanBytes(s: SpanRecord): number {
  let n = 320 + s.name.length * 2 + valuesSize(s.attributes) + s.links.length * 96;
  for (const e of s.events) n += 96 + e.name.length * 2 + valuesSize(e.attributes);
  return n;
}
export function estimateLogBytes(l: LogRecord): number {
  return 200 + l.body.length * 2 + valuesSize(l.attributes);
}
const SERIES_BYTES = 512;

interface Queued<T> {
  record: T;
  bytes: number;
  priority: number;
}

/**
 * @example
 * const exporter = new OtlpHttpExporter({ endpoint });
 * const batching = new BatchingManager(exporter, { maxBatchSize: 256 });
 * const collector = new PipelineCollector({ handlers: batching.handlers() });
 * // … run guests …
 * await batching.shutdown();
 */
export class BatchingManager {
  private readonly cfg: Required<Omit<BatchingConfig, 'metrics'>>;
  private readonly spans: Array<Queued<SpanRecord>> = [];
  private readonly logs: Array<Queued<LogRecord>> = [];
  private readonly aggregator: MetricAggregator;
  private readonly timer: NodeJS.Timeout;
  private readonly exports = new Set<Promise<void>>();
  private readonly waiting: RecordKind[] = [];
  /** Estimated bytes of queued spans and logs. */
  private memory = 0;
  private closing: Promise<void> | undefined;
  private readonly stats: BatchingStats;

  constructor(
    private readonly exporter: Exporter,
    config: BatchingConfig = {},
    private readonly onFlush?: (event: FlushEvent) => void,
  ) {
    this.cfg = {
      maxBatchSize: config.maxBatchSize ?? 512,
      flushIntervalMs: config.flushIntervalMs ?? 5000,
      maxMemoryBytes: config.maxMemoryBytes ?? 16 << 20,
      dropOnOverflow: config.dropOnOverflow ?? true,
      minBatchSize: config.minBatchSize ?? 1,
      maxConcurrentExports: config.maxConcurrentExports ?? 2,
      shutdownTimeoutMs: config.shutdownTimeoutMs ?? 10_000,
    };
    this.aggregator = new MetricAggregator(config.metrics);
    const zero = () => ({ overflow: 0, failed: 0, shutdown: 0 });
    this.stats = {
      queued: { spans: 0, logs: 0, metricSeries: 0 },
      accepted: { spans: 0, logs: 0, metrics: 0 },
      exported: { spans: 0, logs: 0, metrics: 0 },
      dropped: { spans: zero(), logs: zero(), metrics: zero() },
      memoryBytes: 0,
      inFlight: 0,
    };
    this.timer = setInterval(() => this.onInterval(), this.cfg.flushIntervalMs);
    this.timer.unref(); // a pending flush never keeps the process alive; shutdown() flushes
  }

  /** Handlers for a PipelineCollector that feed this manager. */
  handlers(): TelemetryHandlers {
    return { onSpan: (s) => this.addSpan(s), onLog: (l) => this.addLog(l), onMetric: (m) => this.addMetric(m) };
  }

  /** Queues a span; false when it was dropped (counted). */
  addSpan(span: SpanRecord): boolean {
    return this.add('spans', this.spans, { record: span, bytes: estimateSpanBytes(span), priority: spanPriority(span) });
  }

  addLog(log: LogRecord): boolean {
    return this.add('logs', this.logs, { record: log, bytes: estimateLogBytes(log), priority: logPriority(log) });
  }

  /** Adds a point to its series; a new series needs room, a point of an existing one does not. */
  addMetric(point: MetricPoint): boolean {
    if (this.closing !== undefined) return this.drop('metrics', 'shutdown');
    const roomForSeries = this.memoryInUse() + SERIES_BYTES <= this.cfg.maxMemoryBytes;
    if (!this.aggregator.add(point, roomForSeries)) return this.drop('metrics', 'overflow');
    this.stats.accepted.metrics++;
    return true;
  }

  /** Exports everything queued now, batch by batch within the in-flight cap, and resolves when done. */
  async flushAll(): Promise<void> {
    for (;;) {
      for (const kind of KINDS) if (this.size(kind) > 0) this.schedule(kind, true);
      if (this.exports.size === 0) return;
      await Promise.race([...this.exports]);
    }
  }

  getStats(): BatchingStats {
    this.stats.queued = { spans: this.spans.length, logs: this.logs.length, metricSeries: this.aggregator.pending };
    this.stats.memoryBytes = this.memoryInUse();
    this.stats.inFlight = this.exports.size;
    return structuredClone(this.stats);
  }

  /**
   * Stops the interval, flushes what is queued, and waits for exports up to the deadline; what
   * is still queued then is counted as dropped. Then shuts the exporter down. Idempotent.
   */
  shutdown(timeoutMs = this.cfg.shutdownTimeoutMs): Promise<void> {
    return (this.closing ??= this.close(timeoutMs));
  }

  private async close(timeoutMs: number): Promise<void> {
    const started = Date.now();
    clearInterval(this.timer);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), timeoutMs)));
    const outcome = await Promise.race([this.flushAll().then(() => 'done' as const), deadline]);
    clearTimeout(timer);
    if (outcome === 'timeout') {
      this.stats.dropped.spans.shutdown += this.spans.length;
      this.stats.dropped.logs.shutdown += this.logs.length;
      this.stats.dropped.metrics.shutdown += this.aggregator.pending;
      this.spans.length = 0;
      this.logs.length = 0;
      this.waiting.length = 0;
    }
    // Exports still under way get what is left of the deadline, then are aborted (and counted).
    await this.exporter.shutdown(Math.max(0, timeoutMs - (Date.now() - started)));
    await Promise.allSettled([...this.exports]);
  }

  private add<T>(kind: 'spans' | 'logs', queue: Array<Queued<T>>, item: Queued<T>): boolean {
    if (this.closing !== undefined) return this.drop(kind, 'shutdown');
    if (this.memoryInUse() + item.bytes > this.cfg.maxMemoryBytes && !this.makeRoom(item)) return this.drop(kind, 'overflow');
    queue.push(item);
    this.memory += item.bytes;
    this.stats.accepted[kind]++;
    if (queue.length >= this.cfg.maxBatchSize) this.schedule(kind, false);
    return true;
  }

  /** Drops the newest queued records of lower priority than `incoming` until it fits. */
  private makeRoom(incoming: Queued<unknown>): boolean {
    if (!this.cfg.dropOnOverflow) return false;
    for (let p = 0; p < incoming.priority && this.memoryInUse() + incoming.bytes > this.cfg.maxMemoryBytes; p++) {
      this.evict(this.logs, 'logs', p, incoming.bytes);
      this.evict(this.spans, 'spans', p, incoming.bytes);
    }
    return this.memoryInUse() + incoming.bytes <= this.cfg.maxMemoryBytes;
  }

  private evict(queue: Array<Queued<unknown>>, kind: 'spans' | 'logs', priority: number, need: number): void {
    for (let i = queue.length - 1; i >= 0 && this.memoryInUse() + need > this.cfg.maxMemoryBytes; i--) {
      if (queue[i]!.priority !== priority) continue;
      this.memory -= queue[i]!.bytes;
      queue.splice(i, 1);
      this.stats.dropped[kind].overflow++;
    }
  }

  private drop(kind: RecordKind, why: 'overflow' | 'shutdown'): false {
    this.stats.dropped[kind][why]++;
    return false;
  }

  /** Queued records plus the metric series held (which go when they turn stale). */
  private memoryInUse(): number {
    return this.memory + this.aggregator.size * SERIES_BYTES;
  }

  private onInterval(): void {
    if (this.spans.length >= this.cfg.minBatchSize) this.schedule('spans', true);
    if (this.logs.length >= this.cfg.minBatchSize) this.schedule('logs', true);
    if (this.aggregator.pending > 0) this.schedule('metrics', true);
  }

  private size(kind: RecordKind): number {
    return kind === 'spans' ? this.spans.length : kind === 'logs' ? this.logs.length : this.aggregator.pending;
  }

  /** Exports a batch of `kind` now if a slot is free, else when one frees up. `partial`: even if not full. */
  private schedule(kind: RecordKind, partial: boolean): void {
    const size = this.size(kind);
    if (size === 0 || (!partial && size < this.cfg.maxBatchSize)) return;
    if (this.exports.size < this.cfg.maxConcurrentExports) this.start(kind);
    else if (!this.waiting.includes(kind)) this.waiting.push(kind);
  }

  private start(kind: RecordKind): void {
    const run = this.exportBatch(kind).finally(() => {
      this.exports.delete(run);
      this.pump();
    });
    this.exports.add(run);
  }

  /** Fills free export slots: requests that waited first, then batches that filled up meanwhile. */
  private pump(): void {
    while (this.waiting.length > 0 && this.exports.size < this.cfg.maxConcurrentExports) {
      const kind = this.waiting.shift()!;
      if (this.size(kind) > 0) this.start(kind);
    }
    this.schedule('spans', false);
    this.schedule('logs', false);
  }

  private async exportBatch(kind: RecordKind): Promise<void> {
    let items: number;
    let result: ExportResult;
    if (kind === 'metrics') {
      const series = this.aggregator.collect();
      items = series.length;
      result = await this.exporter.exportMetrics(series);
    } else {
      const queue: Array<Queued<SpanRecord | LogRecord>> = kind === 'spans' ? this.spans : this.logs;
      const batch = queue.splice(0, this.cfg.maxBatchSize);
      for (const q of batch) this.memory -= q.bytes;
      items = batch.length;
      result = kind === 'spans' ? await this.exporter.exportSpans(batch.map((q) => q.record as SpanRecord)) : await this.exporter.exportLogs(batch.map((q) => q.record as LogRecord));
    }
    if (result.code === 'success') this.stats.exported[kind] += items - result.rejected;
    else this.stats.dropped[kind].failed += items;
    this.stats.lastFlush = { at: Date.now(), kind, items, code: result.code };
    this.onFlush?.({ kind, items, result });
  }
}
