/**
 * Sends guest spans into the host's existing OpenTelemetry JS setup through @opentelemetry/api:
 * a guest's root spans become children of the host span active when the guest runs, with the
 * guest's own start and end times, attributes, events, links and status. The host's SDK then
 * exports them like any other span.
 *
 * Workflows (spans carried between executions, maybe between processes): the OpenTelemetry API
 * does not let a caller choose a span's id, so a carried span re-created in a later execution
 * would get a new one, while its children exported earlier point at the old one. A host that runs
 * workflows installs {@link SandtraceIdGenerator} on its tracer provider: the bridge then gives
 * every guest span the id the pipeline collector would (derived from the trace, the execution id
 * and the guest's span id, see span-ids.ts), and a carried span keeps its id across executions.
 */
import { ROOT_CONTEXT, SpanStatusCode, context, metrics, trace, type Attributes, type Counter, type Gauge, type Histogram, type Meter, type AttributeValue, type Context, type HrTime, type Link, type Span, type SpanOptions, type Tracer } from '@opentelemetry/api';
import type { ErrorValue, Value, Values } from '../../shared/records.js';
import type { Collector, EventInfo, ForcedClose, MetricInfo, NewSpanInfo, RestoreSpanInfo, SpanSnapshot } from '../collectors/collector.js';
import { describeException, formatError, formatValue, splitMessage } from '../collectors/format-value.js';
import { isSnapshotRecord, isUnixNs, linksProblem, spanContextProblem, spanEventsProblem } from '../collectors/snapshot-shape.js';
import { assignValues, isErrorValue } from '../../shared/values.js';
import { LevelFilteredCollector } from '../collectors/level-filter.js';
import type { Level } from '../../shared/records.js';
import { SpanIdKey, traceIdFor } from '../pipeline/span-ids.js';
import { hexOf, slot, type NextIds } from './id-generator.js';

export interface OpenTelemetryCollectorOptions {
  /** The tracer to create spans with (default: `trace.getTracer('sandtrace')` from the global provider). */
  tracer?: Tracer;
  /** Most verbose level forwarded (default: info). */
  level?: Level;
  /**
   * Events kept per span for the persisted state (default 128, OpenTelemetry's default event
   * limit): a span carried to a later execution takes the events of the executions before with it.
   * Events past this still reach the OpenTelemetry span; they are lost only if the span is
   * carried over, and counted in `droppedCarriedEvents`.
   */
  maxEventsPerSpan?: number;
  /** The meter guest metrics are recorded with (default: `metrics.getMeter('sandtrace')` from the global provider). */
  meter?: Meter;
}

/** A span link as persisted (plain JSON). */
interface SnapshotLink {
  traceId: string;
  spanId: string;
  traceFlags: number;
}

/** A span event as persisted (plain JSON). */
interface SnapshotEvent {
  /** Unix ns, decimal. */
  time: string;
  name: string;
  attributes: Array<[string, string | number | boolean]>;
}

/** This collector's entry in a carried span's snapshot (key `opentelemetry`). */
export interface OpenTelemetrySnapshot {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  traceFlags: number;
  /** Unix ns, decimal. */
  start: string;
  links: SnapshotLink[];
  events: SnapshotEvent[];
}

/** This collector's key in a span snapshot. */
const SNAPSHOT_KEY = 'opentelemetry';

interface Live {
  span: Span;
  values: Values;
  /** Parent span id the span was started with (OpenTelemetry's API does not expose it). */
  parentSpanId: string | undefined;
  start: bigint;
  links: SnapshotLink[];
  events: SnapshotEvent[];
  /** Events past `maxEventsPerSpan`, not kept for a snapshot. */
  droppedEvents: number;
}

/** Nanoseconds since the epoch as OpenTelemetry's [seconds, nanoseconds]. */
function hrTime(ns: bigint): HrTime {
  return [Number(ns / 1_000_000_000n), Number(ns % 1_000_000_000n)];
}

function attributeValue(v: Value): AttributeValue | undefined {
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return v;
    case 'number':
      return v;
    case 'bigint':
      return Number.isSafeInteger(Number(v)) ? Number(v) : v.toString();
  }
  if (v instanceof Uint8Array || 'debug' in v) return formatValue(v);
  if ('error' in v) return formatError(v.error);
  return undefined; // not recorded yet
}

function attributes(values: Values): Attributes {
  const out: Attributes = {};
  for (const [k, v] of values) {
    const a = attributeValue(v);
    if (a !== undefined) out[k] = a;
  }
  return out;
}

/** A span's attributes: its `error` field is not one (it becomes an `exception` event at the end). */
function spanAttributesOf(values: Values): Attributes {
  const out: Attributes = {};
  for (const [k, v] of values) {
    if (k === 'error' && isErrorValue(v)) continue;
    const a = attributeValue(v);
    if (a !== undefined) out[k] = a;
  }
  return out;
}

/** An attribute as plain JSON (non-finite numbers as text). */
function plainAttribute(v: AttributeValue): string | number | boolean {
  if (typeof v === 'string' || typeof v === 'boolean') return v;
  if (typeof v === 'number') return Number.isFinite(v) ? v : String(v);
  return String(v);
}

// ── The collector ─────────────────────────────────────────────────────────────────────────────

/**
 * @example
 * // inside a request handler traced by the host's OpenTelemetry SDK:
 * const collector = new OpenTelemetryCollector();
 * await runQuickJS(pluginSource, { collector }); // plugin spans appear under the request span
 */
export class OpenTelemetryCollector extends LevelFilteredCollector implements Collector {
  private readonly tracer: Tracer;
  private readonly live = new Map<number, Live>();
  private readonly maxEvents: number;
  private nextId = 1;
  /** Id derivation key of the execution seen last (spans of one execution come together). */
  private idKey: SpanIdKey | undefined;
  private idKeyTrace = '';
  /** Guest events outside any span (OpenTelemetry traces have nowhere to put them). */
  unattachedEvents = 0;
  /**
   * Spans the tracer provider started with ids other than the ones asked for: the provider has no
   * {@link SandtraceIdGenerator} (or is not an SDK provider at all). Such spans have random ids.
   */
  idsNotHonoured = 0;
  /**
   * Of `idsNotHonoured`, the carried spans re-created from a persisted state: each is exported
   * under a new span id, and the spans earlier executions exported as its children point at its
   * old id, which no exported span has.
   */
  carriedIdsNotHonoured = 0;
  /** Events of carried spans that did not fit `maxEventsPerSpan` in the persisted state. */
  droppedCarriedEvents = 0;
  /** Negative increments of a guest counter: an OpenTelemetry Counter only adds, so they are not recorded. */
  negativeCounterIncrements = 0;
  private readonly meter: Meter;
  /** Instruments by kind and name, created on a metric's first point. */
  private readonly instruments = new Map<string, Counter | Histogram | Gauge>();

  constructor(options: OpenTelemetryCollectorOptions = {}) {
    super(options.level ?? 'info');
    this.tracer = options.tracer ?? trace.getTracer('sandtrace');
    this.maxEvents = options.maxEventsPerSpan ?? 128;
    this.meter = options.meter ?? metrics.getMeter('sandtrace');
  }

  /** Guest metrics go to the host's MeterProvider: counters, histograms and gauges of the same names. */
  metric(m: MetricInfo): void {
    const key = `${m.instrument}\0${m.name}`;
    let instrument = this.instruments.get(key);
    if (instrument === undefined) {
      instrument = m.instrument === 'counter' ? this.meter.createCounter(m.name) : m.instrument === 'histogram' ? this.meter.createHistogram(m.name) : this.meter.createGauge(m.name);
      this.instruments.set(key, instrument);
    }
    const value = Number(m.value);
    const attrs = attributes(m.attributes);
    if (m.instrument === 'counter') {
      if (value < 0) {
        this.negativeCounterIncrements++;
        return;
      }
      (instrument as Counter).add(value, attrs);
    } else if (m.instrument === 'histogram') (instrument as Histogram).record(value, attrs);
    else (instrument as Gauge).record(value, attrs);
  }

  /**
   * OpenTelemetry spans this collector holds (started or restored, not yet ended, persisted or
   * discarded). Between executions it is zero: a span carried to a later execution is held by the
   * persisted state, not here.
   */
  get openSpans(): number {
    return this.live.size;
  }

  newSpan(info: NewSpanInfo): number {
    let parent: Context;
    const parentSpan = typeof info.parent === 'number' ? this.live.get(info.parent)?.span : undefined;
    if (parentSpan !== undefined) parent = trace.setSpan(ROOT_CONTEXT, parentSpan);
    else if (info.remoteParent !== undefined) {
      parent = trace.setSpanContext(ROOT_CONTEXT, { traceId: info.remoteParent.traceId, spanId: info.remoteParent.spanId, traceFlags: info.remoteParent.traceFlags, isRemote: true });
    } else if (info.parent === null) parent = ROOT_CONTEXT;
    else parent = context.active(); // the host span the guest runs under
    const links: SnapshotLink[] = (info.links ?? []).map((l) => ({ traceId: l.traceId, spanId: l.spanId, traceFlags: l.traceFlags }));
    const parentContext = trace.getSpanContext(parent);
    const validParent = parentContext !== undefined && trace.isSpanContextValid(parentContext) ? parentContext : undefined;
    // The ids the pipeline collector would give this span (see span-ids.ts), when it has them.
    let ids: NextIds | undefined;
    if (info.executionId !== undefined && info.guestSpanId !== undefined) {
      const traceId = validParent?.traceId ?? hexOf(traceIdFor(info.executionId));
      ids = { traceId: validParent === undefined ? traceId : undefined, spanId: this.derivedSpanId(traceId, info.executionId, info.guestSpanId) };
    }
    const span = this.start(info.meta.name, { startTime: hrTime(info.time), attributes: this.spanAttributes(info), links: links.map(toLink) }, parent, ids, false);
    return this.add({ span, values: info.values.slice(), parentSpanId: validParent?.spanId, start: info.time, links, events: [], droppedEvents: 0 });
  }

  record(id: number, values: Values): void {
    const live = this.live.get(id);
    if (live === undefined) return;
    live.span.setAttributes(spanAttributesOf(values));
    assignValues(live.values, values);
  }

  recordFollowsFrom(id: number, follows: number): void {
    const live = this.live.get(id);
    const from = this.live.get(follows)?.span;
    if (live === undefined || from === undefined) return;
    const c = from.spanContext();
    live.span.addLink({ context: c });
    live.links.push({ traceId: c.traceId, spanId: c.spanId, traceFlags: c.traceFlags });
  }

  event(info: EventInfo): void {
    const live = typeof info.parent === 'number' ? this.live.get(info.parent) : undefined;
    if (live === undefined) {
      this.unattachedEvents++;
      return;
    }
    const { message, fields } = splitMessage(info.values);
    const attrs: Attributes = { ...attributes(fields), 'log.severity': info.meta.level };
    const name = message ?? info.meta.name;
    live.span.addEvent(name, attrs, hrTime(info.time));
    if (live.events.length < this.maxEvents) {
      const pairs: Array<[string, string | number | boolean]> = [];
      for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) pairs.push([k, plainAttribute(v)]);
      live.events.push({ time: info.time.toString(), name, attributes: pairs });
    } else live.droppedEvents++; // counted if the span is ever persisted (see persistSpan)
  }

  enter(): void {}
  exit(): void {}
  cloneSpan(id: number): number {
    return id;
  }

  tryClose(id: number, time: bigint, forced?: ForcedClose): boolean {
    const live = this.live.get(id);
    if (live === undefined) return false;
    this.live.delete(id);
    let error: ErrorValue | undefined;
    for (const [k, v] of live.values) if (k === 'error' && isErrorValue(v)) error = v.error;
    if (forced !== undefined) {
      live.span.setAttributes({ 'sandtrace.force_closed': true, 'sandtrace.termination.cause': forced.cause });
      live.span.setStatus({ code: SpanStatusCode.ERROR, message: forced.message });
    } else if (error !== undefined) live.span.setStatus({ code: SpanStatusCode.ERROR, message: formatError(error) });
    if (error !== undefined) {
      // The semantic conventions' `exception` event (exception.type, .message, .stacktrace).
      const { type, message, stacktrace } = describeException(error);
      live.span.recordException({ name: type ?? 'Error', message, ...(stacktrace !== undefined && { stack: stacktrace }) }, hrTime(time));
    }
    live.span.end(hrTime(time));
    return true;
  }

  /** The active OpenTelemetry span's sampled flag: the runner's head sampling follows it. */
  parentSampled(): boolean | undefined {
    const active = trace.getSpanContext(context.active());
    return active !== undefined && trace.isSpanContextValid(active) ? (active.traceFlags & 1) === 1 : undefined;
  }

  currentSpan(): number | undefined {
    return undefined;
  }

  /**
   * The execution commits with this span open: its ids, start, links and events go to the
   * persisted state, and the OpenTelemetry span is let go of without being ended (so it is never
   * exported from here; the SDK's span processors keep no reference to a span before it ends).
   * A later execution's `restoreSpan` starts it again with the same ids and start.
   */
  persistSpan(id: number): SpanSnapshot | undefined {
    const live = this.live.get(id);
    if (live === undefined) return undefined;
    this.live.delete(id);
    const c = live.span.spanContext();
    this.droppedCarriedEvents += live.droppedEvents;
    const snap: OpenTelemetrySnapshot = {
      traceId: c.traceId,
      spanId: c.spanId,
      traceFlags: c.traceFlags,
      start: live.start.toString(),
      links: live.links,
      events: live.events,
    };
    if (live.parentSpanId !== undefined) snap.parentSpanId = live.parentSpanId;
    return { [SNAPSHOT_KEY]: snap };
  }

  /**
   * Starts a carried span again: with its persisted ids (through {@link SandtraceIdGenerator}),
   * start time, parent, links and events, so it is exported once, whole, under the id its
   * children already point at. A span persisted without this collector's entry starts as new.
   */
  restoreSpan(info: RestoreSpanInfo): number {
    const snap = (info.snapshot?.[SNAPSHOT_KEY] ?? undefined) as OpenTelemetrySnapshot | undefined;
    if (snap === undefined) return this.newSpan(info);
    const hasParent = snap.parentSpanId !== undefined;
    const parent = hasParent ? trace.setSpanContext(ROOT_CONTEXT, { traceId: snap.traceId, spanId: snap.parentSpanId!, traceFlags: snap.traceFlags, isRemote: false }) : ROOT_CONTEXT;
    const start = BigInt(snap.start);
    const links = snap.links.map((l) => ({ ...l }));
    const options: SpanOptions = { startTime: hrTime(start), attributes: this.spanAttributes(info), links: links.map(toLink) };
    if (!hasParent) options.root = true;
    const span = this.start(info.meta.name, options, parent, { traceId: hasParent ? undefined : snap.traceId, spanId: snap.spanId }, true);
    for (const e of snap.events) span.addEvent(e.name, Object.fromEntries(e.attributes), hrTime(BigInt(e.time)));
    const events = snap.events.map((e) => ({ time: e.time, name: e.name, attributes: e.attributes.map(([k, v]): [string, string | number | boolean] => [k, v]) }));
    return this.add({ span, values: info.values.slice(), parentSpanId: snap.parentSpanId, start, links, events, droppedEvents: 0 });
  }

  /** A restored span whose execution did not commit: let go of without ending it (the state still holds it). */
  discardSpan(id: number): void {
    this.live.delete(id);
  }

  /** What keeps this collector's entry from being one {@link persistSpan} wrote, or undefined when it is one. */
  validateSnapshot(snapshot: SpanSnapshot): string | undefined {
    const own = snapshot[SNAPSHOT_KEY];
    return own === undefined || own === null ? undefined : snapshotProblem(own);
  }

  private add(live: Live): number {
    const id = this.nextId++;
    this.live.set(id, live);
    return id;
  }

  private spanAttributes(info: NewSpanInfo): Attributes {
    const attrs = spanAttributesOf(info.values);
    if (info.executionId !== undefined) attrs['sandtrace.execution.id'] = info.executionId;
    return attrs;
  }

  /** Starts a span, asking the provider (through the id generator's slot) for the given ids. */
  private start(name: string, options: SpanOptions, parent: Context, ids: NextIds | undefined, carried: boolean): Span {
    if (ids === undefined) return this.tracer.startSpan(name, options, parent);
    const next = slot();
    next.traceId = ids.traceId;
    next.spanId = ids.spanId;
    let span: Span;
    try {
      span = this.tracer.startSpan(name, options, parent);
    } finally {
      next.traceId = undefined;
      next.spanId = undefined;
    }
    if (span.spanContext().spanId !== ids.spanId) {
      this.idsNotHonoured++;
      if (carried) this.carriedIdsNotHonoured++;
    }
    return span;
  }

  /** Span id derived from (trace, execution, guest span id), as the pipeline collector derives it. */
  private derivedSpanId(traceId: string, executionId: string, guestSpanId: number): string {
    let key = this.idKey;
    if (key === undefined || key.executionId !== executionId || this.idKeyTrace !== traceId) {
      key = this.idKey = new SpanIdKey(bytesOf(traceId), executionId);
      this.idKeyTrace = traceId;
    }
    return hexOf(key.spanId(guestSpanId));
  }
}

function toLink(l: SnapshotLink): Link {
  return { context: { traceId: l.traceId, spanId: l.spanId, traceFlags: l.traceFlags, isRemote: true } };
}


function bytesOf(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length >> 1);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/** The shape check behind {@link OpenTelemetryCollector.validateSnapshot}: each field as persistSpan writes it. */
function snapshotProblem(snap: unknown): string | undefined {
  if (!isSnapshotRecord(snap)) return 'must be an object';
  if (!isUnixNs(snap.start)) return 'start must be unix ns as a decimal string';
  return spanContextProblem(snap) ?? linksProblem(snap.links) ?? spanEventsProblem(snap.events);
}
