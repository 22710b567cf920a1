/**
 * OpenTelemetry data conventions, checked against OpenTelemetry JS itself: the same situation
 * (a span under a remote parent, a link to a remote context, an error with a cause) traced with
 * the OpenTelemetry SDK and serialized by its own OTLP transformer, and traced by a guest through
 * sandtrace's pipeline and encoder, must carry the same flags and the same `exception` event.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ROOT_CONTEXT, trace, TraceFlags } from '@opentelemetry/api';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { encodeTraces } from '../host/export/otlp-encoder.js';
import { otlpType } from '../host/export/otlp-proto.js';
import { OpenTelemetryCollector } from '../host/bridge/opentelemetry-collector.js';
import { PipelineCollector } from '../host/pipeline/pipeline-collector.js';
import type { SpanRecord } from '../host/pipeline/telemetry-records.js';
import { runQuickJS } from '../host/sandbox/quickjs-runner.js';

const TRACEPARENT = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
const LINK = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';

function decodeSpans(bytes: Uint8Array): Array<Record<string, any>> {
  const type = otlpType('ExportTraceServiceRequest');
  const req = type.toObject(type.decode(bytes), { longs: String, bytes: String, defaults: true }) as Record<string, any>;
  return req.resourceSpans.flatMap((r: any) => r.scopeSpans.flatMap((s: any) => s.spans));
}

/** What OpenTelemetry JS writes: a span under a remote parent, linked to a remote context, recording an error with a cause. */
async function openTelemetryJs(): Promise<Record<string, any>> {
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const parent = trace.setSpanContext(ROOT_CONTEXT, { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: TraceFlags.SAMPLED, isRemote: true });
  const span = provider.getTracer('t').startSpan('handle', { links: [{ context: { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', traceFlags: 1, isRemote: true } }] }, parent);
  span.recordException({ name: 'TypeError', message: 'bad input', stack: 'TypeError: bad input\nCaused by: Error: root' });
  span.end();
  const finished = exporter.getFinishedSpans(); // before shutdown(), which empties the in-memory exporter
  await provider.shutdown();
  return decodeSpans(ProtobufTraceSerializer.serializeRequest(finished)!)[0]!;
}

/** The same through a QuickJS guest, the pipeline collector and sandtrace's encoder. */
async function sandtrace(): Promise<Record<string, any>[]> {
  const spans: SpanRecord[] = [];
  const collector = new PipelineCollector({ handlers: { onSpan: (s) => spans.push(s) } });
  await runQuickJS(
    `const s = tracing.span('handle', {}, { link: ${JSON.stringify(LINK)} });
     try { s.inSpan(() => { throw new TypeError('bad input', { cause: new Error('root') }); }); } catch {} finally { s.close(); }`,
    { collector, traceparent: TRACEPARENT },
  );
  return decodeSpans(encodeTraces(spans, [['service.name', 't']]));
}

describe('OpenTelemetry conventions, as OpenTelemetry JS writes them', () => {
  test('span flags: a span under a remote parent and a link to a remote context say so (0x300); a local parent does not (0x100)', async () => {
    const reference = await openTelemetryJs();
    const ours = await sandtrace();
    const exec = ours.find((s) => s.name === 'sandtrace.execution')!;
    const handle = ours.find((s) => s.name === 'handle')!;
    assert.equal(exec.flags, reference.flags, 'the execution span under the host traceparent');
    assert.equal(exec.flags, 0x301);
    assert.equal(handle.flags, 0x101, 'a guest span under the execution span: its parent is local');
    assert.equal(handle.links[0].flags, reference.links[0].flags);
    assert.equal(handle.links[0].flags, 0x301);
  });

  test('a guest error is an exception event with type, message and the cause chain, and the status description; not an attribute', async () => {
    const reference = await openTelemetryJs();
    const handle = (await sandtrace()).find((s) => s.name === 'handle')!;
    const ex = handle.events.find((e: any) => e.name === 'exception');
    assert.ok(ex, 'an exception event');
    const attrs = (e: any) => Object.fromEntries(e.attributes.map((a: any) => [a.key, a.value.stringValue]));
    const ref = attrs(reference.events.find((e: any) => e.name === 'exception'));
    assert.deepEqual(Object.keys(attrs(ex)).sort(), Object.keys(ref).sort(), 'the same attribute keys as OpenTelemetry JS');
    assert.deepEqual(attrs(ex), { 'exception.type': 'TypeError', 'exception.message': 'bad input', 'exception.stacktrace': 'TypeError: bad input\nCaused by: Error: root' });
    assert.equal(handle.status.code, 2);
    assert.equal(handle.status.message, 'TypeError: bad input: Error: root');
    assert.ok(!handle.attributes.some((a: any) => a.key === 'error'));
  });

  test('the OpenTelemetry bridge sends guest metrics to the host MeterProvider: counters, histograms, gauges', async () => {
    const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60_000 });
    const meterProvider = new MeterProvider({ readers: [reader] });
    const collector = new OpenTelemetryCollector({ meter: meterProvider.getMeter('sandtrace') });
    await runQuickJS(
      `tracing.counter('requests', 2, { route: '/a' }); tracing.counter('requests', 3, { route: '/a' }); tracing.counter('requests', -1, { route: '/a' });
       tracing.histogram('latency_ms', 7); tracing.histogram('latency_ms', 60); tracing.gauge('queue', 4);`,
      { collector },
    );
    await reader.forceFlush();
    const points = new Map(exporter.getMetrics().flatMap((r) => r.scopeMetrics.flatMap((s) => s.metrics)).map((m) => [m.descriptor.name, m.dataPoints[0]!]));
    assert.equal(points.get('requests')!.value, 5);
    assert.deepEqual(points.get('requests')!.attributes, { route: '/a' });
    assert.equal((points.get('latency_ms')!.value as { count: number }).count, 2);
    assert.equal(points.get('queue')!.value, 4);
    assert.equal(collector.negativeCounterIncrements, 1, 'an OpenTelemetry Counter only adds: the negative increment is counted, not recorded');
    await meterProvider.shutdown();
  });

  test('the OpenTelemetry bridge records a guest error with recordException', async () => {
    const exporter = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    const collector = new OpenTelemetryCollector({ tracer: provider.getTracer('sandtrace') });
    await runQuickJS(`try { tracing.inSpan('handle', {}, () => { throw new RangeError('too far', { cause: new Error('root') }); }); } catch {}`, { collector });
    const handle = exporter.getFinishedSpans().find((s) => s.name === 'handle')!;
    await provider.shutdown();
    const ex = handle.events.find((e) => e.name === 'exception')!;
    assert.deepEqual(ex.attributes, { 'exception.type': 'RangeError', 'exception.message': 'too far', 'exception.stacktrace': 'RangeError: too far\nCaused by: Error: root' });
    assert.equal(handle.attributes.error, undefined);
  });
});
