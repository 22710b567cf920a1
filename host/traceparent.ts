/** W3C Trace Context `traceparent` headers: `00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`. */

export interface TraceParent {
  traceId: string;
  spanId: string;
  traceFlags: number;
}

const PATTERN = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** Parses a traceparent; returns undefined for anything malformed or with all-zero ids. */
export function parseTraceParent(header: string): TraceParent | undefined {
  const m = PATTERN.exec(header.trim().toLowerCase());
  if (m === null || m[1] === 'ff') return undefined;
  const [, , traceId, spanId, flags] = m;
  if (/^0+$/.test(traceId!) || /^0+$/.test(spanId!)) return undefined;
  return { traceId: traceId!, spanId: spanId!, traceFlags: parseInt(flags!, 16) };
}

export function formatTraceParent(p: TraceParent): string {
  return `00-${p.traceId}-${p.spanId}-${p.traceFlags.toString(16).padStart(2, '0')}`;
}
