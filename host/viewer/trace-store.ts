/**
 * Reads a local store (OTLP JSON lines: traces.jsonl, logs.jsonl, metrics.jsonl) into traces for
 * the viewer. The store is re-read on every request, so a running viewer sees new runs.
 *
 * Durable workflows add two things to a store. A step that commits with spans still open leaves
 * a `span started` log record per open span (see {@link SPAN_STARTED}): until the span itself is
 * written, the reader shows it as a running span, from its start to the time the store was read.
 * A step that is replayed re-emits the same span ids: the reader keeps one span per
 * (trace id, span id) and counts the others.
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
  /**
   * Set when the store holds only `span started` records for this span: it is still open (its
   * workflow is between steps, or running). Its `end` and `durationMs` are the time the store was
   * read, its status unset, and it has no events.
   */
  running?: true;
  /**
   * How many further records of this same span the reader dropped, when there were any: span
   * records with the same trace and span id (a replayed step), or for a running span identical
   * `span started` records (one per step commit, or a replay).
   */
  duplicates?: number;
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
  /** The sum or last value; for a histogram, the sum of what it recorded. */
  value: number;
  attributes: Record<string, unknown>;
  time: string;
  /** A histogram's count and buckets: `buckets[i]` values were ≤ `bounds[i]` (the last, above every bound). */
  histogram?: { count: number; bounds: number[]; buckets: number[] };
}

/** A double as the OTLP JSON mapping writes it: a number, or NaN and the infinities as strings. */
function jsonDouble(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  if (v === 'NaN' || v === 'Infinity' || v === '-Infinity') return Number(v);
  return undefined;
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
  /** Spans of the trace still running (only a `span started` record): the trace is in progress. */
  running: number;
  /** Span records dropped because a span with the same ids was already written (replayed steps). */
  duplicateSpans: number;
}

/** The body of the log record the pipeline collector writes for a span still open at a step commit. */
export const SPAN_STARTED = 'span started';
/** Attributes of a `span started` record that describe the span rather than being its fields. */
const STARTED_NAME = 'sandtrace.span.name';
const STARTED_PARENT = 'sandtrace.span.parent_span_id';
const STARTED_TIME = 'sandtrace.span.start_time_unix_nano';

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

/** A line of logs.jsonl yields ordinary logs and `span started` records, told apart on reading. */
type LogLine = { log: ViewLog } | { started: ViewSpan; identity: string };

/**
 * The running span a `span started` record describes, or undefined when the record is not one:
 * its body is `span started`, it names its span's trace and span ids, and `sandtrace.span.name`
 * is a string (guests cannot write `sandtrace.*` keys: the receiver renames them `guest.sandtrace.*`,
 * so a guest's own log with that body stays an ordinary log). A record that claims to be one but
 * has a malformed parent id or start time also stays an ordinary log, shown rather than guessed at.
 */
function spanStarted(log: ViewLog, scope: string): ViewSpan | undefined {
  const a = log.attributes;
  const name = a[STARTED_NAME];
  if (log.body !== SPAN_STARTED || log.traceId === undefined || log.spanId === undefined || typeof name !== 'string') return undefined;
  const parent = a[STARTED_PARENT];
  if (parent !== undefined && (typeof parent !== 'string' || !SPAN_ID.test(parent))) return undefined;
  const start = a[STARTED_TIME] ?? log.time;
  if (typeof start !== 'string' || !UNIX_NANO.test(start)) return undefined;
  const attributes: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(a)) {
    if (k !== STARTED_NAME && k !== STARTED_PARENT && k !== STARTED_TIME) Object.defineProperty(attributes, k, { value: v, enumerable: true, writable: true, configurable: true });
  }
  const span: ViewSpan = { traceId: log.traceId, spanId: log.spanId, name, scope, start, end: start, durationMs: 0, status: { code: 0 }, attributes, events: [], running: true };
  if (parent !== undefined) span.parentSpanId = parent;
  if (typeof attributes['sandtrace.execution.id'] === 'string') span.executionId = attributes['sandtrace.execution.id'];
  return span;
}

function readLogs(req: Json, out: LogLine[]): void {
  for (const rl of list(req.resourceLogs, 'resourceLogs')) {
    for (const slItem of list(object(rl, 'a resource').scopeLogs, 'scopeLogs')) {
      const sl = object(slItem, 'a scope');
      const scope = sl.scope === undefined ? '' : String(object(sl.scope, 'a scope').name ?? '');
      for (const item of list(sl.logRecords, 'logRecords')) {
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
        const started = spanStarted(log, scope);
        // Identical records of one open span (a replayed step, or a commit that changed none of its fields) are one.
        if (started !== undefined) out.push({ started, identity: JSON.stringify([scope, log.time, log.severity, log.attributes]) });
        else out.push({ log });
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
          const value = p.asDouble !== undefined ? jsonDouble(p.asDouble) : p.sum !== undefined ? jsonDouble(p.sum) : p.asInt !== undefined ? Number(p.asInt) : 0;
          if (value === undefined) throw new BadStoreLine('a metric value is not a number');
          const metric: ViewMetric = { name: text(m.name, 'a metric name'), kind, value, attributes: attrs(p.attributes), time: matching(p.timeUnixNano, UNIX_NANO, 'a point time') };
          if (kind === 'histogram') {
            const bounds = list(p.explicitBounds ?? [], 'explicitBounds').map((b) => jsonDouble(b) ?? NaN);
            const buckets = list(p.bucketCounts ?? [], 'bucketCounts').map((c) => Number(c));
            if (bounds.some(Number.isNaN) || buckets.some((c) => !Number.isSafeInteger(c) || c < 0) || buckets.length !== bounds.length + 1) throw new BadStoreLine('histogram buckets do not match their bounds');
            metric.histogram = { count: Number(p.count ?? 0), bounds, buckets };
          }
          out.push(metric);
        }
      }
    }
  }
}

/** The files of a store. */
export type StoreFile = 'traces.jsonl' | 'logs.jsonl' | 'metrics.jsonl';

/**
 * Why the reader would skip this line of `file` (undefined when it reads it): what OTLP ingest
 * checks before it appends a request to the store, so nothing it stores is skipped later.
 */
export function checkStoreLine(file: StoreFile, line: unknown): string | undefined {
  try {
    const json = object(line, 'a line');
    if (file === 'traces.jsonl') readSpans(json, []);
    else if (file === 'logs.jsonl') readLogs(json, []);
    else readMetrics(json, []);
    return undefined;
  } catch (e) {
    if (!(e instanceof BadStoreLine)) throw e;
    return e.message;
  }
}

export interface Store {
  /** One per (trace id, span id): the spans written, then the running ones (only `span started` records). */
  spans: ViewSpan[];
  /** Ordinary logs: `span started` records are not among them, they become running spans or nothing. */
  logs: ViewLog[];
  metrics: ViewMetric[];
  /** Lines of each file skipped because they were not JSON or not shaped as the exporter writes them. */
  skippedLines: { traces: number; logs: number; metrics: number };
  /**
   * Records dropped as duplicates: span records whose ids were already written (a replayed step),
   * and `span started` records identical to one already read (including those of spans now closed).
   */
  duplicates: { spans: number; spanStarts: number };
  /** The time the store was read (unix ns, decimal): where running spans end. */
  readAt: string;
}

/**
 * @param options.now the time the store is read, unix ns (by default the clock's): running spans end there.
 */
export async function loadStore(folder: string, options: { now?: bigint } = {}): Promise<Store> {
  const now = options.now ?? BigInt(Date.now()) * 1_000_000n;
  const traces = await readLines(folder, 'traces.jsonl', readSpans);
  const logs = await readLines(folder, 'logs.jsonl', readLogs);
  const metrics = await readLines(folder, 'metrics.jsonl', readMetrics);

  // One record per span id. A replayed step re-emits the ids of the spans an earlier run already
  // exported: the same span, written again. The first record is kept, so a later write never
  // changes a trace already shown, with one exception: a record the host force-closed (the attempt
  // died, or did not commit) gives way to a later one that ended normally, since the replay that
  // finished is what happened. The count (×N on the span) says there were other records.
  const spans: ViewSpan[] = [];
  const byId = new Map<string, number>();
  let duplicateSpans = 0;
  for (const s of traces.records) {
    const key = s.traceId + s.spanId;
    const at = byId.get(key);
    if (at === undefined) {
      byId.set(key, spans.length);
      spans.push(s);
      continue;
    }
    const kept = spans[at]!;
    duplicateSpans++;
    const count = (kept.duplicates ?? 0) + 1;
    if (kept.forcedCause !== undefined && s.forcedCause === undefined) spans[at] = s;
    spans[at]!.duplicates = count;
  }

  const ordinary: ViewLog[] = [];
  const started = new Map<string, { span: ViewSpan; identities: Set<string>; duplicates: number }>();
  let duplicateStarts = 0;
  for (const r of logs.records) {
    if ('log' in r) {
      ordinary.push(r.log);
      continue;
    }
    const key = r.started.traceId + r.started.spanId;
    const seen = started.get(key);
    if (seen === undefined) {
      started.set(key, { span: r.started, identities: new Set([r.identity]), duplicates: 0 });
    } else if (seen.identities.has(r.identity)) {
      seen.duplicates++;
      duplicateStarts++;
    } else {
      // A later commit of the same open span: its fields as they are now replace the earlier ones.
      seen.identities.add(r.identity);
      seen.span = r.started;
    }
  }
  for (const [key, { span, duplicates }] of started) {
    if (byId.has(key)) continue; // the span closed: the span record wins
    span.end = now > BigInt(span.start) ? now.toString() : span.start;
    span.durationMs = Number(BigInt(span.end) - BigInt(span.start)) / 1e6;
    if (duplicates > 0) span.duplicates = duplicates;
    spans.push(span);
  }

  return {
    spans,
    logs: ordinary,
    metrics: metrics.records,
    skippedLines: { traces: traces.skipped, logs: logs.skipped, metrics: metrics.skipped },
    duplicates: { spans: duplicateSpans, spanStarts: duplicateStarts },
    readAt: now.toString(),
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
      running: group.filter((s) => s.running).length,
      duplicateSpans: group.reduce((n, s) => n + (s.running ? 0 : (s.duplicates ?? 0)), 0),
    });
  }
  return out.sort((a, b) => (BigInt(a.start) > BigInt(b.start) ? -1 : 1));
}
