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
  /** The collector's own data for the span (see Collector.persistSpan). */
  collector?: unknown;
}

export interface PersistedSpans {
  version: 1;
  spans: PersistedSpan[];
  /** Guest ids of the spans the guest still has entered, innermost last. */
  stack?: number[];
}

export function emptyMetadata(): PersistedMetadata {
  return { version: 1, callsites: [] };
}

export function emptySpans(): PersistedSpans {
  return { version: 1, spans: [] };
}
