/**
 * OTLP/JSON forms of completed records (the protobuf JSON mapping OTLP specifies: camelCase
 * names, hex trace and span ids, 64-bit integers as strings), and a file exporter that appends
 * one request per line, as the OpenTelemetry Collector's file exporter does.
 */
import { appendFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Value, Values } from '../../shared/records.js';
import { formatError, formatValue } from '../collectors/format-value.js';
import type { LogRecord, SpanRecord } from '../pipeline/telemetry-records.js';
import type { ExportResult, Exporter } from './exporter.js';
import type { MetricSeries } from './metric-aggregation.js';

type Json = Record<string, unknown>;

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');

export function anyValueJson(v: Value): Json | undefined {
  switch (typeof v) {
    case 'string':
      return { stringValue: v };
    case 'boolean':
      return { boolValue: v };
    case 'number':
      return Number.isSafeInteger(v) ? { intValue: String(v) } : { doubleValue: Number.isFinite(v) ? v : String(v) };
    case 'bigint':
      return v >= -(1n << 63n) && v < 1n << 63n ? { intValue: v.toString() } : { stringValue: v.toString() };
  }
  if (v instanceof Uint8Array) return { bytesValue: Buffer.from(v).toString('base64') };
  if ('error' in v) return { stringValue: formatError(v.error) };
  if ('debug' in v) return { stringValue: formatValue(v) };
  return undefined;
}

export function attributesJson(values: Values): Json[] {
  const out: Json[] = [];
  for (const [key, v] of values) {
    const value = anyValueJson(v);
    if (value !== undefined) out.push({ key, value });
  }
  return out;
}

function byScope<T extends { scope: string }>(items: readonly T[]): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const i of items) (m.get(i.scope) ?? m.set(i.scope, []).get(i.scope)!).push(i);
  return m;
}

export function tracesJson(spans: readonly SpanRecord[], resource: Values): Json {
  return {
    resourceSpans: [
      {
        resource: { attributes: attributesJson(resource) },
        scopeSpans: [...byScope(spans)].map(([name, group]) => ({
          scope: { name },
          spans: group.map((s) => {
            const span: Json = {
              traceId: hex(s.traceId),
              spanId: hex(s.spanId),
              name: s.name,
              kind: 1,
              startTimeUnixNano: s.start.toString(),
              endTimeUnixNano: s.end.toString(),
              attributes: attributesJson(s.attributes),
              events: s.events.map((e) => ({ timeUnixNano: e.time.toString(), name: e.name, attributes: attributesJson(e.attributes) })),
              links: s.links.map((l) => ({ traceId: hex(l.traceId), spanId: hex(l.spanId), flags: l.traceFlags | (l.remote === true ? 0x300 : 0x100) })),
              flags: s.traceFlags | (s.parentRemote === true ? 0x300 : 0x100),
              status: s.status.code === 'unset' ? {} : { code: s.status.code === 'ok' ? 1 : 2, ...(s.status.message !== undefined && { message: s.status.message }) },
            };
            if (s.parentSpanId !== undefined) span.parentSpanId = hex(s.parentSpanId);
            if (s.droppedEvents > 0) span.droppedEventsCount = s.droppedEvents;
            return span;
          }),
        })),
      },
    ],
  };
}

export function logsJson(logs: readonly LogRecord[], resource: Values): Json {
  return {
    resourceLogs: [
      {
        resource: { attributes: attributesJson(resource) },
        scopeLogs: [...byScope(logs)].map(([name, group]) => ({
          scope: { name },
          logRecords: group.map((l) => {
            const rec: Json = {
              timeUnixNano: l.time.toString(),
              observedTimeUnixNano: l.time.toString(),
              severityNumber: l.severityNumber,
              severityText: l.level.toUpperCase(),
              body: { stringValue: l.body },
              attributes: attributesJson(l.executionId === undefined ? l.attributes : [...l.attributes, ['sandtrace.execution.id', l.executionId]]),
            };
            if (l.traceId !== undefined && l.spanId !== undefined) Object.assign(rec, { traceId: hex(l.traceId), spanId: hex(l.spanId), flags: l.traceFlags });
            return rec;
          }),
        })),
      },
    ],
  };
}

/** A double in the OTLP JSON mapping: NaN and the infinities as strings (JSON.stringify would write null). */
function doubleJson(v: number): number | string {
  return Number.isFinite(v) ? v : String(v);
}

export function metricsJson(series: readonly MetricSeries[], resource: Values): Json {
  return {
    resourceMetrics: [
      {
        resource: { attributes: attributesJson(resource) },
        scopeMetrics: [
          {
            scope: { name: 'sandtrace' },
            metrics: series.map((s) => {
              const point = { attributes: attributesJson(s.attributes), startTimeUnixNano: s.start.toString(), timeUnixNano: s.time.toString() };
              // OTLP JSON writes 64-bit integers as decimal strings.
              const number = (v: number | bigint) => (typeof v === 'bigint' ? { asInt: v.toString() } : { asDouble: doubleJson(v) });
              if (s.kind === 'sum') return { name: s.name, sum: { dataPoints: [{ ...point, ...number(s.sum) }], aggregationTemporality: 1, isMonotonic: s.monotonic } };
              if (s.kind === 'gauge') return { name: s.name, gauge: { dataPoints: [{ ...point, ...number(s.last) }] } };
              return {
                name: s.name,
                histogram: {
                  dataPoints: [{ ...point, count: String(s.count), sum: doubleJson(s.sum), min: doubleJson(s.min), max: doubleJson(s.max), bucketCounts: s.buckets.map(String), explicitBounds: s.bounds }],
                  aggregationTemporality: 1,
                },
              };
            }),
          },
        ],
      },
    ],
  };
}

/**
 * Appends OTLP/JSON requests, one per line, to `traces.jsonl`, `logs.jsonl` and `metrics.jsonl`
 * in a folder: sandtrace's embedded default when no collector is configured.
 *
 * @example
 * const store = new FileExporter('.sandtrace', [['service.name', 'demo']]);
 */
export class FileExporter implements Exporter {
  private ready: Promise<unknown> | undefined;
  private writes: Promise<unknown> = Promise.resolve();

  constructor(
    readonly folder: string,
    readonly resource: Values = [['service.name', 'sandtrace']],
  ) {}

  exportSpans(spans: readonly SpanRecord[]): Promise<ExportResult> {
    return this.append('traces.jsonl', spans.length, () => tracesJson(spans, this.resource));
  }
  exportLogs(logs: readonly LogRecord[]): Promise<ExportResult> {
    return this.append('logs.jsonl', logs.length, () => logsJson(logs, this.resource));
  }
  exportMetrics(series: readonly MetricSeries[]): Promise<ExportResult> {
    return this.append('metrics.jsonl', series.length, () => metricsJson(series, this.resource));
  }
  async shutdown(): Promise<void> {
    await this.writes;
  }

  private append(file: string, items: number, body: () => Json): Promise<ExportResult> {
    if (items === 0) return Promise.resolve({ code: 'success', items: 0, attempts: 0, rejected: 0 });
    const line = `${JSON.stringify(body())}\n`;
    // Appends are chained so lines of one file never interleave.
    const write = (this.writes = this.writes.then(async (): Promise<ExportResult> => {
      try {
        await (this.ready ??= mkdir(this.folder, { recursive: true }));
        await appendFile(join(this.folder, file), line);
        return { code: 'success', items, attempts: 1, rejected: 0 };
      } catch (e) {
        return { code: 'failure', items, attempts: 1, retryable: false, error: e as Error };
      }
    }));
    return write as Promise<ExportResult>;
  }
}
