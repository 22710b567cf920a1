/**
 * Keeps everything in memory: the span tree, events, values and metrics. For tests, snapshots and
 * hosts that want to inspect what a guest did after the fact.
 */
import { fromPlainValues, toPlainValues, type PlainValue } from '../receiver/plain-value.js';
import { checkCallsite, isPlainValue } from '../receiver/persisted-state.js';
import type { Level, Value, Values } from '../../shared/records.js';
import type { TraceParent } from '../traceparent.js';
import { assignValues, isEmptyValue } from '../../shared/values.js';
import { LevelFilteredCollector } from './level-filter.js';
import type { CallsiteMeta, Collector, EventInfo, ForcedClose, MetricInfo, NewSpanInfo, RestoreSpanInfo, SpanSnapshot } from './collector.js';

export interface CapturedEvent {
  meta: CallsiteMeta;
  parent: number | null | undefined;
  values: Values;
  time: bigint;
  executionId?: string;
}

export interface CapturedSpan {
  id: number;
  meta: CallsiteMeta;
  parent: number | null | undefined;
  /** Current values: recorded fields replace the ones given at creation. */
  values: Values;
  follows: number[];
  events: CapturedEvent[];
  children: number[];
  start: bigint;
  end?: bigint;
  closed: boolean;
  forced?: ForcedClose;
  /** Times entered minus times exited. */
  entered: number;
  executionId?: string;
  remoteParent?: TraceParent;
  links?: TraceParent[];
}

/** Snapshot form: stable ids (`s1`, `s2`, … in first-seen order), no times, no empty fields. */
export interface NormalizedSpan {
  id: string;
  name: string;
  target: string;
  level: Level;
  fields: Record<string, Value>;
  events: NormalizedEvent[];
  follows: string[];
  closed: boolean;
  forced?: string;
  children: NormalizedSpan[];
}
export interface NormalizedEvent {
  name: string;
  target: string;
  level: Level;
  fields: Record<string, Value>;
}
export interface NormalizedTrace {
  spans: NormalizedSpan[];
  /** Events outside any span. */
  events: NormalizedEvent[];
  metrics: Array<{ name: string; instrument: string; value: number | bigint; attributes: Record<string, Value> }>;
}

interface CaptureSnapshot {
  capture: string;
  id: number;
  eventCount: number;
  events: Array<{ meta: CallsiteMeta; values: Array<[string, PlainValue]>; time: string }>;
}

let instances = 0;
/** This collector's key in a span snapshot. */
const SNAPSHOT_KEY = 'capture';

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** The shape check behind {@link CaptureCollector.validateSnapshot}: each field as persistSpan writes it. */
function captureSnapshotProblem(snap: unknown): string | undefined {
  if (!isRecord(snap)) return 'must be an object';
  if (typeof snap.capture !== 'string') return 'capture must be a string';
  if (!isCount(snap.id)) return 'id must be a non-negative integer';
  if (!Array.isArray(snap.events)) return 'events must be an array';
  if (snap.eventCount !== snap.events.length) return 'eventCount must be the number of events';
  for (const [i, e] of snap.events.entries()) {
    if (!isRecord(e)) return `events[${i}] must be an object`;
    if (typeof e.time !== 'string' || !/^\d{1,20}$/.test(e.time)) return `events[${i}].time must be unix ns as a decimal string`;
    const meta: string[] = [];
    checkCallsite(e.meta, `events[${i}].meta`, meta);
    if (meta.length > 0) return meta[0];
    if (!isCount((e.meta as Record<string, unknown>).id)) return `events[${i}].meta: bad id`;
    if (!Array.isArray(e.values)) return `events[${i}].values must be an array`;
    for (const [j, pair] of e.values.entries()) {
      if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string' || !isPlainValue(pair[1])) return `events[${i}].values[${j}] must be a [name, persisted value] pair`;
    }
  }
  return undefined;
}

/**
 * @example
 * const collector = new CaptureCollector();
 * receiver = new TracingEventReceiver({ collector });
 * receiver.receiveBatch(bytes);
 * assert.deepStrictEqual(collector.normalize().spans[0].name, 'handle');
 */
export class CaptureCollector extends LevelFilteredCollector implements Collector {
  readonly spans = new Map<number, CapturedSpan>();
  readonly events: CapturedEvent[] = [];
  readonly metrics: MetricInfo[] = [];
  private readonly instance = `capture-${++instances}-${process.pid}`;
  private readonly stack: number[] = [];
  private nextId = 1;

  /** `level`: the most verbose level kept (default trace, i.e. everything). */
  constructor(options: { level?: Level } = {}) {
    super(options.level);
  }

  newSpan(info: NewSpanInfo): number {
    const id = this.nextId++;
    const span: CapturedSpan = {
      id,
      meta: info.meta,
      parent: info.parent,
      values: info.values.slice(),
      follows: [],
      events: [],
      children: [],
      start: info.time,
      closed: false,
      entered: 0,
    };
    if (info.executionId !== undefined) span.executionId = info.executionId;
    if (info.remoteParent !== undefined) span.remoteParent = info.remoteParent;
    if (info.links !== undefined) span.links = info.links;
    this.spans.set(id, span);
    if (typeof info.parent === 'number') this.spans.get(info.parent)?.children.push(id);
    return id;
  }

  record(id: number, values: Values): void {
    const span = this.spans.get(id);
    if (span !== undefined) assignValues(span.values, values);
  }

  recordFollowsFrom(id: number, follows: number): void {
    this.spans.get(id)?.follows.push(follows);
  }

  event(info: EventInfo): void {
    const e: CapturedEvent = { meta: info.meta, parent: info.parent, values: info.values, time: info.time };
    if (info.executionId !== undefined) e.executionId = info.executionId;
    this.events.push(e);
    if (typeof info.parent === 'number') this.spans.get(info.parent)?.events.push(e);
  }

  enter(id: number): void {
    const span = this.spans.get(id);
    if (span !== undefined) span.entered++;
    this.stack.push(id);
  }

  exit(id: number): void {
    const span = this.spans.get(id);
    if (span !== undefined) span.entered--;
    const i = this.stack.lastIndexOf(id);
    if (i >= 0) this.stack.splice(i, 1);
  }

  cloneSpan(id: number): number {
    return id;
  }

  tryClose(id: number, time: bigint, forced?: ForcedClose): boolean {
    const span = this.spans.get(id);
    if (span === undefined || span.closed) return false;
    span.closed = true;
    span.end = time;
    if (forced !== undefined) span.forced = forced;
    return true;
  }

  currentSpan(): number | undefined {
    return this.stack[this.stack.length - 1];
  }

  metric(m: MetricInfo): void {
    this.metrics.push(m);
  }

  /**
   * Keeps the span (this collector is for inspection: it holds everything it saw) but marks it
   * carried; a restore in the same collector picks the same object up again.
   */
  persistSpan(id: number): SpanSnapshot | undefined {
    const span = this.spans.get(id);
    if (span === undefined) return undefined;
    const snap: CaptureSnapshot = {
      capture: this.instance,
      id,
      eventCount: span.events.length,
      events: span.events.map((e) => ({ meta: e.meta, values: toPlainValues(e.values), time: e.time.toString() })),
    };
    return { [SNAPSHOT_KEY]: snap };
  }

  /** Nothing to undo: the receiver hands a carried span nothing uncommitted. */
  discardSpan(): void {}

  /** What keeps this collector's entry from being one {@link persistSpan} wrote, or undefined when it is one. */
  validateSnapshot(snapshot: SpanSnapshot): string | undefined {
    const own = snapshot[SNAPSHOT_KEY];
    return own === undefined || own === null ? undefined : captureSnapshotProblem(own);
  }

  restoreSpan(info: RestoreSpanInfo): number {
    const snap = (info.snapshot?.[SNAPSHOT_KEY] ?? undefined) as CaptureSnapshot | undefined;
    const live = snap?.capture === this.instance ? this.spans.get(snap.id) : undefined;
    if (live !== undefined && !live.closed && snap !== undefined) {
      // Same collector: reset the span to its committed state (drops what a rolled-back execution added).
      live.values = info.values.slice();
      live.events.length = snap.eventCount;
      return live.id;
    }
    const id = this.newSpan(info);
    const span = this.spans.get(id)!;
    for (const e of snap?.events ?? []) {
      const ev: CapturedEvent = { meta: e.meta, parent: id, values: fromPlainValues(e.values), time: BigInt(e.time) };
      span.events.push(ev);
      this.events.push(ev);
    }
    return id;
  }

  /** Spans without a parent span, in creation order. */
  roots(): CapturedSpan[] {
    return [...this.spans.values()].filter((s) => typeof s.parent !== 'number' || !this.spans.has(s.parent));
  }

  /** The first span with this name. */
  find(name: string): CapturedSpan | undefined {
    for (const s of this.spans.values()) if (s.meta.name === name) return s;
    return undefined;
  }

  /** A snapshot independent of ids and times, for golden tests and equality across runs. */
  normalize(): NormalizedTrace {
    const stable = new Map<number, string>();
    const assign = (s: CapturedSpan): void => {
      stable.set(s.id, `s${stable.size + 1}`);
      for (const c of s.children) assign(this.spans.get(c)!);
    };
    const roots = this.roots();
    for (const r of roots) assign(r);
    const build = (s: CapturedSpan): NormalizedSpan => {
      const n: NormalizedSpan = {
        id: stable.get(s.id)!,
        name: s.meta.name,
        target: s.meta.target,
        level: s.meta.level,
        fields: fieldsOf(s.values),
        events: s.events.map(normalizeEvent),
        follows: s.follows.map((f) => stable.get(f) ?? '?'),
        closed: s.closed,
        children: s.children.map((c) => build(this.spans.get(c)!)),
      };
      if (s.forced !== undefined) n.forced = s.forced.cause;
      return n;
    };
    return {
      spans: roots.map(build),
      events: this.events.filter((e) => typeof e.parent !== 'number').map(normalizeEvent),
      metrics: this.metrics.map((m) => ({ name: m.name, instrument: m.instrument, value: m.value, attributes: fieldsOf(m.attributes) })),
    };
  }
}

/**
 * Field names come from the guest: each becomes an own property by definition, not assignment,
 * so `__proto__` is a field like any other and no prototype changes.
 */
function fieldsOf(values: Values): Record<string, Value> {
  const out: Record<string, Value> = {};
  for (const [k, v] of values) if (!isEmptyValue(v)) Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  return out;
}

function normalizeEvent(e: CapturedEvent): NormalizedEvent {
  return { name: e.meta.name, target: e.meta.target, level: e.meta.level, fields: fieldsOf(e.values) };
}
