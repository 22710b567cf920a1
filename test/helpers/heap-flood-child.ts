/**
 * Run by export-pressure.test.ts with `node --expose-gc`: floods a collector that never answers
 * (batches stay in flight, bodies held) and one that refuses connections with records carrying
 * large Uint8Array fields, then measures what the process retains (heapUsed + arrayBuffers
 * after gc()) against maxMemoryBytes. Prints one JSON line.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { randomFillSync } from 'node:crypto';
import { BatchingManager } from '../../host/batching/batching-manager.js';
import { OtlpHttpExporter } from '../../host/export/otlp-http-exporter.js';
import { log, span } from './records.js';

const gc = (globalThis as { gc?: () => void }).gc!;
const held = () => {
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};

const MAX = 8 << 20;
const out: Record<string, unknown> = {};

async function flood(endpoint: string, name: string): Promise<void> {
  const exporter = new OtlpHttpExporter({ endpoint, timeoutMs: 60_000, initialBackoffMs: 50, maxBackoffMs: 100 }, {});
  // Warm up what any export loads once (transport, agents), outside the measure.
  await exporter.exportLogs([]);
  const base = held();
  const b = new BatchingManager(exporter, { maxMemoryBytes: MAX, maxBatchSize: 256, flushIntervalMs: 5 });
  let peak = 0;
  for (let i = 0; i < 6000; i++) {
    const bytes = randomFillSync(new Uint8Array(16 * 1024));
    if (i % 2 === 0) b.addSpan(span(i % 10 === 0, [['payload', bytes], ['note', 'x'.repeat(200)]]));
    else b.addLog(log('info', 'y'.repeat(100), [['payload', bytes]]));
    if (i % 500 === 0) {
      await new Promise((r) => setTimeout(r, 10));
      peak = Math.max(peak, held() - base);
    }
  }
  await new Promise((r) => setTimeout(r, 100));
  peak = Math.max(peak, held() - base);
  const s = b.getStats();
  out[name] = { peakRatio: Number((peak / MAX).toFixed(3)), charged: s.memoryBytes, inFlight: s.inFlight, queued: s.queued.spans + s.queued.logs };
  await b.shutdown(100);
}

const silent = http.createServer((req) => req.resume()); // reads requests, never answers
await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
await flood(`http://127.0.0.1:${(silent.address() as AddressInfo).port}`, 'silent');
silent.closeAllConnections();
await new Promise<void>((r) => silent.close(() => r()));

const closed = http.createServer();
await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
const port = (closed.address() as AddressInfo).port;
await new Promise<void>((r) => closed.close(() => r()));
await flood(`http://127.0.0.1:${port}`, 'refused');

console.log(JSON.stringify(out));
