/**
 * Plain-data state a receiver hands out with persist() / persistMetadata() and takes back in a
 * later execution, possibly in another host process. Everything here survives JSON and msgpack
 * round trips: times are decimal strings of unix nanoseconds, values use the PlainValue form.
 */
import type { CallsiteData } from '../../shared/records.js';
import type { PlainValue } from './plain-value.js';

/** A guest's callsites by guest id, for guests that do not announce them again when resumed. */
export interface PersistedMetadata {
  version: 1;
  callsites: Array<CallsiteData & { id: number }>;
}

/** One span that stays open across executions. */
export interface PersistedSpan {
  /** The guest's id for the span; the guest uses it again in the next execution. */
  id: number;
  /** Callsite content (never a guest callsite id, which may differ in the next execution). */
  callsite: CallsiteData;
  /** Guest id of the parent span, `null` for an explicit root; absent = contextual. */
  parent?: number | null;
  /** Guest references still held. */
  refs: number;
  /** Times the guest has entered the span without exiting it (the host exited it at persist()). */
  entered?: number;
  /** Start time, unix ns as a decimal string. */
  start: string;
  values: Array<[string, PlainValue]>;
  /** Guest ids of spans this one follows from. */
  follows: number[];
  executionId?: string;
  /** The collectors' own data for the span, one entry per collector kind (see Collector.persistSpan). */
  collector?: Record<string, unknown>;
}

/**
 * The spans a committed execution leaves open. `version` is the format: this sandtrace writes 2
 * and reads 1 (upgraded on read, see {@link upgradePersistedSpans}) and 2; any other is refused
 * with a message naming the versions it reads.
 */
export interface PersistedSpans {
  version: 1 | 2;
  spans: PersistedSpan[];
  /** Guest ids of the spans the guest still has entered, innermost last. */
  stack?: number[];
  /**
   * The first guest span id the next execution may allocate: the host owns span-id allocation
   * across the executions of a workflow, so a span a resumed step opens never takes the id of a
   * carried span (or of one an earlier step closed). Absent in version 1: one above the largest
   * carried id.
   */
  nextSpanId?: number;
}

/** The persisted-span format this sandtrace writes. */
export const PERSISTED_SPANS_VERSION = 2;

export function emptyMetadata(): PersistedMetadata {
  return { version: 1, callsites: [] };
}

export function emptySpans(): PersistedSpans {
  return { version: PERSISTED_SPANS_VERSION, spans: [] };
}

/** The first span id an execution resuming `spans` may allocate (1 without state). */
export function firstSpanId(spans: PersistedSpans | undefined): number {
  if (spans === undefined) return 1;
  let next = typeof spans.nextSpanId === 'number' ? spans.nextSpanId : 1;
  for (const s of spans.spans) if (s.id >= next) next = s.id + 1;
  return next;
}

/** Bounds the validation checks persisted state against (a receiver passes its own limits). */
export interface PersistedBounds {
  /** Callsites in the metadata. */
  maxCallsites: number;
  /** Spans carried over. */
  maxOpenSpans: number;
  /** Length of a span's parent chain among the carried spans. */
  maxDepth: number;
  /** Entries of the enter stack. */
  maxEntered: number;
  /** Values per carried span (a callsite may declare more fields: a record sets a few at a time). */
  maxValues: number;
  /** The collector's check of its own snapshots (see Collector.validateSnapshot). */
  validateSnapshot?: (snapshot: Record<string, unknown>) => string | undefined;
}

/** Largest guest span id (the AssemblyScript library counts in a u32). */
export const MAX_SPAN_ID = 0xffff_ffff;
/** Largest reference count a carried span may have (a guest cannot hold more handles). */
export const MAX_PERSISTED_REFS = 0x7fff_ffff;
/** Deepest nesting of a collector snapshot (arrays and objects). */
const MAX_SNAPSHOT_DEPTH = 32;
const LEVELS: readonly unknown[] = ['trace', 'debug', 'info', 'warn', 'error'];
const FLOATS: readonly unknown[] = ['NaN', 'Infinity', '-Infinity', '-0'];
const MAX_REPORTED = 5;

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
const isId = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/**
 * Checks persisted state read back from storage completely, so everything applying it later does
 * (restoring values, walking parent chains, exiting carried enters) cannot fail or loop over a
 * count the file chose. Returns the problems found, each naming where it is; empty means valid.
 */
export function validatePersisted(metadata: PersistedMetadata | undefined, spans: PersistedSpans | undefined, bounds: PersistedBounds): string[] {
  const problems: string[] = [];
  if (metadata !== undefined) checkMetadata(metadata, bounds, problems);
  if (spans !== undefined) checkSpans(spans, bounds, problems);
  return problems;
}

/** The one-line message for a refusal: which state, and the first problems. */
export function describeRefusal(problems: readonly string[]): string {
  const shown = problems.slice(0, MAX_REPORTED).join('; ');
  const more = problems.length > MAX_REPORTED ? ` (and ${problems.length - MAX_REPORTED} more)` : '';
  return `persisted state refused: ${shown}${more}`;
}

export function checkCallsite(c: unknown, where: string, problems: string[]): void {
  if (!isObj(c)) {
    problems.push(`${where}: not an object`);
    return;
  }
  if (c.kind !== 'span' && c.kind !== 'event') problems.push(`${where}: kind must be 'span' or 'event'`);
  if (typeof c.name !== 'string' || typeof c.target !== 'string') problems.push(`${where}: name and target must be strings`);
  if (!LEVELS.includes(c.level)) problems.push(`${where}: unknown level`);
  if (!Array.isArray(c.fields) || !c.fields.every((f) => typeof f === 'string')) problems.push(`${where}: fields must be strings`);
  if (c.modulePath !== undefined && typeof c.modulePath !== 'string') problems.push(`${where}: modulePath must be a string`);
  if (c.file !== undefined && typeof c.file !== 'string') problems.push(`${where}: file must be a string`);
  if (c.line !== undefined && !isId(c.line)) problems.push(`${where}: line must be a non-negative integer`);
}

function checkMetadata(metadata: PersistedMetadata, bounds: PersistedBounds, problems: string[]): void {
  if (!isObj(metadata) || !Array.isArray(metadata.callsites)) {
    problems.push('metadata: callsites must be an array');
    return;
  }
  const callsites: unknown[] = metadata.callsites;
  if (callsites.length > bounds.maxCallsites) {
    problems.push(`metadata.callsites: ${callsites.length} callsites; at most ${bounds.maxCallsites}`);
    return;
  }
  const ids = new Set<number>();
  callsites.forEach((c, i) => {
    const where = `metadata.callsites[${i}]`;
    const id = isObj(c) ? c.id : undefined;
    if (!isId(id)) problems.push(`${where}: bad id`);
    else if (ids.has(id)) problems.push(`${where}: duplicate id ${id}`);
    else ids.add(id);
    checkCallsite(c, where, problems);
  });
}

function checkSpans(state: PersistedSpans, bounds: PersistedBounds, problems: string[]): void {
  if (!isObj(state) || !Array.isArray(state.spans)) {
    problems.push('spans: spans must be an array');
    return;
  }
  if (state.version !== 1 && state.version !== 2) {
    problems.push(`spans.version: format ${String(state.version)} is not one this sandtrace reads (1 and 2)`);
    return;
  }
  if (state.nextSpanId !== undefined && (!isId(state.nextSpanId) || state.nextSpanId < 1 || state.nextSpanId > MAX_SPAN_ID + 1)) {
    problems.push(`spans.nextSpanId: must be an integer from 1 to ${MAX_SPAN_ID + 1}`);
  }
  const list: unknown[] = state.spans;
  if (list.length > bounds.maxOpenSpans) {
    problems.push(`spans.spans: ${list.length} spans; at most ${bounds.maxOpenSpans}`);
    return;
  }
  const byId = new Map<number, Record<string, unknown>>();
  list.forEach((s, i) => {
    const where = `spans.spans[${i}]`;
    if (!isObj(s)) {
      problems.push(`${where}: not an object`);
      return;
    }
    if (!isId(s.id) || s.id > MAX_SPAN_ID) problems.push(`${where}: bad id`);
    else if (byId.has(s.id)) problems.push(`${where}: duplicate id ${s.id}`);
    else byId.set(s.id, s);
    checkCallsite(s.callsite, `${where}.callsite`, problems);
    if (!isId(s.refs) || s.refs < 1 || s.refs > MAX_PERSISTED_REFS) problems.push(`${where}: refs must be an integer from 1 to ${MAX_PERSISTED_REFS}`);
    if (typeof s.start !== 'string' || !/^\d{1,20}$/.test(s.start)) problems.push(`${where}: start must be unix ns as a decimal string`);
    checkValues(s.values, `${where}.values`, bounds, problems);
    if (!Array.isArray(s.follows) || !s.follows.every(isId)) problems.push(`${where}: follows must be span ids`);
    else if (s.follows.length > bounds.maxOpenSpans) problems.push(`${where}: ${s.follows.length} follows; at most ${bounds.maxOpenSpans}`);
    if (s.parent !== undefined && s.parent !== null && !isId(s.parent)) problems.push(`${where}: bad parent`);
    if (s.entered !== undefined && (!isId(s.entered) || s.entered > bounds.maxEntered)) problems.push(`${where}: entered must be an integer from 0 to ${bounds.maxEntered}`);
    if (s.executionId !== undefined && typeof s.executionId !== 'string') problems.push(`${where}: executionId must be a string`);
    const keyed = s.collector === undefined || (isObj(s.collector) && !Array.isArray(s.collector)) ? undefined : 'must be an object keyed by collector kind';
    const snapshot = keyed ?? plainDataProblem(s.collector, 0) ?? snapshotProblem(s.collector as Record<string, unknown> | undefined, bounds);
    if (snapshot !== undefined) problems.push(`${where}.collector: ${snapshot}`);
  });
  checkParentChains(byId, bounds.maxDepth, problems);
  checkStack(state.stack, byId, bounds, problems);
}

/** What the collector finds wrong with a (plain-data) snapshot; `undefined`/`null` mean none was kept. */
function snapshotProblem(snapshot: Record<string, unknown> | undefined, bounds: PersistedBounds): string | undefined {
  if (snapshot === undefined || bounds.validateSnapshot === undefined) return undefined;
  const problem = bounds.validateSnapshot(snapshot);
  return problem === undefined ? undefined : `snapshot: ${problem}`;
}

/** Each value a `[name, PlainValue]` pair that fromPlainValue turns back without failing. */
function checkValues(values: unknown, where: string, bounds: PersistedBounds, problems: string[]): void {
  if (!Array.isArray(values)) {
    problems.push(`${where}: must be an array`);
    return;
  }
  if (values.length > bounds.maxValues) {
    problems.push(`${where}: ${values.length} values; at most ${bounds.maxValues}`);
    return;
  }
  values.forEach((pair: unknown, i) => {
    if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string') problems.push(`${where}[${i}]: must be a [name, value] pair`);
    else if (!isPlainValue(pair[1])) problems.push(`${where}[${i}]: '${pair[0]}' is not a persisted value`);
  });
}

export function isPlainValue(v: unknown): boolean {
  switch (typeof v) {
    case 'boolean':
    case 'string':
      return true;
    case 'number':
      return Number.isFinite(v);
    case 'object':
      break;
    default:
      return false;
  }
  if (!isObj(v) || Array.isArray(v)) return false;
  const keys = Object.keys(v);
  if (keys.length !== 1) return false;
  switch (keys[0]) {
    case 'bigint':
      return typeof v.bigint === 'string' && /^-?\d{1,1000}$/.test(v.bigint);
    case 'float':
      return FLOATS.includes(v.float);
    case 'bytes':
      return typeof v.bytes === 'string' && /^[A-Za-z0-9+/]*={0,2}$/.test(v.bytes);
    case 'debug':
      return typeof v.debug === 'string';
    case 'error':
      return isObj(v.error) && typeof v.error.message === 'string' && plainDataProblem(v.error.source, 1) === undefined;
    case 'empty':
      return v.empty === true;
    default:
      return false;
  }
}

/** Why `v` is not plain JSON data of bounded nesting, or undefined when it is. */
function plainDataProblem(v: unknown, depth: number): string | undefined {
  if (v === undefined || v === null || typeof v === 'string' || typeof v === 'boolean') return undefined;
  if (typeof v === 'number') return Number.isFinite(v) ? undefined : 'numbers must be finite';
  if (typeof v !== 'object') return `${typeof v} is not plain data`;
  if (depth >= MAX_SNAPSHOT_DEPTH) return `nested deeper than ${MAX_SNAPSHOT_DEPTH}`;
  if (Array.isArray(v)) {
    for (const item of v) {
      const p = plainDataProblem(item, depth + 1);
      if (p !== undefined) return p;
    }
    return undefined;
  }
  const proto = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) return 'objects must be plain';
  for (const key of Object.keys(v)) {
    const p = plainDataProblem((v as Record<string, unknown>)[key], depth + 1);
    if (p !== undefined) return p;
  }
  return undefined;
}

/**
 * Parent chains among the carried spans: no cycle, none longer than maxDepth. Each span is
 * walked once (depths are remembered), so this is linear in the number of spans.
 */
function checkParentChains(byId: Map<number, Record<string, unknown>>, maxDepth: number, problems: string[]): void {
  const depth = new Map<number, number>();
  const ON_PATH = -1;
  for (const start of byId.keys()) {
    if (depth.has(start)) continue;
    const path: number[] = [];
    let id: number | undefined = start;
    let base = 0;
    while (id !== undefined) {
      const known = depth.get(id);
      if (known === ON_PATH) {
        problems.push(`spans.spans: parent cycle through span ${id}`);
        for (const p of path) depth.set(p, maxDepth + 1); // reported once
        return;
      }
      if (known !== undefined) {
        base = known;
        break;
      }
      depth.set(id, ON_PATH);
      path.push(id);
      const parent: unknown = byId.get(id)!.parent;
      id = typeof parent === 'number' && byId.has(parent) ? parent : undefined;
    }
    for (let i = path.length - 1; i >= 0; i--) depth.set(path[i]!, ++base);
    if (base > maxDepth) {
      problems.push(`spans.spans: span ${start} has a parent chain ${base} deep; maxDepth is ${maxDepth}`);
      return;
    }
  }
}

/** The stack: known span ids, at most maxEntered, each span's `entered` its number of entries. */
function checkStack(stack: unknown, byId: Map<number, Record<string, unknown>>, bounds: PersistedBounds, problems: string[]): void {
  const counts = new Map<number, number>();
  if (stack !== undefined) {
    if (!Array.isArray(stack) || !stack.every(isId)) {
      problems.push('spans.stack: must be span ids');
      return;
    }
    if (stack.length > bounds.maxEntered) {
      problems.push(`spans.stack: ${stack.length} entries; at most ${bounds.maxEntered}`);
      return;
    }
    for (const id of stack) {
      if (!byId.has(id)) {
        problems.push(`spans.stack: span ${id} is not among the spans`);
        return;
      }
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
  }
  for (const [id, s] of byId) {
    const entered = isId(s.entered) ? s.entered : 0;
    if (entered !== (counts.get(id) ?? 0)) problems.push(`span ${id}: entered ${entered} times, but on the stack ${counts.get(id) ?? 0} times`);
  }
}

/**
 * Reads format-1 state as format 2. Format 1 kept each collector's snapshot positionally (a tee
 * wrote an array, one entry per child), which broke when a host changed how it composed its
 * collectors between steps; format 2 keys them by collector kind. Known format-1 snapshots (the
 * pipeline's, the capture collector's, arrays of them) are re-keyed; anything else is dropped, and
 * the span is restored with fresh collector state. Returns `spans` itself when it is format 2.
 */
export function upgradePersistedSpans(spans: PersistedSpans): PersistedSpans {
  if (spans.version !== 1 || !Array.isArray(spans.spans)) return spans;
  return {
    ...spans,
    version: PERSISTED_SPANS_VERSION,
    spans: spans.spans.map((s) => {
      if (!isObj(s) || s.collector === undefined) return s;
      const keyed = rekeyV1Snapshot(s.collector as unknown);
      const out: PersistedSpan = { ...s };
      if (keyed === undefined) delete out.collector;
      else out.collector = keyed;
      return out;
    }),
  };
}

function rekeyV1Snapshot(v: unknown): Record<string, unknown> | undefined {
  if (!Array.isArray(v)) return rekeyV1Entry(v);
  // A format-1 tee: one entry per child (never nested deeper).
  let out: Record<string, unknown> | undefined;
  for (const entry of v) {
    const keyed = rekeyV1Entry(entry);
    if (keyed !== undefined) out = { ...out, ...keyed };
  }
  return out;
}

function rekeyV1Entry(v: unknown): Record<string, unknown> | undefined {
  if (!isObj(v) || Array.isArray(v)) return undefined;
  if (typeof v.traceId === 'string' && typeof v.spanId === 'string') return { pipeline: v };
  if (typeof v.capture === 'string') return { capture: v };
  return undefined;
}
