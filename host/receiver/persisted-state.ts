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

/**
 * Checks persisted state read back from storage, so a corrupted record is refused up front with
 * a message, instead of failing later in the middle of a guest's run. Returns the problems found.
 */
export function validatePersisted(metadata: PersistedMetadata | undefined, spans: PersistedSpans | undefined): string[] {
  const problems: string[] = [];
  const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
  const isId = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  const callsite = (c: unknown, where: string) => {
    if (!isObj(c)) return problems.push(`${where}: not an object`);
    if (c.kind !== 'span' && c.kind !== 'event') problems.push(`${where}: kind must be 'span' or 'event'`);
    if (typeof c.name !== 'string' || typeof c.target !== 'string') problems.push(`${where}: name and target must be strings`);
    if (!['trace', 'debug', 'info', 'warn', 'error'].includes(c.level as string)) problems.push(`${where}: unknown level`);
    if (!Array.isArray(c.fields) || !c.fields.every((f) => typeof f === 'string')) problems.push(`${where}: fields must be strings`);
    return 0;
  };
  if (metadata !== undefined) {
    if (!isObj(metadata) || !Array.isArray(metadata.callsites)) problems.push('metadata: callsites must be an array');
    else metadata.callsites.forEach((c, i) => (isId((c as { id?: unknown }).id) ? callsite(c, `metadata.callsites[${i}]`) : problems.push(`metadata.callsites[${i}]: bad id`)));
  }
  if (spans !== undefined) {
    if (!isObj(spans) || !Array.isArray(spans.spans)) problems.push('spans: spans must be an array');
    else {
      spans.spans.forEach((s, i) => {
        const where = `spans.spans[${i}]`;
        if (!isObj(s)) return problems.push(`${where}: not an object`);
        if (!isId(s.id)) problems.push(`${where}: bad id`);
        callsite(s.callsite, `${where}.callsite`);
        if (!isId(s.refs) || (s.refs as number) < 1) problems.push(`${where}: refs must be a positive integer`);
        if (typeof s.start !== 'string' || !/^\d+$/.test(s.start)) problems.push(`${where}: start must be unix ns as a decimal string`);
        if (!Array.isArray(s.values) || !Array.isArray(s.follows)) problems.push(`${where}: values and follows must be arrays`);
        if (s.parent !== undefined && s.parent !== null && !isId(s.parent)) problems.push(`${where}: bad parent`);
        if (s.entered !== undefined && !isId(s.entered)) problems.push(`${where}: bad entered count`);
        return 0;
      });
      if (spans.stack !== undefined && !(Array.isArray(spans.stack) && spans.stack.every(isId))) problems.push('spans.stack: must be span ids');
    }
  }
  return problems;
}
