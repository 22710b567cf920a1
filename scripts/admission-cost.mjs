// Cost of BatchingManager.addSpan at the memory bound (not a test): a queue filled to the bound
// behind an exporter that never answers, then spans that find no room (refused) and error spans
// that evict an ordinary one each.
// Usage: npm run build && node scripts/admission-cost.mjs [path to a built batching-manager.js]
import { pathToFileURL } from 'node:url';

const path = process.argv[2] ?? new URL('../dist/host/batching/batching-manager.js', import.meta.url).href;
const { BatchingManager } = await import(path.startsWith('file:') ? path : pathToFileURL(path).href);

const never = () => new Promise(() => {});
const exporter = { exportSpans: never, exportLogs: never, exportMetrics: never, shutdown: async () => {} };
let n = 0;
const span = (error) => ({
  traceId: new Uint8Array(16), spanId: new Uint8Array(8), parentSpanId: undefined, traceFlags: 1, name: `span ${n++ % 1000}`, scope: 'bench',
  start: 1n, end: 2n, attributes: [['http.route', '/api/orders'], ['status', 200]], events: [], links: [],
  status: error ? { code: 'error', message: 'x' } : { code: 'unset' }, executionId: 'e', forced: undefined, droppedEvents: 0,
});

function measure(label, error) {
  const b = new BatchingManager(exporter, { maxMemoryBytes: 16 << 20, maxBatchSize: 1 << 30, flushIntervalMs: 1 << 30 });
  while (b.getStats().dropped.spans.overflow === 0) b.addSpan(span(false)); // to the bound
  const queued = b.getStats().queued.spans;
  const spans = Array.from({ length: 20_000 }, () => span(error));
  for (let i = 0; i < 2000; i++) b.addSpan(spans[i]); // warm-up
  const t = process.hrtime.bigint();
  for (let i = 2000; i < spans.length; i++) b.addSpan(spans[i]);
  const us = Number(process.hrtime.bigint() - t) / 1000 / (spans.length - 2000);
  console.log(`${label}: ${us.toFixed(3)} µs per span at the bound (${queued} spans queued)`);
  void b.shutdown(0);
}

measure('ordinary span, no room (refused)', false);
measure('error span, evicts an ordinary one', true);
