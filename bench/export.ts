/**
 * bench/export: the same completed spans encoded as OTLP protobuf by sandtrace's encoder and by
 * OpenTelemetry JS's serializer (@opentelemetry/otlp-transformer), in one run. Both outputs are
 * decoded to check they carry the same spans.
 */
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { encodeTraces } from '../host/export/otlp-encoder.js';
import { otlpType } from '../host/export/otlp-proto.js';
import type { SpanRecord } from '../host/pipeline/telemetry-records.js';
import type { Values } from '../shared/records.js';
import { compare, type BenchRow } from './harness.js';

const N = 2000;

export function otelSpans(n: number): ReadableSpan[] {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const tracer = provider.getTracer('plugin');
  for (let i = 0; i < n; i++) {
    const span = tracer.startSpan('handle request', { startTime: [1_700_000_000, i * 1000], attributes: { 'http.route': '/orders', user: `user-${i % 50}`, attempt: i % 7, 'cache.hit': i % 3 === 0, ratio: 0.5 } });
    span.addEvent('loaded', { items: i % 10 }, [1_700_000_000, i * 1000 + 100]);
    if (i % 10 === 0) span.setStatus({ code: 2, message: 'failed' });
    span.end([1_700_000_000, i * 1000 + 500]);
  }
  return exporter.getFinishedSpans();
}

/** The same spans as sandtrace records. */
export function toRecords(spans: readonly ReadableSpan[]): SpanRecord[] {
  const nanos = (t: [number, number]) => BigInt(t[0]) * 1_000_000_000n + BigInt(t[1]);
  const values = (a: Record<string, unknown>): Values => Object.entries(a).map(([k, v]) => [k, v as string | number | boolean]);
  return spans.map((s) => ({
    traceId: new Uint8Array(Buffer.from(s.spanContext().traceId, 'hex')),
    spanId: new Uint8Array(Buffer.from(s.spanContext().spanId, 'hex')),
    parentSpanId: undefined,
    traceFlags: s.spanContext().traceFlags,
    name: s.name,
    scope: 'plugin',
    start: nanos(s.startTime),
    end: nanos(s.endTime),
    attributes: values(s.attributes),
    events: s.events.map((e) => ({ time: nanos(e.time), name: e.name, attributes: values(e.attributes ?? {}) })),
    links: [],
    status: s.status.code === 2 ? { code: 'error', message: s.status.message ?? '' } : { code: 'unset' },
    executionId: undefined,
    forced: undefined,
    droppedEvents: 0,
  }));
}

/** Spans of a request, reduced to what both encoders must agree on. */
function decodedSpans(bytes: Uint8Array): unknown[] {
  const t = otlpType('ExportTraceServiceRequest');
  const req = t.toObject(t.decode(bytes), { longs: String, bytes: String }) as { resourceSpans: Array<{ scopeSpans: Array<{ spans: Array<Record<string, any>> }> }> };
  return req.resourceSpans
    .flatMap((r) => r.scopeSpans.flatMap((s) => s.spans))
    .map((s) => ({
      traceId: s.traceId,
      spanId: s.spanId,
      name: s.name,
      start: s.startTimeUnixNano,
      end: s.endTimeUnixNano,
      attributes: Object.fromEntries((s.attributes ?? []).map((a: any) => [a.key, a.value])),
      events: (s.events ?? []).map((e: any) => [e.timeUnixNano, e.name, (e.attributes ?? []).map((a: any) => [a.key, a.value])]),
      status: s.status?.code ?? 0,
    }));
}

export function run(): BenchRow[] {
  const spans = otelSpans(N);
  const records = toRecords(spans);
  const resource: Values = [['service.name', 'bench']];
  const ours = encodeTraces(records, resource);
  const theirs = ProtobufTraceSerializer.serializeRequest(spans)!;
  const same = JSON.stringify(decodedSpans(ours)) === JSON.stringify(decodedSpans(theirs));
  let sink = 0;
  const { subject, baseline, ratio } = compare(
    () => (sink += encodeTraces(records, resource).length),
    () => (sink += ProtobufTraceSerializer.serializeRequest(spans)!.length),
    N,
  );
  if (sink < 0) console.log(sink);
  const speedup = 1 / ratio;
  return [
    { bench: 'export', metric: 'sandtrace OTLP encoder, spans/s', value: `${(1e9 / subject / 1e3).toFixed(0)} k`, target: '', ok: undefined },
    { bench: 'export', metric: 'OpenTelemetry JS serializer, spans/s (baseline)', value: `${(1e9 / baseline / 1e3).toFixed(0)} k`, target: '', ok: undefined },
    { bench: 'export', metric: 'sandtrace / OpenTelemetry JS throughput', value: `${speedup.toFixed(2)}×`, target: '≥ 2×', ok: speedup >= 2 },
    { bench: 'export', metric: 'both decode to the same spans', value: same ? 'yes' : 'NO', target: 'yes', ok: same },
    { bench: 'export', metric: 'bytes per span: sandtrace / OpenTelemetry JS', value: `${(ours.length / N).toFixed(0)} / ${(theirs.length / N).toFixed(0)}`, target: '', ok: undefined },
  ];
}
