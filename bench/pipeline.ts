/**
 * bench/pipeline: guest records → receiver → pipeline collector → OTLP bytes, in spans per
 * second, against the same spans made on the host with the OpenTelemetry JS SDK, its batch span
 * processor and its protobuf serializer, in one run. Then memory under a flood into a collector
 * that is down.
 */
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { BasicTracerProvider, BatchSpanProcessor, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { BatchingManager } from '../host/batching/batching-manager.js';
import { encodeTraces } from '../host/export/otlp-encoder.js';
import { OtlpHttpExporter } from '../host/export/otlp-http-exporter.js';
import { PipelineCollector } from '../host/pipeline/pipeline-collector.js';
import type { SpanRecord } from '../host/pipeline/telemetry-records.js';
import { CallsiteRegistry } from '../host/receiver/callsite-registry.js';
import { TracingEventReceiver } from '../host/receiver/receiver.js';
import { FrameWriter } from '../shared/frame-writer.js';
import { median, type BenchRow } from './harness.js';

const N = 20_000;
const BATCH = 512;

/** Frames a guest would send: per span, new (2 fields) + enter + event + exit + drop. */
function guestFrames(): Uint8Array[] {
  const w = new FrameWriter(1 << 16);
  const frames: Uint8Array[] = [];
  w.newCallSite(1, 'span', 'handle request', 'plugin', 'info', undefined, undefined, undefined, ['http.route', 'attempt']);
  w.newCallSite(2, 'event', 'event', 'plugin', 'info', undefined, undefined, undefined, ['message', 'items']);
  let t = 0;
  for (let i = 1; i <= N; i++) {
    w.newSpan(i, undefined, 1, (t += 1000), ['/orders', i % 7]);
    w.spanEntered(i, (t += 100));
    w.newEvent(2, undefined, (t += 100), ['loaded', i % 10]);
    w.spanExited(i, (t += 100));
    w.spanDropped(i, (t += 100));
    if (w.length > 60_000) frames.push(w.finish());
  }
  frames.push(w.finish());
  return frames;
}

function sandtraceRun(frames: Uint8Array[], registry: CallsiteRegistry): number {
  const t = process.hrtime.bigint();
  let batch: SpanRecord[] = [];
  let bytes = 0;
  const collector = new PipelineCollector({
    eventsAs: 'span-events',
    handlers: {
      onSpan: (s) => {
        batch.push(s);
        if (batch.length === BATCH) {
          bytes += encodeTraces(batch, [['service.name', 'bench']]).length;
          batch = [];
        }
      },
    },
  });
  const receiver = new TracingEventReceiver({ collector, registry });
  for (const f of frames) receiver.receiveBatch(f);
  if (batch.length) bytes += encodeTraces(batch, [['service.name', 'bench']]).length;
  if (bytes === 0) throw new Error('nothing encoded');
  return Number(process.hrtime.bigint() - t) / N;
}

class SerializingExporter implements SpanExporter {
  bytes = 0;
  export(spans: ReadableSpan[], done: (r: { code: number }) => void): void {
    this.bytes += ProtobufTraceSerializer.serializeRequest(spans)!.length;
    done({ code: 0 });
  }
  async shutdown(): Promise<void> {}
}

async function otelRun(): Promise<number> {
  const exporter = new SerializingExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(exporter, { maxQueueSize: N, maxExportBatchSize: BATCH, scheduledDelayMillis: 60_000 })] });
  const tracer = provider.getTracer('plugin');
  const t = process.hrtime.bigint();
  for (let i = 1; i <= N; i++) {
    const span = tracer.startSpan('handle request', { attributes: { 'http.route': '/orders', attempt: i % 7 } });
    span.addEvent('loaded', { items: i % 10 });
    span.end();
  }
  await provider.forceFlush();
  const ns = Number(process.hrtime.bigint() - t) / N;
  await provider.shutdown();
  if (exporter.bytes === 0) throw new Error('nothing serialized');
  return ns;
}

async function floodPeak(maxMemoryBytes: number): Promise<{ peak: number; accounted: boolean }> {
  const dead = new OtlpHttpExporter({ endpoint: 'http://127.0.0.1:9', timeoutMs: 50, initialBackoffMs: 10, maxBackoffMs: 20 }, {});
  const b = new BatchingManager(dead, { maxMemoryBytes, flushIntervalMs: 10 });
  const collector = new PipelineCollector({ handlers: b.handlers() });
  const receiver = new TracingEventReceiver({ collector, registry: new CallsiteRegistry(), limits: { maxRecords: 10_000_000 } });
  let peak = 0;
  for (let round = 0; round < 10; round++) {
    for (const f of guestFrames()) receiver.receiveBatch(f);
    peak = Math.max(peak, b.getStats().memoryBytes);
    await new Promise((r) => setImmediate(r));
  }
  await b.shutdown(1000);
  const s = b.getStats();
  const total = 10 * N;
  const d = s.dropped.spans;
  return { peak, accounted: s.exported.spans + d.overflow + d.failed + d.shutdown === total };
}

export async function run(): Promise<BenchRow[]> {
  const frames = guestFrames();
  const registry = new CallsiteRegistry();
  sandtraceRun(frames, registry);
  await otelRun();
  const ours: number[] = [];
  const theirs: number[] = [];
  for (let i = 0; i < 5; i++) {
    ours.push(sandtraceRun(frames, registry));
    theirs.push(await otelRun());
  }
  const a = median(ours);
  const b = median(theirs);
  const max = 4 << 20;
  const flood = await floodPeak(max);
  return [
    { bench: 'pipeline', metric: 'guest records → OTLP bytes, spans/s', value: `${(1e9 / a / 1e3).toFixed(0)} k`, target: '', ok: undefined },
    { bench: 'pipeline', metric: 'OpenTelemetry JS SDK + batch processor, spans/s (baseline)', value: `${(1e9 / b / 1e3).toFixed(0)} k`, target: '', ok: undefined },
    { bench: 'pipeline', metric: 'sandtrace / OpenTelemetry JS throughput', value: `${(b / a).toFixed(2)}×`, target: '', ok: undefined },
    { bench: 'pipeline', metric: `flood into a dead collector: peak queue memory (limit ${max >> 20} MiB)`, value: `${(flood.peak / (1 << 20)).toFixed(2)} MiB`, target: '≤ limit', ok: flood.peak <= max },
    { bench: 'pipeline', metric: 'flood: every span exported or counted as dropped', value: flood.accounted ? 'yes' : 'NO', target: 'yes', ok: flood.accounted },
  ];
}
