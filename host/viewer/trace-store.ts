/**
 * Reads a local store (OTLP JSON lines: traces.jsonl, logs.jsonl, metrics.jsonl) into traces for
 * the viewer. The store is re-read on every request, so a running viewer sees new runs.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface ViewSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  scope: string;
  /** Unix ns as decimal strings (beyond 2^53), and the duration in ms. */
  start: string;
  end: string;
  durationMs: number;
  status: { code: number; message?: string };
  attributes: Record<string, unknown>;
  events: Array<{ time: string; name: string; attributes: Record<string, unknown> }>;
  executionId?: string;
  /** The termination cause when the host force-closed the span. */
  forcedCause?: string;
}

export interface ViewLog {
  time: string;
  severity: string;
  body: string;
  traceId?: string;
  spanId?: string;
  attributes: Record<string, unknown>;
}

export interface ViewMetric {
  name: string;
  kind: string;
  value: number;
  attributes: Record<string, unknown>;
  time: string;
}

export interface TraceSummary {
  traceId: string;
  root: string;
  start: string;
  durationMs: number;
  spans: number;
  errors: number;
  forced: string[];
  executionIds: string[];
}

type Json = Record<string, any>;

function plain(v: Json | undefined): unknown {
  if (v === undefined || v === null) return null;
  if ('stringValue' in v) return v.stringValue;
  if ('intValue' in v) return Number(v.intValue);
  if ('doubleValue' in v) return v.doubleValue;
  if ('boolValue' in v) return v.boolValue;
  if ('bytesValue' in v) return `base64:${v.bytesValue}`;
  return JSON.stringify(v);
}

/**
 * Attribute keys come from guests: each becomes an own property by definition, not assignment,
 * so `__proto__` is an attribute like any other and no prototype changes.
 */
function attrs(list: Json[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const a of list ?? []) Object.defineProperty(out, String(a.key), { value: plain(a.value), enumerable: true, writable: true, configurable: true });
  return out;
}

async function lines(folder: string, file: string): Promise<Json[]> {
  let text: string;
  try {
    text = await readFile(join(folder, file), 'utf8');
  } catch {
    return [];
  }
  const out: Json[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      out.push(JSON.parse(line));
    } catch {
      // a torn last line (a writer still appending): skip it
    }
  }
  return out;
}

export interface Store {
  spans: ViewSpan[];
  logs: ViewLog[];
  metrics: Array<ViewMetric & { executionId?: string }>;
}

export async function loadStore(folder: string): Promise<Store> {
  const spans: ViewSpan[] = [];
  for (const req of await lines(folder, 'traces.jsonl')) {
    for (const rs of req.resourceSpans ?? []) {
      for (const ss of rs.scopeSpans ?? []) {
        for (const s of ss.spans ?? []) {
          const a = attrs(s.attributes);
          const span: ViewSpan = {
            traceId: s.traceId,
            spanId: s.spanId,
            name: s.name,
            scope: ss.scope?.name ?? '',
            start: s.startTimeUnixNano,
            end: s.endTimeUnixNano,
            durationMs: Number(BigInt(s.endTimeUnixNano) - BigInt(s.startTimeUnixNano)) / 1e6,
            status: { code: s.status?.code ?? 0, ...(s.status?.message && { message: s.status.message }) },
            attributes: a,
            events: (s.events ?? []).map((e: Json) => ({ time: e.timeUnixNano, name: e.name, attributes: attrs(e.attributes) })),
          };
          if (s.parentSpanId) span.parentSpanId = s.parentSpanId;
          if (typeof a['sandtrace.execution.id'] === 'string') span.executionId = a['sandtrace.execution.id'];
          if (a['sandtrace.force_closed'] === true) span.forcedCause = String(a['sandtrace.termination.cause'] ?? 'unknown');
          spans.push(span);
        }
      }
    }
  }
  const logs: ViewLog[] = [];
  for (const req of await lines(folder, 'logs.jsonl')) {
    for (const rl of req.resourceLogs ?? []) {
      for (const sl of rl.scopeLogs ?? []) {
        for (const l of sl.logRecords ?? []) {
          const log: ViewLog = { time: l.timeUnixNano, severity: l.severityText ?? '', body: String(plain(l.body) ?? ''), attributes: attrs(l.attributes) };
          if (l.traceId) log.traceId = l.traceId;
          if (l.spanId) log.spanId = l.spanId;
          logs.push(log);
        }
      }
    }
  }
  const metrics: Store['metrics'] = [];
  for (const req of await lines(folder, 'metrics.jsonl')) {
    for (const rm of req.resourceMetrics ?? []) {
      for (const sm of rm.scopeMetrics ?? []) {
        for (const m of sm.metrics ?? []) {
          const kind = m.sum ? 'sum' : m.gauge ? 'gauge' : 'histogram';
          for (const p of (m.sum ?? m.gauge ?? m.histogram)?.dataPoints ?? []) {
            metrics.push({ name: m.name, kind, value: p.asDouble ?? p.sum ?? 0, attributes: attrs(p.attributes), time: p.timeUnixNano });
          }
        }
      }
    }
  }
  return { spans, logs, metrics };
}

export function summarize(spans: readonly ViewSpan[]): TraceSummary[] {
  const byTrace = new Map<string, ViewSpan[]>();
  for (const s of spans) (byTrace.get(s.traceId) ?? byTrace.set(s.traceId, []).get(s.traceId)!).push(s);
  const out: TraceSummary[] = [];
  for (const [traceId, group] of byTrace) {
    const ids = new Set(group.map((s) => s.spanId));
    const roots = group.filter((s) => s.parentSpanId === undefined || !ids.has(s.parentSpanId));
    const start = group.reduce((m, s) => (BigInt(s.start) < BigInt(m) ? s.start : m), group[0]!.start);
    const end = group.reduce((m, s) => (BigInt(s.end) > BigInt(m) ? s.end : m), group[0]!.end);
    // Every run's root is its execution span: name the trace by the guest's own root span and source.
    const root = roots[0] ?? group[0]!;
    const guestRoot = root.name === 'sandtrace.execution' ? group.find((s) => s.parentSpanId === root.spanId) : undefined;
    const source = root.attributes['guest.source'];
    out.push({
      traceId,
      root: guestRoot !== undefined ? `${guestRoot.name}${typeof source === 'string' ? ` · ${source}` : ''}` : root.name,
      start,
      durationMs: Number(BigInt(end) - BigInt(start)) / 1e6,
      spans: group.length,
      errors: group.filter((s) => s.status.code === 2).length,
      forced: [...new Set(group.flatMap((s) => (s.forcedCause ? [s.forcedCause] : [])))],
      executionIds: [...new Set(group.flatMap((s) => (s.executionId ? [s.executionId] : [])))],
    });
  }
  return out.sort((a, b) => (BigInt(a.start) > BigInt(b.start) ? -1 : 1));
}
