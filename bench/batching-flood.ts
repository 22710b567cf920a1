/**
 * bench/batching-flood: the batching queue's memory under a flood into a collector that is down
 * (a closed port), and whether every span is accounted for (exported, or counted as dropped).
 * The frames are built on the host (per span: new span with 2 fields, enter, event, exit, close),
 * fed through a receiver and the pipeline collector into a `BatchingManager` bounded at 4 MiB.
 * (Formerly part of bench/pipeline, whose throughput comparison bench/end-to-end replaces.)
 */
import { BatchingManager } from '../host/batching/batching-manager.js';
import { OtlpHttpExporter } from '../host/export/otlp-http-exporter.js';
import { PipelineCollector } from '../host/pipeline/pipeline-collector.js';
import { CallsiteRegistry } from '../host/receiver/callsite-registry.js';
import { TracingEventReceiver } from '../host/receiver/receiver.js';
import { FrameWriter } from '../shared/frame-writer.js';
import type { BenchRow } from './harness.js';

const N = 20_000;

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
  const max = 4 << 20;
  const flood = await floodPeak(max);
  return [
    { bench: 'batching', metric: `flood into a dead collector: peak queue memory as the manager counts it (limit ${max >> 20} MiB)`, value: `${(flood.peak / (1 << 20)).toFixed(2)} MiB`, target: '≤ limit', ok: flood.peak <= max },
    { bench: 'batching', metric: 'flood: every span exported or counted as dropped', value: flood.accounted ? 'yes' : 'NO', target: 'yes', ok: flood.accounted },
  ];
}
