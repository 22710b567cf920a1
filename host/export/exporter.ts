/** The seam between batching and transport: something that sends completed records somewhere. */
import type { MetricSeries } from './metric-aggregation.js';
import type { LogRecord, SpanRecord } from '../pipeline/telemetry-records.js';

/**
 * Why items of an export were lost:
 * - `shutdown`: the exporter shut down (or its deadline passed) before they were delivered;
 * - `retriesExhausted`: retryable failures (429/502/503/504, connection errors, timeouts) until the export's deadline;
 * - `nonRetryable`: the collector answered a status that is not retried (400, 401, 413, …);
 * - `tooLarge`: one item encodes to more than the request cap;
 * - `failed`: anything else (an exporter that threw, an unreadable result).
 */
export type ExportFailureReason = 'shutdown' | 'retriesExhausted' | 'nonRetryable' | 'tooLarge' | 'failed';

/**
 * `success` may still carry rejected items (OTLP partial success: not retried, but counted, with
 * the collector's message). `failure` means the items are lost, except those counted in
 * `exported`/`rejected` (parts of a split export that went through). `dropped` says, per reason,
 * how many were lost when they were lost for more than one reason; otherwise all of them were lost
 * for `reason`. `retryable` says whether a later export might have worked.
 */
export type ExportResult =
  | { code: 'success'; items: number; attempts: number; rejected: number; message?: string }
  | {
      code: 'failure';
      items: number;
      attempts: number;
      retryable: boolean;
      error: Error;
      reason?: ExportFailureReason;
      /** HTTP status of the last answer, when there was one. */
      status?: number;
      exported?: number;
      rejected?: number;
      /** The collector's partial-success message for `rejected`. */
      message?: string;
      dropped?: Partial<Record<ExportFailureReason, number>>;
    };

/**
 * An exporter's promises should resolve, never reject; the batching manager copes with one that
 * throws or rejects all the same (its batch is counted as dropped, reason `failed`).
 */
export interface Exporter {
  exportSpans(spans: readonly SpanRecord[]): Promise<ExportResult>;
  exportLogs(logs: readonly LogRecord[]): Promise<ExportResult>;
  exportMetrics(series: readonly MetricSeries[]): Promise<ExportResult>;
  /**
   * Optional: this exporter's own encoding of spans (and of log records), so that a queue holds
   * each record as its encoded bytes from the moment it is queued instead of as objects. Objects
   * that wait in a queue while exports lag survive young-generation GCs and are copied by each
   * one; bytes are not. The batching manager asks once, when it is made; undefined means it wants
   * records.
   */
  spanEncoder?(): RecordEncoder<SpanRecord> | undefined;
  logEncoder?(): RecordEncoder<LogRecord> | undefined;
  /**
   * Waits for exports under way (at most `timeoutMs`; past it they are aborted and fail), then
   * releases sockets. Idempotent.
   */
  shutdown(timeoutMs?: number): Promise<void>;
}

/** A record encoded by a `RecordEncoder`: its bytes are `buf[start, end)`, shared with other records. */
export interface EncodedRecord {
  readonly buf: Uint8Array;
  readonly start: number;
  readonly end: number;
  /** The record's instrumentation scope (the guest target), which an export groups records by. */
  readonly scope: string;
}

/**
 * Encodes records one by one when they are queued, and exports records so encoded.
 *
 * @example
 * const encoder = exporter.spanEncoder?.();
 * if (encoder !== undefined) {
 *   const bytes = encoder.encode(span); // valid until the next call: copy them out
 *   const buf = bytes.slice();
 *   await encoder.exportEncoded([{ buf, start: 0, end: buf.length, scope: span.scope }]);
 * }
 */
export interface RecordEncoder<R> {
  /** The record's encoded bytes: a view into the encoder's buffer, valid until the next call. */
  encode(record: R): Uint8Array;
  /** Exports records made from `encode`'s bytes: the same promise and result as `exportSpans`/`exportLogs`. */
  exportEncoded(records: readonly EncodedRecord[]): Promise<ExportResult>;
}
