/**
 * The digest of a trace: what the list shows of it (its summary) and what filters look at (span
 * names, hashes of attribute keys and key=value pairs), small enough to keep for every trace of a
 * large store; made from a trace's assembled spans (trace-assembly.ts).
 */
import type { ViewSpan } from './store-reader.js';
import { textOf } from './store-reader.js';

export interface TraceSummary {
  traceId: string;
  root: string;
  start: string;
  /** The trace's start, unix ms. */
  startMs: number;
  durationMs: number;
  spans: number;
  errors: number;
  forced: string[];
  executionIds: string[];
  /** Spans of the trace still running (only a `span started` record): the trace is in progress. */
  running: number;
  /** Span records dropped because a span with the same ids was already written (replayed steps). */
  duplicateSpans: number;
  /** The `service.name` of the resources that wrote its spans. */
  services: string[];
}

/**
 * What the index keeps of a trace: its summary without the parts that depend on when it is read,
 * and what filters match against (span names, and hashes of attribute keys and key=value pairs).
 */
export interface TraceDigest extends Omit<TraceSummary, 'traceId' | 'startMs' | 'durationMs'> {
  /** The latest end among its spans, running ones counted as ending at their start. */
  end: string;
  names: string[];
  /** Sorted, distinct {@link attributeHash}es of `key` and of `key=value` over its spans. */
  attributes: number[];
}

/**
 * The digest of one trace's assembled spans (non-empty). Running spans must have been finished at
 * a time not after their start (so `end` does not depend on the read); {@link summaryOf} adds it.
 */
export function digestOf(group: readonly ViewSpan[], keepAttributes = true): TraceDigest {
  const ids = new Set(group.map((s) => s.spanId));
  const roots = group.filter((s) => s.parentSpanId === undefined || !ids.has(s.parentSpanId));
  let start = group[0]!.start;
  let end = group[0]!.end;
  for (const s of group) {
    if (compareNs(s.start, start) < 0) start = s.start;
    if (compareNs(s.end, end) > 0) end = s.end;
  }
  // Every run's root is its execution span: name the trace by the guest's own root span and source.
  const root = roots[0] ?? group[0]!;
  const guestRoot = root.name === 'sandtrace.execution' ? group.find((s) => s.parentSpanId === root.spanId) : undefined;
  const source = root.attributes['guest.source'];
  const hashes = new Set<number>();
  if (keepAttributes) {
    for (const s of group) {
      for (const [k, v] of Object.entries(s.attributes)) {
        hashes.add(attributeHash(k));
        hashes.add(attributeHash(k, textOf(v)));
      }
    }
  }
  return {
    root: guestRoot !== undefined ? `${guestRoot.name}${typeof source === 'string' ? ` · ${source}` : ''}` : root.name,
    start,
    end,
    spans: group.length,
    errors: group.filter((s) => s.status.code === 2).length,
    forced: [...new Set(group.flatMap((s) => (s.forcedCause ? [s.forcedCause] : [])))],
    executionIds: [...new Set(group.flatMap((s) => (s.executionId ? [s.executionId] : [])))],
    running: group.filter((s) => s.running).length,
    duplicateSpans: group.reduce((n, s) => n + (s.running ? 0 : (s.duplicates ?? 0)), 0),
    services: [...new Set(group.map((s) => s.service))].filter((s) => s !== '').sort(),
    names: [...new Set(group.map((s) => s.name))],
    attributes: [...hashes].sort((a, b) => a - b),
  };
}

/**
 * The summary the list shows. `now` (unix ns), when given, is where running spans end: the
 * digest's `end` does not count it yet.
 */
export function summaryOf(traceId: string, d: TraceDigest, now?: bigint): TraceSummary {
  const start = BigInt(d.start);
  let end = BigInt(d.end);
  if (now !== undefined && d.running > 0 && now > end) end = now;
  return {
    traceId,
    root: d.root,
    start: d.start,
    startMs: Number(start / 1_000_000n),
    durationMs: Number(end - start) / 1e6,
    spans: d.spans,
    errors: d.errors,
    forced: d.forced,
    executionIds: d.executionIds,
    running: d.running,
    duplicateSpans: d.duplicateSpans,
    services: d.services,
  };
}

/** Two unix ns times as the store writes them (decimal digits, no leading zeros), compared as numbers. */
export function compareNs(a: string, b: string): number {
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Newest first, by start. */
export function newestFirst(a: { start: string }, b: { start: string }): number {
  return compareNs(b.start, a.start);
}

/** The summaries of the traces of these spans, newest first (spans of a whole-store read). */
export function summarize(spans: readonly ViewSpan[]): TraceSummary[] {
  const byTrace = new Map<string, ViewSpan[]>();
  for (const s of spans) (byTrace.get(s.traceId) ?? byTrace.set(s.traceId, []).get(s.traceId)!).push(s);
  return [...byTrace].map(([traceId, group]) => summaryOf(traceId, digestOf(group, false))).sort(newestFirst);
}

/**
 * A 52-bit hash (two 32-bit FNV-1a passes, so it is a safe integer) of an attribute key, or of a
 * key and a value's text form. The index keeps these rather than every value: a filter on a pair
 * no trace has could match one by collision, with odds near 2^-52 per pair the trace holds.
 */
export function attributeHash(key: string, value?: string): number {
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ (value === undefined ? 0x5bd1e995 : 0x27d4eb2f);
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x000193a3) ^ (b >>> 15);
  }
  if (value !== undefined) {
    // A 0 between key and value: `ab`=`c` and `a`=`bc` differ.
    a = Math.imul(a, 0x01000193);
    b = Math.imul(b, 0x000193a3) ^ (b >>> 15);
    for (let i = 0; i < value.length; i++) {
      const c = value.charCodeAt(i);
      a = Math.imul(a ^ c, 0x01000193);
      b = Math.imul(b ^ c, 0x000193a3) ^ (b >>> 15);
    }
  }
  return (a >>> 0) * 0x100000 + ((b >>> 0) & 0xfffff);
}
