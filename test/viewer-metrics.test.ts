/** The viewer's store reader keeps a histogram's buckets (and reads non-finite doubles as written). */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { MetricAggregator } from '../host/export/metric-aggregation.js';
import { FileExporter } from '../host/export/otlp-json.js';
import { loadStore } from '../host/viewer/trace-store.js';

test('histograms keep their count and buckets in the store reader; a NaN gauge reads back as NaN', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sandtrace-view-metrics-'));
  try {
    const agg = new MetricAggregator();
    for (const v of [7, 60, 60]) agg.add({ name: 'latency_ms', instrument: 'histogram', value: v, attributes: [], time: 1n, executionId: undefined });
    agg.add({ name: 'ratio', instrument: 'gauge', value: NaN, attributes: [], time: 1n, executionId: undefined });
    const store = new FileExporter(dir);
    await store.exportMetrics(agg.collect());
    await store.shutdown();
    const { metrics, skippedLines } = await loadStore(dir);
    assert.equal(skippedLines.metrics, 0);
    const h = metrics.find((m) => m.name === 'latency_ms')!;
    assert.equal(h.value, 127);
    assert.equal(h.histogram!.count, 3);
    assert.equal(h.histogram!.buckets.length, h.histogram!.bounds.length + 1);
    assert.equal(h.histogram!.buckets[h.histogram!.bounds.indexOf(10)], 1, 'one value ≤ 10');
    assert.equal(h.histogram!.buckets[h.histogram!.bounds.indexOf(75)], 2, 'two values in (50, 75]');
    assert.ok(Number.isNaN(metrics.find((m) => m.name === 'ratio')!.value));
  } finally {
    await rm(dir, { recursive: true });
  }
});
