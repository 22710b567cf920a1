/**
 * The trace list's filters, as `/api/traces` query parameters (all optional, combined with AND):
 * `service` (exact, repeatable: any of), `name` (substring of a span name, any case), `attr`
 * (`key=value` or `key`, repeatable: all of), `minMs`/`maxMs` (duration), `status`
 * (error | ok | forced | running), `from`/`to` (start, unix ms), `execution` (substring of an
 * execution id) and `limit` (default 500).
 */
import { attributeHash, type TraceDigest, type TraceSummary } from './trace-digest.js';

export const DEFAULT_LIMIT = 500;

export interface TraceQuery {
  services: string[];
  name?: string;
  /** Hashes of the `attr` filters: every one must be among the trace's. */
  attributes: number[];
  minMs?: number;
  maxMs?: number;
  status?: 'error' | 'ok' | 'forced' | 'running';
  fromMs?: number;
  toMs?: number;
  execution?: string;
  limit: number;
}

/** A query parameter that does not say what it should: the answer is 400 with this message. */
export class BadQuery extends Error {
  override readonly name = 'BadQuery';
}

function number(params: URLSearchParams, key: string): number | undefined {
  const v = params.get(key);
  if (v === null || v === '') return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new BadQuery(`${key} must be a number, got '${v}'`);
  return n;
}

export function parseQuery(params: URLSearchParams): TraceQuery {
  const status = params.get('status') || undefined;
  if (status !== undefined && status !== 'error' && status !== 'ok' && status !== 'forced' && status !== 'running') throw new BadQuery(`status must be error, ok, forced or running, got '${status}'`);
  const limit = number(params, 'limit') ?? DEFAULT_LIMIT;
  if (!Number.isInteger(limit) || limit < 0) throw new BadQuery(`limit must be a whole number ≥ 0, got '${params.get('limit')}'`);
  const q: TraceQuery = {
    services: params.getAll('service'),
    attributes: params.getAll('attr').map((a) => {
      const eq = a.indexOf('=');
      return eq < 0 ? attributeHash(a) : attributeHash(a.slice(0, eq), a.slice(eq + 1));
    }),
    limit,
  };
  const name = params.get('name');
  if (name) q.name = name.toLowerCase();
  const execution = params.get('execution');
  if (execution) q.execution = execution;
  if (status !== undefined) q.status = status;
  const minMs = number(params, 'minMs');
  const maxMs = number(params, 'maxMs');
  const fromMs = number(params, 'from');
  const toMs = number(params, 'to');
  if (minMs !== undefined) q.minMs = minMs;
  if (maxMs !== undefined) q.maxMs = maxMs;
  if (fromMs !== undefined) q.fromMs = fromMs;
  if (toMs !== undefined) q.toMs = toMs;
  return q;
}

/** Whether the query filters nothing (only a limit): every trace matches. */
export function filtersNothing(q: TraceQuery): boolean {
  return q.services.length === 0 && q.attributes.length === 0 && q.name === undefined && q.status === undefined && q.minMs === undefined && q.maxMs === undefined && q.fromMs === undefined && q.toMs === undefined && q.execution === undefined;
}

function hasHash(sorted: readonly number[], h: number): boolean {
  let lo = 0;
  let hi = sorted.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const v = sorted[mid]!;
    if (v === h) return true;
    if (v < h) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}

/** Whether a trace passes the filters: its digest, its summary (durations count running spans to now), its lower-cased span names. */
export function matches(q: TraceQuery, d: TraceDigest, s: TraceSummary, lowerNames: () => string[]): boolean {
  if (q.services.length > 0 && !q.services.some((name) => d.services.includes(name))) return false;
  if (q.status === 'error' && d.errors === 0) return false;
  if (q.status === 'ok' && d.errors > 0) return false;
  if (q.status === 'forced' && d.forced.length === 0) return false;
  if (q.status === 'running' && d.running === 0) return false;
  if (q.minMs !== undefined && s.durationMs < q.minMs) return false;
  if (q.maxMs !== undefined && s.durationMs > q.maxMs) return false;
  if (q.fromMs !== undefined && s.startMs < q.fromMs) return false;
  if (q.toMs !== undefined && s.startMs > q.toMs) return false;
  if (q.execution !== undefined && !d.executionIds.some((id) => id.includes(q.execution!))) return false;
  for (const h of q.attributes) if (!hasHash(d.attributes, h)) return false;
  if (q.name !== undefined && !lowerNames().some((n) => n.includes(q.name!))) return false;
  return true;
}
