/**
 * Turns one line of the store (an OTLP JSON request, as the FileExporter and OTLP ingest write
 * it) into the viewer's records. A line not shaped as the exporter writes it throws
 * {@link BadStoreLine}: the caller skips the whole line and counts it.
 *
 * Values keep what the line says: a 64-bit integer outside ±(2^53−1) becomes
 * `{ intValue: "<digits>" }` rather than a rounded number.
 */

/** An attribute value as the API sends it. `{ intValue }` is a 64-bit integer a double cannot hold. */
export type AttrValue = string | number | boolean | null | { intValue: string } | AttrValue[];
export type Attributes = Record<string, AttrValue>;

export interface ViewLink {
  traceId: string;
  spanId: string;
  attributes: Attributes;
}

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
  attributes: Attributes;
  events: Array<{ time: string; name: string; attributes: Attributes }>;
  links: ViewLink[];
  /** Index into the answer's `resources`: the resource that wrote the span. */
  resource: number;
  /** That resource's `service.name` ('' when it has none). */
  service: string;
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
  attributes: Attributes;
}

export interface ViewMetric {
  name: string;
  kind: string;
  /** The sum or last value; for a histogram, the sum of what it recorded. An int beyond 2^53 is `{ intValue }`. */
  value: number | { intValue: string };
  attributes: Attributes;
  time: string;
  /** A histogram's count and buckets: `buckets[i]` values were ≤ `bounds[i]` (the last, above every bound). */
  histogram?: { count: number; bounds: number[]; buckets: number[] };
}

/** The files of a store. */
export type StoreFile = 'traces.jsonl' | 'logs.jsonl' | 'metrics.jsonl';
export const STORE_FILES: readonly StoreFile[] = ['traces.jsonl', 'logs.jsonl', 'metrics.jsonl'];

/** The body of the log record the pipeline collector writes for a span still open at a step commit. */
export const SPAN_STARTED = 'span started';
/** Attributes of a `span started` record that describe the span rather than being its fields. */
const STARTED_NAME = 'sandtrace.span.name';
const STARTED_PARENT = 'sandtrace.span.parent_span_id';
const STARTED_TIME = 'sandtrace.span.start_time_unix_nano';

type Json = Record<string, any>;

/** A line of the store that is not what the exporter writes: skipped and counted, never fatal. */
export class BadStoreLine extends Error {
  override readonly name = 'BadStoreLine';
}

export const TRACE_ID = /^[0-9a-f]{32}$/;
const SPAN_ID = /^[0-9a-f]{16}$/;
const UNIX_NANO = /^\d{1,20}$/;
const INT64 = /^-?\d{1,20}$/;
const MAX_INT64 = (1n << 63n) - 1n;
const MIN_INT64 = -(1n << 63n);

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

/**
 * A unix ns time, its leading zeros dropped: times are compared as digit strings (longer is later,
 * trace-digest.ts `compareNs`), so `"0005"` kept as written would sort after `"10"`.
 */
function unixNano(v: unknown, what: string): string {
  return canonicalNs(matching(v, UNIX_NANO, what));
}
const canonicalNs = (digits: string) => digits.replace(/^0+(?=\d)/, '');

/** An id that may be absent (OTLP JSON writes none, or ''). */
function optionalId(v: unknown, pattern: RegExp, what: string): string | undefined {
  return v === undefined || v === '' ? undefined : matching(v, pattern, what);
}

/**
 * A 64-bit integer as the JSON mapping writes it (decimal string; some writers use a number):
 * a number when a double holds it exactly, else `{ intValue }` with its digits.
 */
export function int64(v: unknown, what: string): number | { intValue: string } {
  if (typeof v === 'number' && Number.isSafeInteger(v)) return v;
  if (typeof v !== 'string' || !INT64.test(v)) throw new BadStoreLine(`${what} is not a 64-bit integer`);
  const n = BigInt(v);
  if (n > MAX_INT64 || n < MIN_INT64) throw new BadStoreLine(`${what} is beyond 64 bits`);
  return n <= BigInt(Number.MAX_SAFE_INTEGER) && n >= -BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : { intValue: n.toString() };
}

function plain(v: unknown, depth = 0): AttrValue {
  if (v === undefined || v === null) return null;
  const o = object(v, 'an attribute value');
  // Each value checked for its type: a stringValue that is an object would reach the page as one
  // (an `{ intValue }` there would pass for an exact integer).
  if ('stringValue' in o) return text(o.stringValue, 'a string attribute');
  if ('intValue' in o) return int64(o.intValue, 'an int attribute');
  if ('doubleValue' in o) {
    if (typeof o.doubleValue !== 'number' && jsonDouble(o.doubleValue) === undefined) throw new BadStoreLine('a double attribute is not a number');
    return o.doubleValue;
  }
  if ('boolValue' in o) {
    if (typeof o.boolValue !== 'boolean') throw new BadStoreLine('a bool attribute is not a boolean');
    return o.boolValue;
  }
  if ('bytesValue' in o) return `base64:${text(o.bytesValue, 'a bytes attribute')}`;
  // Arrays are shown as arrays; nesting beyond a few levels (no exporter writes it) stays text.
  if ('arrayValue' in o && depth < 8) return list(object(o.arrayValue, 'an array value').values, 'array values').map((x) => plain(x, depth + 1));
  // JSON.stringify recurses: a value nested deeper than the stack (JSON.parse is not bounded so)
  // would throw a RangeError out of the whole refresh. No exporter nests anywhere near this deep.
  if (nestedDeeperThan(o, MAX_NESTING)) throw new BadStoreLine(`an attribute value is nested deeper than ${MAX_NESTING} levels`);
  return JSON.stringify(o);
}

const MAX_NESTING = 64;

/** Whether a parsed JSON value nests objects or arrays deeper than `max` (walked without recursion). */
function nestedDeeperThan(root: object, max: number): boolean {
  const stack: Array<[unknown, number]> = [[root, 1]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (typeof v !== 'object' || v === null) continue;
    if (depth > max) return true;
    for (const child of Object.values(v)) if (typeof child === 'object' && child !== null) stack.push([child, depth + 1]);
  }
  return false;
}

/**
 * Attribute keys come from guests: each becomes an own property by definition, not assignment,
 * so `__proto__` is an attribute like any other and no prototype changes.
 */
export function attrs(v: unknown): Attributes {
  const out: Attributes = {};
  for (const item of list(v, 'attributes')) {
    const a = object(item, 'an attribute');
    Object.defineProperty(out, text(a.key, 'an attribute key'), { value: plain(a.value), enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/** A double as the OTLP JSON mapping writes it: a number, or NaN and the infinities as strings. */
function jsonDouble(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  if (v === 'NaN' || v === 'Infinity' || v === '-Infinity') return Number(v);
  return undefined;
}

/**
 * The resources of what is read, each once: spans carry an index into `list`. Two resources with
 * the same attributes (in the same order) are one.
 */
export class Resources {
  readonly list: Attributes[] = [];
  private readonly seen = new Map<string, number>();

  add(attributes: Attributes): number {
    const key = JSON.stringify(attributes);
    let at = this.seen.get(key);
    if (at === undefined) {
      at = this.list.length;
      this.list.push(attributes);
      this.seen.set(key, at);
    }
    return at;
  }
}

/** The resource of a `resourceSpans`/`resourceLogs` entry: its attributes, and its service name. */
function resourceOf(r: Json): { attributes: Attributes; service: string } {
  const attributes = r.resource === undefined ? {} : attrs(object(r.resource, 'a resource').attributes);
  const name = attributes['service.name'];
  return { attributes, service: typeof name === 'string' ? name : '' };
}

/**
 * The spans of a traces.jsonl line, in the order written. With `only`, spans of other traces are
 * passed over (an open trace reads lines it shares with others, lines checked whole when indexed).
 */
export function readSpans(req: Json, out: ViewSpan[], resources: Resources, only?: string): void {
  for (const rsItem of list(req.resourceSpans, 'resourceSpans')) {
    const rs = object(rsItem, 'a resource');
    const { attributes: resourceAttributes, service } = resourceOf(rs);
    let resource = -1;
    for (const ssItem of list(rs.scopeSpans, 'scopeSpans')) {
      const ss = object(ssItem, 'a scope');
      const scope = ss.scope === undefined ? '' : String(object(ss.scope, 'a scope').name ?? '');
      for (const item of list(ss.spans, 'spans')) {
        const s = object(item, 'a span');
        const traceId = matching(s.traceId, TRACE_ID, 'a trace id');
        // An indexed line was checked whole when indexed: spans of other traces need no second look.
        if (only !== undefined && traceId !== only) continue;
        const start = unixNano(s.startTimeUnixNano, 'a start time');
        const end = unixNano(s.endTimeUnixNano, 'an end time');
        const status = s.status === undefined ? {} : object(s.status, 'a status');
        if (status.code !== undefined && typeof status.code !== 'number') throw new BadStoreLine('a status code is not a number');
        if (status.message !== undefined) text(status.message, 'a status message');
        const a = attrs(s.attributes);
        const span: ViewSpan = {
          traceId,
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
            return { time: unixNano(e.timeUnixNano, 'an event time'), name: text(e.name, 'an event name'), attributes: attrs(e.attributes) };
          }),
          links: list(s.links, 'links').map((item) => {
            const l = object(item, 'a link');
            return { traceId: matching(l.traceId, TRACE_ID, 'a link trace id'), spanId: matching(l.spanId, SPAN_ID, 'a link span id'), attributes: attrs(l.attributes) };
          }),
          resource: 0,
          service,
        };
        const parent = optionalId(s.parentSpanId, SPAN_ID, 'a parent span id');
        if (parent !== undefined) span.parentSpanId = parent;
        if (typeof a['sandtrace.execution.id'] === 'string') span.executionId = a['sandtrace.execution.id'];
        if (a['sandtrace.force_closed'] === true) span.forcedCause = String(a['sandtrace.termination.cause'] ?? 'unknown');
        if (resource < 0) resource = resources.add(resourceAttributes);
        span.resource = resource;
        out.push(span);
      }
    }
  }
}

/** A line of logs.jsonl yields ordinary logs and `span started` records, told apart on reading. */
export type LogLine<S extends ViewSpan = ViewSpan> = { log: ViewLog } | { started: S; identity: string };

/**
 * The running span a `span started` record describes, or undefined when the record is not one:
 * its body is `span started`, it names its span's trace and span ids, and `sandtrace.span.name`
 * is a string (guests cannot write `sandtrace.*` keys: the receiver renames them `guest.sandtrace.*`,
 * so a guest's own log with that body stays an ordinary log). A record that claims to be one but
 * has a malformed parent id or start time also stays an ordinary log, shown rather than guessed at.
 */
function spanStarted(log: ViewLog, scope: string, service: string): ViewSpan | undefined {
  const a = log.attributes;
  const name = a[STARTED_NAME];
  if (log.body !== SPAN_STARTED || log.traceId === undefined || log.spanId === undefined || typeof name !== 'string') return undefined;
  const parent = a[STARTED_PARENT];
  if (parent !== undefined && (typeof parent !== 'string' || !SPAN_ID.test(parent))) return undefined;
  const written = a[STARTED_TIME] ?? log.time;
  if (typeof written !== 'string' || !UNIX_NANO.test(written)) return undefined;
  const start = canonicalNs(written);
  const attributes: Attributes = {};
  for (const [k, v] of Object.entries(a)) {
    if (k !== STARTED_NAME && k !== STARTED_PARENT && k !== STARTED_TIME) Object.defineProperty(attributes, k, { value: v, enumerable: true, writable: true, configurable: true });
  }
  const span: ViewSpan = { traceId: log.traceId, spanId: log.spanId, name, scope, start, end: start, durationMs: 0, status: { code: 0 }, attributes, events: [], links: [], resource: 0, service, running: true };
  if (parent !== undefined) span.parentSpanId = parent;
  if (typeof attributes['sandtrace.execution.id'] === 'string') span.executionId = attributes['sandtrace.execution.id'];
  return span;
}

/** The records of a logs.jsonl line; with `only`, those of other traces (and of none) are passed over. */
export function readLogs(req: Json, out: LogLine[], resources: Resources, only?: string): void {
  for (const rlItem of list(req.resourceLogs, 'resourceLogs')) {
    const rl = object(rlItem, 'a resource');
    const { attributes: resourceAttributes, service } = resourceOf(rl);
    for (const slItem of list(rl.scopeLogs, 'scopeLogs')) {
      const sl = object(slItem, 'a scope');
      const scope = sl.scope === undefined ? '' : String(object(sl.scope, 'a scope').name ?? '');
      for (const item of list(sl.logRecords, 'logRecords')) {
        const l = object(item, 'a log record');
        if (only !== undefined && l.traceId !== only) continue;
        const body = plain(l.body);
        const log: ViewLog = {
          time: unixNano(l.timeUnixNano, 'a log time'),
          severity: l.severityText === undefined ? '' : text(l.severityText, 'a severity'),
          body: body === null ? '' : textOf(body),
          attributes: attrs(l.attributes),
        };
        const traceId = optionalId(l.traceId, TRACE_ID, 'a trace id');
        const spanId = optionalId(l.spanId, SPAN_ID, 'a span id');
        if (traceId !== undefined) log.traceId = traceId;
        if (spanId !== undefined) log.spanId = spanId;
        const started = spanStarted(log, scope, service);
        if (started !== undefined) {
          started.resource = resources.add(resourceAttributes);
          // Identical records of one open span (a replayed step, or a commit that changed none of its fields) are one.
          out.push({ started, identity: JSON.stringify([scope, log.time, log.severity, log.attributes]) });
        } else out.push({ log });
      }
    }
  }
}

export function readMetrics(req: Json, out: ViewMetric[]): void {
  for (const rm of list(req.resourceMetrics, 'resourceMetrics')) {
    for (const sm of list(object(rm, 'a resource').scopeMetrics, 'scopeMetrics')) {
      for (const item of list(object(sm, 'a scope').metrics, 'metrics')) {
        const m = object(item, 'a metric');
        const kind = m.sum ? 'sum' : m.gauge ? 'gauge' : 'histogram';
        const data = object(m.sum ?? m.gauge ?? m.histogram, 'metric data');
        for (const pointItem of list(data.dataPoints, 'dataPoints')) {
          const p = object(pointItem, 'a data point');
          const value = p.asDouble !== undefined ? jsonDouble(p.asDouble) : p.sum !== undefined ? jsonDouble(p.sum) : p.asInt !== undefined ? int64(p.asInt, 'an int metric value') : 0;
          if (value === undefined) throw new BadStoreLine('a metric value is not a number');
          const metric: ViewMetric = { name: text(m.name, 'a metric name'), kind, value, attributes: attrs(p.attributes), time: unixNano(p.timeUnixNano, 'a point time') };
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

/**
 * An attribute value's text form, as filters compare it: strings as they are, exact integers as
 * their digits, anything else as JSON.
 */
export function textOf(v: AttrValue): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v.intValue;
  return JSON.stringify(v);
}

/** Parses a line of the store as JSON, or says why not (a {@link BadStoreLine}). */
export function parseLine(line: string): Json {
  let json: unknown;
  try {
    json = JSON.parse(line);
  } catch (e) {
    if (!(e instanceof SyntaxError)) throw e;
    throw new BadStoreLine(`not JSON: ${e.message}`);
  }
  return object(json, 'a line');
}

/**
 * Why the reader would skip this line of `file` (undefined when it reads it): what OTLP ingest
 * checks before it appends a request to the store, so nothing it stores is skipped later.
 */
export function checkStoreLine(file: StoreFile, line: unknown): string | undefined {
  try {
    const json = object(line, 'a line');
    if (file === 'traces.jsonl') readSpans(json, [], new Resources());
    else if (file === 'logs.jsonl') readLogs(json, [], new Resources());
    else readMetrics(json, []);
    return undefined;
  } catch (e) {
    if (!(e instanceof BadStoreLine)) throw e;
    return e.message;
  }
}
