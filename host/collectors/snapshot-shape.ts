/**
 * Shape checks for the parts of a span snapshot that collectors exporting to OpenTelemetry share
 * (span context, links, span events), read back from storage before any span is restored from it.
 * Each returns what is wrong, naming the field, or undefined.
 */

const TRACE_ID = /^[0-9a-f]{32}$/i;
const SPAN_ID = /^[0-9a-f]{16}$/i;
const DECIMAL_NS = /^\d{1,20}$/;

export const isSnapshotRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isTraceFlags = (v: unknown): boolean => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xff;

/** Unix nanoseconds as a decimal string that fits 64 bits (what a snapshot writes for a time). */
export const isUnixNs = (v: unknown): boolean => typeof v === 'string' && DECIMAL_NS.test(v) && BigInt(v) <= 0xffff_ffff_ffff_ffffn;

/** `traceId`, `spanId`, optional `parentSpanId` (hex) and `traceFlags` of a snapshot object. */
export function spanContextProblem(snap: Record<string, unknown>): string | undefined {
  if (typeof snap.traceId !== 'string' || !TRACE_ID.test(snap.traceId)) return 'traceId must be 32 hex characters';
  if (typeof snap.spanId !== 'string' || !SPAN_ID.test(snap.spanId)) return 'spanId must be 16 hex characters';
  if (snap.parentSpanId !== undefined && (typeof snap.parentSpanId !== 'string' || !SPAN_ID.test(snap.parentSpanId))) return 'parentSpanId must be 16 hex characters';
  if (!isTraceFlags(snap.traceFlags)) return 'traceFlags must be an integer from 0 to 255';
  return undefined;
}

/** `links`: an array of { traceId, spanId, traceFlags }. */
export function linksProblem(links: unknown): string | undefined {
  if (!Array.isArray(links)) return 'links must be an array';
  for (const [i, l] of links.entries()) {
    if (!isSnapshotRecord(l)) return `links[${i}] must be an object`;
    if (typeof l.traceId !== 'string' || !TRACE_ID.test(l.traceId)) return `links[${i}].traceId must be 32 hex characters`;
    if (typeof l.spanId !== 'string' || !SPAN_ID.test(l.spanId)) return `links[${i}].spanId must be 16 hex characters`;
    if (!isTraceFlags(l.traceFlags)) return `links[${i}].traceFlags must be an integer from 0 to 255`;
  }
  return undefined;
}

/** `events`: an array of { time (unix ns string), name, attributes: [name, string | number | boolean][] }. */
export function spanEventsProblem(events: unknown): string | undefined {
  if (!Array.isArray(events)) return 'events must be an array';
  for (const [i, e] of events.entries()) {
    if (!isSnapshotRecord(e)) return `events[${i}] must be an object`;
    if (!isUnixNs(e.time)) return `events[${i}].time must be unix ns as a decimal string`;
    if (typeof e.name !== 'string') return `events[${i}].name must be a string`;
    if (!Array.isArray(e.attributes)) return `events[${i}].attributes must be an array`;
    for (const [j, a] of e.attributes.entries()) {
      const ok = Array.isArray(a) && a.length === 2 && typeof a[0] === 'string' && (typeof a[1] === 'string' || typeof a[1] === 'boolean' || (typeof a[1] === 'number' && Number.isFinite(a[1])));
      if (!ok) return `events[${i}].attributes[${j}] must be a [name, string | number | boolean] pair`;
    }
  }
  return undefined;
}
