/** The seam between batching and transport: something that sends completed records somewhere. */
import type { MetricSeries } from './metric-aggregation.js';
import type { LogRecord, SpanRecord } from '../pipeline/telemetry-records.js';

/**
 * `success` may still carry rejected items (OTLP partial success: not retried, but counted).
 * `failure` means the items are lost; `retryable` says whether a later export might have worked.
 */
export type ExportResult =
  | { code: 'success'; items: number; attempts: number; rejected: number; message?: string }
  | { code: 'failure'; items: number; attempts: number; retryable: boolean; error: Error };

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
