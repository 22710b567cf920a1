import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MetricAggregator } from '../host/export/metric-aggregation.js';
import { encodeLogs, encodeMetrics, encodeTraces } from '../host/export/otlp-encoder.js';
import { otlpType } from '../host/export/otlp-proto.js';
import { PipelineCollector } from '../host/pipeline/pipeline-collector.js';
import type { LogRecord, MetricPoint, SpanRecord } from '../host/pipeline/telemetry-records.js';
import { runQuickJS } from '../host/sandbox/quickjs-runner.js';

const RESOURCE: Array<[string, string]> = [['service.name', 'encoder-test']];

function decode(type: string, bytes: Uint8Array): Record<string, any> {
  return otlpType(type).toObject(otlpType(type).decode(bytes), { longs: String, bytes: String, defaults: false }) as Record<string, any>;
}

async function guestTelemetry() {
  const spans: SpanRecord[] = [];
  const logs: LogRecord[] = [];
  const points: MetricPoint[] = [];
  const collector = new PipelineCollector({ eventsAs: 'both', handlers: { onSpan: (s) => spans.push(s), onLog: (l) => logs.push(l), onMetric: (m) => points.push(m) } });
  await runQuickJS(
    `tracing.inSpan('handle', { user: 'alice', n: -7, big: 2n ** 63n - 1n, ratio: 0.25, bin: new Uint8Array([1, 2]), long: 'x'.repeat(300) }, (s) => {
       tracing.warn('slow', { ms: 12 });
       tracing.counter('requests', 2, { route: '/a' });
       tracing.counter('requests', 3, { route: '/a' });
       tracing.histogram('latency', 7, { route: '/a' });
       tracing.histogram('latency', 60, { route: '/a' });
       tracing.gauge('queue', 4);
       try { s.inSpan(() => { throw new Error('boom'); }); } catch {}
     });`,
    { collector, executionId: 'enc-1', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
  );
  return { spans, logs, points };
}

describe('OTLP protobuf encoder', () => {
  test('spans decode with the OTLP definitions: ids, parentage, times, attributes, events, status, scope', async () => {
    const { spans } = await guestTelemetry();
    const req = decode('ExportTraceServiceRequest', encodeTraces(spans, RESOURCE));
    const rs = req.resourceSpans[0];
    assert.deepEqual(rs.resource.attributes, [{ key: 'service.name', value: { stringValue: 'encoder-test' } }]);
    const byScope = Object.fromEntries(rs.scopeSpans.map((s: any) => [s.scope.name, s.spans]));
    const [exec] = byScope.sandtrace;
    const [handle] = byScope.guest;
    assert.equal(exec.traceId, Buffer.from('0af7651916cd43dd8448eb211c80319c', 'hex').toString('base64'), 'trace from the host parent context');
    assert.equal(exec.parentSpanId, Buffer.from('b7ad6b7169203331', 'hex').toString('base64'));
    assert.equal(handle.traceId, exec.traceId);
    assert.equal(handle.parentSpanId, exec.spanId, 'guest root span is a child of the execution span');
    assert.equal(handle.kind, 1);
    const record = spans.find((s) => s.name === 'handle')!;
    assert.equal(handle.startTimeUnixNano, record.start.toString());
    assert.equal(handle.endTimeUnixNano, record.end.toString());
    const attrs = Object.fromEntries(handle.attributes.map((a: any) => [a.key, a.value]));
    assert.deepEqual(attrs.user, { stringValue: 'alice' });
    assert.deepEqual(attrs.n, { intValue: '-7' });
    assert.deepEqual(attrs.big, { intValue: '9223372036854775807' });
    assert.deepEqual(attrs.ratio, { doubleValue: 0.25 });
    assert.deepEqual(attrs.bin, { bytesValue: Buffer.from([1, 2]).toString('base64') });
    assert.equal(attrs.long.stringValue.length, 300, 'a nested message over 127 bytes widens its length prefix');
    assert.deepEqual(attrs['sandtrace.execution.id'], { stringValue: 'enc-1' });
    assert.deepEqual(handle.status, { message: 'Error: boom', code: 2 });
    assert.equal(handle.events[0].name, 'slow');
    assert.deepEqual(handle.events[0].attributes, [{ key: 'ms', value: { intValue: '12' } }]);
  });

  test('logs carry severity numbers, body, attributes and the trace context of their span', async () => {
    const { logs, spans } = await guestTelemetry();
    const req = decode('ExportLogsServiceRequest', encodeLogs(logs, RESOURCE));
    const [log] = req.resourceLogs[0].scopeLogs[0].logRecords;
    const handle = spans.find((s) => s.name === 'handle')!;
    assert.equal(log.severityNumber, 13);
    assert.equal(log.severityText, 'WARN');
    assert.deepEqual(log.body, { stringValue: 'slow' });
    assert.equal(log.spanId, Buffer.from(handle.spanId).toString('base64'));
    assert.equal(log.traceId, Buffer.from(handle.traceId).toString('base64'));
    assert.deepEqual(log.attributes.at(-1), { key: 'sandtrace.execution.id', value: { stringValue: 'enc-1' } });
  });

  test('metric points aggregate per series: sums, last-value gauges, explicit-bucket histograms', async () => {
    const { points } = await guestTelemetry();
    const agg = new MetricAggregator();
    for (const p of points) agg.add(p);
    const req = decode('ExportMetricsServiceRequest', encodeMetrics(agg.collect(), RESOURCE));
    const metrics = Object.fromEntries(req.resourceMetrics[0].scopeMetrics[0].metrics.map((m: any) => [m.name, m]));
    assert.equal(metrics.requests.sum.dataPoints[0].asInt, '5');
    assert.equal(metrics.requests.sum.isMonotonic, true);
    assert.deepEqual(metrics.requests.sum.dataPoints[0].attributes, [{ key: 'route', value: { stringValue: '/a' } }]);
    assert.equal(metrics.queue.gauge.dataPoints[0].asInt, '4');
    const h = metrics.latency.histogram.dataPoints[0];
    assert.deepEqual([h.count, h.sum, h.min, h.max], ['2', 67, 7, 60]);
    assert.equal(h.bucketCounts.length, h.explicitBounds.length + 1);
    assert.deepEqual(h.bucketCounts.slice(0, 6), ['0', '0', '1', '0', '0', '1']);
    assert.deepEqual(agg.collect(), [], 'delta temporality: nothing new, nothing exported');
  });

  test('metric conventions: integers stay exact (as_int beyond 2^53), a negative increment makes an up-down sum, attribute types keep series apart', async () => {
    const points: MetricPoint[] = [];
    const collector = new PipelineCollector({ handlers: { onMetric: (p) => points.push(p) } });
    await runQuickJS(
      `tracing.counter('bytes', 2n ** 60n + 1n);
       tracing.counter('bytes', 1);
       tracing.counter('queue.depth', 5); tracing.counter('queue.depth', -2);
       tracing.counter('by.status', 1, { status: 200 }); tracing.counter('by.status', 1, { status: '200' });
       tracing.counter('ratio', 1); tracing.counter('ratio', 0.5);
       tracing.gauge('big', 2n ** 62n);`,
      { collector },
    );
    const agg = new MetricAggregator();
    for (const p of points) agg.add(p);
    const req = decode('ExportMetricsServiceRequest', encodeMetrics(agg.collect(), RESOURCE));
    const metrics = req.resourceMetrics[0].scopeMetrics[0].metrics as any[];
    const one = (name: string) => metrics.filter((m) => m.name === name);
    assert.equal(one('bytes')[0].sum.dataPoints[0].asInt, (2n ** 60n + 2n).toString(), 'exact: 2^60 + 1 + 1');
    assert.equal(one('bytes')[0].sum.isMonotonic, true);
    assert.equal(one('queue.depth')[0].sum.dataPoints[0].asInt, '3');
    assert.equal(one('queue.depth')[0].sum.isMonotonic ?? false, false, 'a counter given a negative increment is not monotonic');
    assert.equal(one('by.status')[0].sum.dataPoints.length + (one('by.status')[1]?.sum.dataPoints.length ?? 0), 2, 'status 200 and status "200" are two series');
    assert.equal(one('ratio')[0].sum.dataPoints[0].asDouble, 1.5, 'a fraction makes the series a double');
    assert.equal(one('big')[0].gauge.dataPoints[0].asInt, (2n ** 62n).toString());
    // Past int64 an integer series becomes a double instead of wrapping around (as_int is an int64).
    const agg2 = new MetricAggregator();
    for (const v of [2n ** 63n - 1n, 2n ** 63n - 1n]) agg2.add({ name: 'huge', instrument: 'counter', value: v, attributes: [], time: 1n, executionId: undefined });
    const huge = decode('ExportMetricsServiceRequest', encodeMetrics(agg2.collect(), RESOURCE)).resourceMetrics[0].scopeMetrics[0].metrics[0];
    assert.equal(huge.sum.dataPoints[0].asDouble, 2 ** 64);
  });

  test('the series cap drops and counts points of new series', () => {
    const agg = new MetricAggregator({ maxSeries: 2 });
    const p = (route: string): MetricPoint => ({ name: 'r', instrument: 'counter', value: 1, attributes: [['route', route]], time: 1n, executionId: undefined });
    assert.equal(agg.add(p('/a')), true);
    assert.equal(agg.add(p('/b')), true);
    assert.equal(agg.add(p('/c')), false);
    assert.equal(agg.add(p('/a')), true);
    assert.equal(agg.dropped, 1);
  });
});
