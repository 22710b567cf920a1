/**
 * Writes a large store quickly, line for line in the FileExporter's format (one OTLP JSON request
 * per line, one resource per line, batches of `batch` spans), by templating strings rather than
 * going through the exporter. Traces of `spansPerTrace` spans (an execution span, the guest's
 * root, its children) from `services` services; each service's spans are batched on their own,
 * so most lines hold spans of dozens of traces and some traces straddle two lines. Each trace also
 * has a log line's worth of records, and a metrics line is written every `batch` spans.
 */
import { open } from 'node:fs/promises';
import { join } from 'node:path';

export interface SyntheticStore {
  traceIds: string[];
  /** Bytes written per file. */
  bytes: { traces: number; logs: number; metrics: number };
  spans: number;
  /** Unix ns of the first trace's start; trace i starts i ms later. */
  t0: bigint;
}

const hex = (n: number, width: number) => n.toString(16).padStart(width, '0');
const str = (key: string, v: string) => `{"key":"${key}","value":{"stringValue":"${v}"}}`;
const int = (key: string, v: number) => `{"key":"${key}","value":{"intValue":"${v}"}}`;

/**
 * @param options.targetBytes instead of `traces`: write traces until traces.jsonl reaches this size.
 * @param options.idOffset added to the trace number in trace and span ids (a second store's ids differ).
 */
export async function writeSyntheticStore(
  folder: string,
  options: { traces?: number; targetBytes?: number; spansPerTrace?: number; batch?: number; services?: number; t0?: bigint; idOffset?: number } = {},
): Promise<SyntheticStore> {
  const perTrace = options.spansPerTrace ?? 10;
  const batch = options.batch ?? 512;
  const serviceCount = options.services ?? 4;
  const t0 = options.t0 ?? 1_700_000_000_000_000_000n;
  const traceFile = await open(join(folder, 'traces.jsonl'), 'a');
  const logFile = await open(join(folder, 'logs.jsonl'), 'a');
  const metricFile = await open(join(folder, 'metrics.jsonl'), 'a');
  const bytes = { traces: 0, logs: 0, metrics: 0 };
  const pending: string[][] = Array.from({ length: serviceCount }, () => []);
  const pendingLogs: string[][] = Array.from({ length: serviceCount }, () => []);
  const out: string[] = [];
  const outLogs: string[] = [];
  const outMetrics: string[] = [];
  const resource = (s: number) => `"resource":{"attributes":[${str('service.name', `svc-${s}`)},${str('host.name', 'bench-host')}]}`;
  const traceIds: string[] = [];
  let spans = 0;
  let lastTime = t0;

  const flush = async (force: boolean) => {
    if (!force && out.length < 64) return;
    if (out.length > 0) {
      const text = out.join('');
      bytes.traces += Buffer.byteLength(text);
      await traceFile.write(text);
    }
    if (outLogs.length > 0) {
      const text = outLogs.join('');
      bytes.logs += Buffer.byteLength(text);
      await logFile.write(text);
    }
    if (outMetrics.length > 0) {
      const text = outMetrics.join('');
      bytes.metrics += Buffer.byteLength(text);
      await metricFile.write(text);
    }
    out.length = outLogs.length = outMetrics.length = 0;
  };
  const line = (s: number) => {
    out.push(`{"resourceSpans":[{${resource(s)},"scopeSpans":[{"scope":{"name":"sandtrace"},"spans":[${pending[s]!.join(',')}]}]}]}\n`);
    pending[s]!.length = 0;
    if (pendingLogs[s]!.length > 0) outLogs.push(`{"resourceLogs":[{${resource(s)},"scopeLogs":[{"scope":{"name":"sandtrace"},"logRecords":[${pendingLogs[s]!.join(',')}]}]}]}\n`);
    pendingLogs[s]!.length = 0;
    const t = lastTime.toString();
    outMetrics.push(
      `{"resourceMetrics":[{${resource(s)},"scopeMetrics":[{"scope":{"name":"sandtrace"},"metrics":[` +
        `{"name":"orders","sum":{"dataPoints":[{"attributes":[],"startTimeUnixNano":"${t0}","timeUnixNano":"${t}","asInt":"${spans}"}],"aggregationTemporality":1,"isMonotonic":true}},` +
        `{"name":"latency_ms","histogram":{"dataPoints":[{"attributes":[],"startTimeUnixNano":"${t0}","timeUnixNano":"${t}","count":"3","sum":127,"min":7,"max":60,"bucketCounts":["0","1","0","0","2","0"],"explicitBounds":[0,10,25,50,75]}],"aggregationTemporality":1}}]}]}]}\n`,
    );
  };

  for (let i = 0; options.traces !== undefined ? i < options.traces : bytes.traces < options.targetBytes!; i++) {
    const n = i + (options.idOffset ?? 0);
    const traceId = hex(n, 24) + '5a5a5a5a';
    traceIds.push(traceId);
    const s = i % serviceCount;
    const start = t0 + BigInt(i) * 1_000_000n;
    const exec = `exec-${i}`;
    for (let k = 0; k < perTrace; k++) {
      const spanId = hex(n * perTrace + k, 16);
      const parent = k === 0 ? '' : `,"parentSpanId":"${hex(n * perTrace + (k === 1 ? 0 : 1), 16)}"`;
      const name = k === 0 ? 'sandtrace.execution' : k === 1 ? `handle order ${i % 97}` : `step ${k}`;
      const a = start + BigInt(k) * 10_000n;
      const b = start + 900_000n - BigInt(k) * 10_000n;
      if (b > lastTime) lastTime = b;
      const attributes = [str('sandtrace.execution.id', exec), k === 0 ? str('guest.source', 'guest.js') : int('items', (i + k) % 50), str('customer', `c-${i % 1000}`)];
      const status = k === perTrace - 1 && i % 10 === 0 ? '{"code":2,"message":"failed"}' : '{}';
      const events = k === 2 ? `[{"timeUnixNano":"${a + 5_000n}","name":"priced","attributes":[${int('total', i % 300)}]}]` : '[]';
      pending[s]!.push(
        `{"traceId":"${traceId}","spanId":"${spanId}","name":"${name}","kind":1,"startTimeUnixNano":"${a}","endTimeUnixNano":"${b}","attributes":[${attributes.join(',')}],"events":${events},"links":[],"flags":257,"status":${status}${parent}}`,
      );
      spans++;
      if (pending[s]!.length >= batch) line(s);
    }
    pendingLogs[s]!.push(
      `{"timeUnixNano":"${start + 20_000n}","observedTimeUnixNano":"${start + 20_000n}","severityNumber":9,"severityText":"INFO","body":{"stringValue":"order ${i} priced"},"attributes":[${str('sandtrace.execution.id', exec)}],"traceId":"${traceId}","spanId":"${hex(n * perTrace + 1, 16)}","flags":1}`,
    );
    await flush(false);
  }
  for (let s = 0; s < serviceCount; s++) if (pending[s]!.length > 0) line(s);
  await flush(true);
  await traceFile.close();
  await logFile.close();
  await metricFile.close();
  return { traceIds, bytes, spans, t0 };
}
