/** Span and log records for batching and export tests. */
import type { Exporter } from '../../host/export/exporter.js';
import type { LogRecord, SpanRecord } from '../../host/pipeline/telemetry-records.js';
import type { Values } from '../../shared/records.js';

let n = 0;
export function log(level: LogRecord['level'] = 'info', body = `log ${++n}`, attributes: Values = []): LogRecord {
  return { time: 1n, level, severityNumber: 9, body, attributes, scope: 'test', traceId: undefined, spanId: undefined, traceFlags: 0, executionId: 'e' };
}
export function span(error = false, attributes: Values = []): SpanRecord {
  return {
    traceId: new Uint8Array(16).fill(1), spanId: new Uint8Array(8).fill(2), parentSpanId: undefined, traceFlags: 1, name: `span ${++n}`, scope: 'test',
    start: 1n, end: 2n, attributes, events: [], links: [], status: error ? { code: 'error', message: 'x' } : { code: 'unset' }, executionId: 'e', forced: undefined, droppedEvents: 0,
  };
}

/**
 * `e` without its own span and log encodings: batching then queues records, each charged its
 * estimate (estimateSpanBytes, estimateLogBytes), which tests of the admission policy count in.
 */
export function recordsOnly(e: Exporter): Exporter {
  return { exportSpans: (s) => e.exportSpans(s), exportLogs: (l) => e.exportLogs(l), exportMetrics: (m) => e.exportMetrics(m), shutdown: (ms) => e.shutdown(ms) };
}
