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
   * Waits for exports under way (at most `timeoutMs`; past it they are aborted and fail), then
   * releases sockets. Idempotent.
   */
  shutdown(timeoutMs?: number): Promise<void>;
}
