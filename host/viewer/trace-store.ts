/**
 * Reads a local store (OTLP JSON lines: traces.jsonl, logs.jsonl, metrics.jsonl) into traces for
 * the viewer. The store is re-read on every request, so a running viewer sees new runs.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface ViewSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  scope: string;
  /** Unix ns as decimal strings (beyond 2^53), and the duration in ms. */
  start: string;
  end: string;
  durationMs: number;
  status: { code: number; message?: string };
  attributes: Record<string, unknown>;
  events: Array<{ time: string; name: string; attributes: Record<string, unknown> }>;
  executionId?: string;
  /** The termination cause when the host force-closed the span. */
  forcedCause?: string;
}

export interface ViewLog {
  time: string;
  severity: string;
  body: string;
  traceId?: string;
  spanId?: string;
  attributes: Record<string, unknown>;
}

export interface ViewMetric {
  name: string;
  kind: string;
  value: number;
  attributes: Record<string, unknown>;
  time: string;
}

export interface TraceSummary {
  traceId: string;
  root: string;
  start: string;
  durationMs: number;
  spans: number;
  errors: number;
  forced: string[];
  executionIds: string[];
}

type Json = Record<string, any>;

/** A line of the store that is not what the exporter writes: skipped and counted, never fatal. */
class BadStoreLine extends Error {
  override readonly name = 'BadStoreLine';
}

const TRACE_ID = /^[0-9a-f]{32}$/;
const SPAN_ID = /^[0-9a-f]{16}$/;
const UNIX_NANO = /^\d{1,20}$/;

function object(v: unknown, what: string): Json {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new BadStoreLine(`${what} is not an object`);
  return v as Json;
}

function list(v: unknown, what: string): unknown[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw new BadStoreLine(`${what} is not a list`);
  return v;
}

function text(v: unknown, what: string): string {
  if (typeof v !== 'string') throw new BadStoreLine(`${what} is not a string`);
  return v;
}

function matching(v: unknown, pattern: RegExp, what: string): string {
  if (typeof v !== 'string' || !pattern.test(v)) throw new BadStoreLine(`${what} is not well formed`);
  return v;
}

/** An id that may be absent (OTLP JSON writes none, or ''). */
function optionalId(v: unknown, pattern: RegExp, what: string): string | undefined {
  return v === undefined || v === '' ? undefined : matching(v, pattern, what);
}

function plain(v: unknown): unknown {
  if (v === undefined || v === null) return null;
  const o = object(v, 'an attribute value');
  if ('stringValue' in o) return o.stringValue;
  if ('intValue' in o) return Number(o.intValue);
  if ('doubleValue' in o) return o.doubleValue;
  if ('boolValue' in o) return o.boolValue;
  if ('bytesValue' in o) return `base64:${o.bytesValue}`;
  return JSON.stringify(o);
}

/**
 * Attribute keys come from guests: each becomes an own property by definition, not assignment,
 * so `__proto__` is an attribute like any other and no prototype changes.
 */
function attrs(v: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const item of list(v, 'attributes')) {
    const a = object(item, 'an attribute');
    Object.defineProperty(out, text(a.key, 'an attribute key'), { value: plain(a.value), enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/** What one store file holds: its records, and how many of its lines were skipped as bad. */
interface FileLines<T> {
  records: T[];
  skipped: number;
}

/**
 * Reads one file of the store, line by line, turning each line into records with `read`. A line
 * that is not JSON, or not shaped as the exporter writes it, is skipped whole and counted (a torn
 * last line, from a writer still appending, counts too).
 */
async function readLines<T>(folder: string, file: string, read: (line: Json, out: T[]) => void): Promise<FileLines<T>> {
  let content: string;
  try {
    content = await readFile(join(folder, file), 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { records: [], skipped: 0 };
    throw e;
  }
  const records: T[] = [];
  let skipped = 0;
  for (const line of content.split('\n')) {
    if (line.trim() === '') continue;
    const fromLine: T[] = [];
    try {
      read(object(JSON.parse(line), 'a line'), fromLine);
    } catch (e) {
      if (!(e instanceof SyntaxError || e instanceof BadStoreLine)) throw e;
      skipped++;
      continue;
    }
    for (const r of fromLine) records.push(r);
  }
  return { records, skipped };
}

function readSpans(req: Json, out: ViewSpan[]): void {
  for (const rs of list(req.resourceSpans, 'resourceSpans')) {
    for (const ssItem of list(object(rs, 'a resource').scopeSpans, 'scopeSpans')) {
      const ss = object(ssItem, 'a scope');
      const scope = ss.scope === undefined ? '' : String(object(ss.scope, 'a scope').name ?? '');
      for (const item of list(ss.spans, 'spans')) {
        const s = object(item, 'a span');
        const start = matching(s.startTimeUnixNano, UNIX_NANO, 'a start time');
        const end = matching(s.endTimeUnixNano, UNIX_NANO, 'an end time');
        const status = s.status === undefined ? {} : object(s.status, 'a status');
        if (status.code !== undefined && typeof status.code !== 'number') throw new BadStoreLine('a status code is not a number');
        if (status.message !== undefined) text(status.message, 'a status message');
        const a = attrs(s.attributes);
        const span: ViewSpan = {
          traceId: matching(s.traceId, TRACE_ID, 'a trace id'),
          spanId: matching(s.spanId, SPAN_ID, 'a span id'),
          name: text(s.name, 'a span name'),
          scope,
          start,
          end,
          durationMs: Number(BigInt(end) - BigInt(start)) / 1e6,
          status: { code: status.code ?? 0, ...(status.message && { message: status.message }) },
          attributes: a,
          events: list(s.events, 'events').map((item) => {
            const e = object(item, 'an event');
            return { time: matching(e.timeUnixNano, UNIX_NANO, 'an event time'), name: text(e.name, 'an event name'), attributes: attrs(e.attributes) };
          }),
        };
        const parent = optionalId(s.parentSpanId, SPAN_ID, 'a parent span id');
        if (parent !== undefined) span.parentSpanId = parent;
        if (typeof a['sandtrace.execution.id'] === 'string') span.executionId = a['sandtrace.execution.id'];
        if (a['sandtrace.force_closed'] === true) span.forcedCause = String(a['sandtrace.termination.cause'] ?? 'unknown');
        out.push(span);
      }
    }
  }
}

function readLogs(req: Json, out: ViewLog[]): void {
  for (const rl of list(req.resourceLogs, 'resourceLogs')) {
    for (const sl of list(object(rl, 'a resource').scopeLogs, 'scopeLogs')) {
      for (const item of list(object(sl, 'a scope').logRecords, 'logRecords')) {
        const l = object(item, 'a log record');
        const log: ViewLog = {
          time: matching(l.timeUnixNano, UNIX_NANO, 'a log time'),
          severity: l.severityText === undefined ? '' : text(l.severityText, 'a severity'),
          body: String(plain(l.body) ?? ''),
          attributes: attrs(l.attributes),
        };
        const traceId = optionalId(l.traceId, TRACE_ID, 'a trace id');
        const spanId = optionalId(l.spanId, SPAN_ID, 'a span id');
        if (traceId !== undefined) log.traceId = traceId;
        if (spanId !== undefined) log.spanId = spanId;
        out.push(log);
      }
    }
  }
}

function readMetrics(req: Json, out: ViewMetric[]): void {
  for (const rm of list(req.resourceMetrics, 'resourceMetrics')) {
    for (const sm of list(object(rm, 'a resource').scopeMetrics, 'scopeMetrics')) {
      for (const item of list(object(sm, 'a scope').metrics, 'metrics')) {
        const m = object(item, 'a metric');
        const kind = m.sum ? 'sum' : m.gauge ? 'gauge' : 'histogram';
        const data = object(m.sum ?? m.gauge ?? m.histogram, 'metric data');
        for (const pointItem of list(data.dataPoints, 'dataPoints')) {
          const p = object(pointItem, 'a data point');
          const value = p.asDouble ?? p.sum ?? (p.asInt !== undefined ? Number(p.asInt) : 0);
          if (typeof value !== 'number') throw new BadStoreLine('a metric value is not a number');
          out.push({ name: text(m.name, 'a metric name'), kind, value, attributes: attrs(p.attributes), time: matching(p.timeUnixNano, UNIX_NANO, 'a point time') });
        }
      }
    }
  }
}

export interface Store {
  spans: ViewSpan[];
  logs: ViewLog[];
  metrics: ViewMetric[];
  /** Lines of each file skipped because they were not JSON or not shaped as the exporter writes them. */
  skippedLines: { traces: number; logs: number; metrics: number };
}

export async function loadStore(folder: string): Promise<Store> {
  const traces = await readLines(folder, 'traces.jsonl', readSpans);
  const logs = await readLines(folder, 'logs.jsonl', readLogs);
  const metrics = await readLines(folder, 'metrics.jsonl', readMetrics);
  return {
    spans: traces.records,
    logs: logs.records,
    metrics: metrics.records,
    skippedLines: { traces: traces.skipped, logs: logs.skipped, metrics: metrics.skipped },
  };
}

export function summarize(spans: readonly ViewSpan[]): TraceSummary[] {
  const byTrace = new Map<string, ViewSpan[]>();
  for (const s of spans) (byTrace.get(s.traceId) ?? byTrace.set(s.traceId, []).get(s.traceId)!).push(s);
  const out: TraceSummary[] = [];
  for (const [traceId, group] of byTrace) {
    const ids = new Set(group.map((s) => s.spanId));
    const roots = group.filter((s) => s.parentSpanId === undefined || !ids.has(s.parentSpanId));
    const start = group.reduce((m, s) => (BigInt(s.start) < BigInt(m) ? s.start : m), group[0]!.start);
    const end = group.reduce((m, s) => (BigInt(s.end) > BigInt(m) ? s.end : m), group[0]!.end);
    // Every run's root is its execution span: name the trace by the guest's own root span and source.
    const root = roots[0] ?? group[0]!;
    const guestRoot = root.name === 'sandtrace.execution' ? group.find((s) => s.parentSpanId === root.spanId) : undefined;
    const source = root.attributes['guest.source'];
    out.push({
      traceId,
      root: guestRoot !== undefined ? `${guestRoot.name}${typeof source === 'string' ? ` · ${source}` : ''}` : root.name,
      start,
      durationMs: Number(BigInt(end) - BigInt(start)) / 1e6,
      spans: group.length,
      errors: group.filter((s) => s.status.code === 2).length,
      forced: [...new Set(group.flatMap((s) => (s.forcedCause ? [s.forcedCause] : [])))],
      executionIds: [...new Set(group.flatMap((s) => (s.executionId ? [s.executionId] : [])))],
    });
  }
  return out.sort((a, b) => (BigInt(a.start) > BigInt(b.start) ? -1 : 1));
}
