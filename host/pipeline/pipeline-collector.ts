/**
 * A collector that turns the receiver's callbacks into completed records — spans with OTLP trace
 * and span ids, log records, metric points — and hands each to typed handlers. It is the start of
 * the export pipeline (handlers → batching manager → OTLP exporter), and the API for hosts that
 * build their own.
 */
import type { ErrorValue, Value, Values } from '../../shared/records.js';
import type { Collector, EventInfo, ForcedClose, MetricInfo, NewSpanInfo, RestoreSpanInfo, SpanSnapshot } from '../collectors/collector.js';
import { SpanIdKey, traceIdFor } from './span-ids.js';
import { isSnapshotRecord, linksProblem, spanContextProblem, spanEventsProblem } from '../collectors/snapshot-shape.js';
import type { ExecutionSummary } from '../collectors/execution-summary.js';
import { describeException, formatError, formatValue, messageText } from '../collectors/format-value.js';
import { assignValues, isEmptyValue, isErrorValue } from '../../shared/values.js';
import { LevelFilteredCollector } from '../collectors/level-filter.js';
import { NewestOutsideMap } from '../receiver/newest-outside-map.js';
import type { Level } from '../../shared/records.js';
import { SEVERITY, type LogRecord, type MetricPoint, type SpanEventRecord, type SpanLink, type SpanRecord } from './telemetry-records.js';

/**
 * Callbacks for completed telemetry; every record carries its execution id. A span handed over
 * has its own attributes, events and links arrays and status object: a handler may change them.
 * Attribute arrays inside events and logs, and attribute pairs (`[key, value]`), may be shared
 * with other records and collectors (an event's attributes with its log record and the receiver,
 * the `sandtrace.execution.id` pair by the spans of one execution): replace them, do not change
 * them in place.
 *
 * @example
 * const collector = new PipelineCollector({ handlers: {
 *   onSpan: (s) => console.log(s.name, s.end - s.start),
 *   onExecutionFinished: (e) => console.log(e.executionId, e.cause ?? 'ok'),
 * } });
 * await runQuickJS(source, { collector });
 */
export interface TelemetryHandlers {
  onSpan?(span: SpanRecord): void;
  onLog?(log: LogRecord): void;
  onMetric?(point: MetricPoint): void;
  onExecutionFinished?(summary: ExecutionSummary): void;
}

export interface PipelineOptions {
  handlers: TelemetryHandlers;
  /** Most verbose level collected (default: trace). */
  level?: Level;
  /**
   * Where guest events go: `span-events` (default, as the OpenTelemetry conventions have it:
   * events inside a span are span events, events outside spans are log records), `logs` (every
   * event a log record, with its span's trace context), or `both` (inside spans, each event twice:
   * a span event and a log record, at the cost of twice the requests).
   */
  eventsAs?: 'logs' | 'span-events' | 'both';
  /** Span events kept per span; more are counted as dropped (default 128). */
  maxEventsPerSpan?: number;
}

interface LiveSpan {
  record: SpanRecord;
  /** Field values by name, in declaration order (recorded values replace earlier ones). */
  values: Values;
  /** `values` is this collector's own copy (the receiver's array is copied on the first record). */
  owned: boolean;
}

/** Snapshot kept across executions (plain JSON). */
interface PipelineSnapshot {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  traceFlags: number;
  links: Array<{ traceId: string; spanId: string; traceFlags: number; remote?: true }>;
  parentRemote?: true;
  events: Array<{ time: string; name: string; attributes: Array<[string, string | number | boolean]> }>;
}

/** Random bytes fetched at once for ids (one call to the OS generator per 2,700 root spans). */
const ID_POOL = 64 * 1024;
const EMPTY_POOL = new Uint8Array(0);
const EMPTY_WORDS = new Uint32Array(0);
/**
 * What a new span starts with, shared instead of allocated per span (about 100 bytes of young
 * garbage each): frozen, and replaced, never changed, when the span gets its own (its first
 * link or event, and its attributes at its end). A span handed to onSpan never carries them.
 */
const NO_ATTRIBUTES: Values = Object.freeze([]) as unknown as Values;
const NO_EVENTS: SpanEventRecord[] = Object.freeze([]) as unknown as SpanEventRecord[];
const NO_LINKS: SpanLink[] = Object.freeze([]) as unknown as SpanLink[];
const UNSET: SpanRecord['status'] = Object.freeze({ code: 'unset' });
/** This collector's key in a span snapshot. */
const SNAPSHOT_KEY = 'pipeline';
/** Body of the log record that reports a span still open when its execution commits. */
export const SPAN_STARTED = 'span started';

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export class PipelineCollector extends LevelFilteredCollector implements Collector {
  /** enter and exit do nothing here: the receiver need not call them (nor make their timestamps). */
  readonly wantsEnterExit = false;
  private readonly handlers: TelemetryHandlers;
  private readonly spanEvents: boolean;
  private readonly eventLogs: boolean;
  private readonly maxEvents: number;
  private readonly live = new NewestOutsideMap<LiveSpan>();
  /** The span created or looked up last, and its id (0: none): its event and close come next. */
  private lastId = 0;
  private lastSpan: LiveSpan | undefined = undefined;
  private nextId = 1;
  /** Filled on the first random id (a collector that only derives ids never holds it). */
  private pool = EMPTY_POOL;
  /** The pool as 32-bit words (for the all-zero check). */
  private poolWords = EMPTY_WORDS;
  private poolPos = ID_POOL;
  /** The execution id attribute of the span closed last (see executionAttribute). */
  private executionPair: [string, Value] | undefined = undefined;
  /** Id derivation key of the execution seen last (spans of one execution come together). */
  private idKey: SpanIdKey | undefined;

  constructor(options: PipelineOptions) {
    super(options.level);
    this.handlers = options.handlers;
    const mode = options.eventsAs ?? 'span-events';
    this.spanEvents = mode !== 'logs';
    this.eventLogs = mode !== 'span-events';
    this.maxEvents = options.maxEventsPerSpan ?? 128;
  }

  /** Spans open in this collector (created or restored, not yet closed). */
  get openSpans(): number {
    return this.live.size;
  }

  newSpan(info: NewSpanInfo): number {
    const parent = typeof info.parent === 'number' ? this.find(info.parent)?.record : undefined;
    const remote = parent === undefined ? info.remoteParent : undefined;
    const traceId = parent?.traceId ?? (remote !== undefined ? hexBytes(remote.traceId) : this.rootTraceId(info.executionId, info.guestSpanId));
    const record: SpanRecord = {
      traceId,
      spanId: this.spanIdFor(traceId, info.executionId, info.guestSpanId),
      parentSpanId: parent?.spanId ?? (remote !== undefined ? hexBytes(remote.spanId) : undefined),
      parentRemote: parent === undefined && remote !== undefined,
      traceFlags: parent?.traceFlags ?? remote?.traceFlags ?? 1,
      name: info.meta.name,
      scope: info.meta.target,
      start: info.time,
      end: info.time,
      attributes: NO_ATTRIBUTES,
      events: NO_EVENTS,
      links: info.links === undefined ? NO_LINKS : info.links.map((l) => ({ traceId: hexBytes(l.traceId), spanId: hexBytes(l.spanId), traceFlags: l.traceFlags, remote: true })),
      status: UNSET,
      executionId: info.executionId,
      forced: undefined,
      droppedEvents: 0,
    };
    const id = this.nextId++;
    const span: LiveSpan = { record, values: info.values, owned: false };
    this.live.set(id, span);
    this.lastId = id;
    this.lastSpan = span;
    return id;
  }

  record(id: number, values: Values): void {
    const span = this.find(id);
    if (span === undefined) return;
    if (!span.owned) {
      span.values = span.values.slice();
      span.owned = true;
    }
    assignValues(span.values, values);
  }

  recordFollowsFrom(id: number, follows: number): void {
    const span = this.find(id)?.record;
    const from = this.find(follows)?.record;
    if (span === undefined || from === undefined) return;
    const link: SpanLink = { traceId: from.traceId, spanId: from.spanId, traceFlags: from.traceFlags };
    if (span.links.length === 0) span.links = [link];
    else span.links.push(link);
  }

  event(info: EventInfo): void {
    const span = typeof info.parent === 'number' ? this.find(info.parent)?.record : undefined;
    // splitMessage, inline: no result object per event.
    let message: string | undefined;
    const values = info.values;
    let kept = 0;
    for (let i = 0; i < values.length; i++) {
      const pair = values[i]!;
      if (pair[0] === 'message') message = messageText(pair[1]);
      else if (!isEmptyValue(pair[1])) kept++;
    }
    // An array of exactly its items (a span waits in the export queue, and an array grown by push
    // holds 17 slots). When every value is kept, the receiver's array is it (as newSpan keeps the
    // span's values: they are replaced, never changed in place).
    let attributes = values;
    if (kept !== values.length) {
      attributes = new Array(kept);
      for (let i = 0, k = 0; k < kept; i++) {
        const pair = values[i]!;
        if (pair[0] !== 'message' && !isEmptyValue(pair[1])) attributes[k++] = pair;
      }
    }
    const body = message ?? info.meta.name;
    if (span !== undefined && this.spanEvents) {
      const events = span.events;
      if (events.length >= this.maxEvents) span.droppedEvents++;
      else {
        const event: SpanEventRecord = { time: info.time, name: body, attributes };
        // The first event in an array of one: a span waits in the export queue, and an array grown by push holds 17 slots.
        if (events.length === 0) span.events = [event];
        else events.push(event);
      }
    }
    if (this.eventLogs || span === undefined) {
      this.handlers.onLog?.({
        time: info.time,
        level: info.meta.level,
        severityNumber: SEVERITY[info.meta.level],
        body,
        attributes,
        scope: info.meta.target,
        traceId: span?.traceId,
        spanId: span?.spanId,
        traceFlags: span?.traceFlags ?? 0,
        executionId: info.executionId,
      });
    }
  }

  metric(m: MetricInfo): void {
    this.handlers.onMetric?.({ name: m.name, instrument: m.instrument, value: m.value, attributes: m.attributes, time: m.time, executionId: m.executionId });
  }

  enter(): void {}
  exit(): void {}
  cloneSpan(id: number): number {
    return id;
  }

  tryClose(id: number, time: bigint, forced?: ForcedClose): boolean {
    const span = this.find(id);
    if (span === undefined) return false;
    this.forget(id);
    const record = span.record;
    record.end = time;
    const values = span.values;
    let kept = record.attributes.length + (record.executionId !== undefined ? 1 : 0) + (forced !== undefined ? 2 : 0);
    for (let i = 0; i < values.length; i++) {
      const pair = values[i]!;
      if (!isEmptyValue(pair[1]) && !(pair[0] === 'error' && isErrorValue(pair[1]))) kept++;
    }
    // An array of exactly its items, counted first (as the event's attributes above).
    const attributes: Values = new Array(kept);
    let k = 0;
    const own = record.attributes;
    for (let i = 0; i < own.length; i++) attributes[k++] = own[i]!;
    for (let i = 0; i < values.length; i++) {
      const pair = values[i]!;
      const value = pair[1];
      if (isEmptyValue(value)) continue;
      if (pair[0] === 'error' && isErrorValue(value)) {
        // Per the semantic conventions: an `exception` span event and the status description, not an attribute.
        record.status = { code: 'error', message: formatError(value.error) };
        const exception = exceptionEvent(value.error, time);
        if (record.events.length === 0) record.events = [exception];
        else record.events.push(exception);
        continue;
      }
      attributes[k++] = pair; // values are replaced pair by pair, never changed in place: the pair itself is the attribute
    }
    if (record.executionId !== undefined) attributes[k++] = this.executionAttribute(record.executionId);
    if (forced !== undefined) {
      record.forced = forced;
      record.status = { code: 'error', message: forced.message };
      attributes[k++] = ['sandtrace.force_closed', true];
      attributes[k++] = ['sandtrace.termination.cause', forced.cause];
    }
    record.attributes = attributes;
    // The span goes to a handler, whose it is to change (the handlers are the API for a pipeline of
    // one's own): it must not carry the shared frozen empties, or a handler's push or status change
    // throws (inside the guest's close). Three small objects at the end instead of at the start:
    // persisted spans, and spans that got their own, still skip them.
    if (record.events === NO_EVENTS) record.events = [];
    if (record.links === NO_LINKS) record.links = [];
    if (record.status === UNSET) record.status = { code: 'unset' };
    this.handlers.onSpan?.(record);
    return true;
  }

  currentSpan(): number | undefined {
    return undefined;
  }

  executionFinished(summary: ExecutionSummary): void {
    this.handlers.onExecutionFinished?.(summary);
  }

  /**
   * Hands the open span over to the persisted state (it is exported once, when a later execution
   * closes it) and reports it now as a `span started` log record, so a running workflow is visible.
   */
  persistSpan(id: number): SpanSnapshot | undefined {
    const live = this.find(id);
    if (live === undefined) return undefined;
    this.forget(id);
    const r = live.record;
    this.reportOpen(r, live.values);
    const snap: PipelineSnapshot = {
      traceId: hex(r.traceId),
      spanId: hex(r.spanId),
      traceFlags: r.traceFlags,
      links: r.links.map((l) => (l.remote === true ? { traceId: hex(l.traceId), spanId: hex(l.spanId), traceFlags: l.traceFlags, remote: true } : { traceId: hex(l.traceId), spanId: hex(l.spanId), traceFlags: l.traceFlags })),
      events: r.events.map((e) => ({ time: e.time.toString(), name: e.name, attributes: e.attributes.map(([k, v]) => [k, plainAttribute(v)]) })),
    };
    if (r.parentSpanId !== undefined) snap.parentSpanId = hex(r.parentSpanId);
    if (r.parentRemote === true) snap.parentRemote = true;
    return { [SNAPSHOT_KEY]: snap };
  }

  /** A restored span whose execution did not commit: forgotten, not exported (the state still holds it). */
  discardSpan(id: number): void {
    this.forget(id);
  }

  /** What keeps this collector's entry from being one {@link persistSpan} wrote, or undefined when it is one. */
  validateSnapshot(snapshot: SpanSnapshot): string | undefined {
    const own = snapshot[SNAPSHOT_KEY];
    return own === undefined || own === null ? undefined : pipelineSnapshotProblem(own);
  }

  /** Re-creates a span with the ids, parent, links and events it had: it is exported once, whole. */
  restoreSpan(info: RestoreSpanInfo): number {
    const snap = (info.snapshot?.[SNAPSHOT_KEY] ?? undefined) as PipelineSnapshot | undefined;
    const id = this.newSpan(info);
    if (snap === undefined) return id;
    const r = this.find(id)!.record;
    r.traceId = hexBytes(snap.traceId);
    r.spanId = hexBytes(snap.spanId);
    r.parentSpanId = snap.parentSpanId === undefined ? undefined : hexBytes(snap.parentSpanId);
    r.traceFlags = snap.traceFlags;
    r.links = snap.links.map((l) => ({ traceId: hexBytes(l.traceId), spanId: hexBytes(l.spanId), traceFlags: l.traceFlags, remote: l.remote === true }));
    r.parentRemote = snap.parentRemote === true;
    r.events = snap.events.map((e): SpanEventRecord => ({ time: BigInt(e.time), name: e.name, attributes: e.attributes }));
    return id;
  }

  /** The `sandtrace.execution.id` attribute, one pair per execution (attributes are never changed in place). */
  private executionAttribute(executionId: string): [string, Value] {
    let pair = this.executionPair;
    if (pair === undefined || pair[1] !== executionId) pair = this.executionPair = ['sandtrace.execution.id', executionId];
    return pair;
  }

  private find(id: number): LiveSpan | undefined {
    if (id === this.lastId) return this.lastSpan;
    const span = this.live.get(id);
    if (span !== undefined) {
      this.lastId = id;
      this.lastSpan = span;
    }
    return span;
  }

  private forget(id: number): void {
    this.live.delete(id);
    if (id === this.lastId) {
      this.lastId = 0;
      this.lastSpan = undefined;
    }
  }

  /** A `span started` log record for a span still open at a commit (every export mode gets it). */
  private reportOpen(r: SpanRecord, values: Values): void {
    const attributes: Values = [['sandtrace.span.name', r.name]];
    if (r.parentSpanId !== undefined) attributes.push(['sandtrace.span.parent_span_id', hex(r.parentSpanId)]);
    attributes.push(['sandtrace.span.start_time_unix_nano', r.start.toString()]);
    for (const [key, value] of values) if (!isEmptyValue(value)) attributes.push([key, value]);
    this.handlers.onLog?.({
      time: r.start,
      level: 'info',
      severityNumber: SEVERITY.info,
      body: SPAN_STARTED,
      attributes,
      scope: r.scope,
      traceId: r.traceId,
      spanId: r.spanId,
      traceFlags: r.traceFlags,
      executionId: r.executionId,
    });
  }

  /** Trace id of a span that starts a trace: derived from its execution when ids are stable (see span-ids.ts), else random. */
  private rootTraceId(executionId: string | undefined, guestSpanId: number | undefined): Uint8Array {
    return executionId === undefined || guestSpanId === undefined ? this.randomId(16) : traceIdFor(executionId);
  }

  /** Span id derived from (trace, execution, guest span id) when all are known, else random. */
  private spanIdFor(traceId: Uint8Array, executionId: string | undefined, guestSpanId: number | undefined): Uint8Array {
    if (executionId === undefined || guestSpanId === undefined) return this.randomId(8);
    let key = this.idKey;
    if (key === undefined || key.executionId !== executionId || (key.traceId !== traceId && !sameBytes(key.traceId, traceId))) key = this.idKey = new SpanIdKey(traceId, executionId);
    return key.spanId(guestSpanId);
  }

  /**
   * Random non-zero ids, cut from a pool filled by the OS generator (one call per 64 KiB).
   * Web Crypto's global rather than node:crypto, which would cost every host a few milliseconds
   * at import; the global loads its generator on the first id. Each id is a fresh array of its
   * own bytes (a handler may keep it; it never keeps the pool alive, and no later id reuses it).
   */
  private randomId(n: 8 | 16): Uint8Array {
    for (;;) {
      if (this.poolPos + n > ID_POOL) this.refillPool();
      const at = this.poolPos;
      this.poolPos = at + n;
      // Ids start at multiples of 8 in the pool: two or four aligned words tell an all-zero id
      // before anything is allocated.
      const w = this.poolWords;
      const q = at >> 2;
      if ((w[q]! | w[q + 1]! | (n === 16 ? w[q + 2]! | w[q + 3]! : 0)) === 0) continue;
      // Copied byte by byte, written out, into a fresh array: cheaper than slice() or set() of a
      // view for 8 bytes.
      const pool = this.pool;
      const id = new Uint8Array(n);
      id[0] = pool[at]!;
      id[1] = pool[at + 1]!;
      id[2] = pool[at + 2]!;
      id[3] = pool[at + 3]!;
      id[4] = pool[at + 4]!;
      id[5] = pool[at + 5]!;
      id[6] = pool[at + 6]!;
      id[7] = pool[at + 7]!;
      for (let i = 8; i < n; i++) id[i] = pool[at + i]!;
      return id;
    }
  }

  private refillPool(): void {
    // getRandomValues fills at most 64 KiB per call.
    if (this.pool.length === 0) {
      this.pool = new Uint8Array(ID_POOL);
      this.poolWords = new Uint32Array(this.pool.buffer);
    }
    crypto.getRandomValues(this.pool);
    this.poolPos = 0;
  }
}

/** The shape check behind {@link PipelineCollector.validateSnapshot}: each field as persistSpan writes it. */
function pipelineSnapshotProblem(snap: unknown): string | undefined {
  if (!isSnapshotRecord(snap)) return 'must be an object';
  return spanContextProblem(snap) ?? linksProblem(snap.links) ?? spanEventsProblem(snap.events);
}

function plainAttribute(v: Value): string | number | boolean {
  return typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v)) ? v : formatValue(v);
}

/** The semantic conventions' `exception` span event for a guest error (at the span's end: guests do not say when they caught it). */
function exceptionEvent(error: ErrorValue, time: bigint): SpanEventRecord {
  const { type, message, stacktrace } = describeException(error);
  const attributes: Values = [];
  if (type !== undefined) attributes.push(['exception.type', type]);
  attributes.push(['exception.message', message]);
  if (stacktrace !== undefined) attributes.push(['exception.stacktrace', stacktrace]);
  return { time, name: 'exception', attributes };
}

export function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

export function hexBytes(s: string): Uint8Array {
  return new Uint8Array(Buffer.from(s, 'hex'));
}

export type { SpanLink };

/**
 * One collector that never dies. V8 builds a class instance's hidden class field by field and
 * drops that chain at a full GC when no instance is left; the optimized newSpan, event and
 * tryClose depend on it and are deoptimized then. A host that makes a collector per run (or per
 * batch of runs) would warm them up again after every idle GC; holding one instance prevents it.
 */
export const KEEP_PIPELINE_COLLECTOR_SHAPE = new PipelineCollector({ handlers: {} });

