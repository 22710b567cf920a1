import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { BatchingManager, estimateLogBytes, estimateSeriesBytes } from '../host/batching/batching-manager.js';
import { OtlpHttpExporter } from '../host/export/otlp-http-exporter.js';
import { PipelineCollector } from '../host/pipeline/pipeline-collector.js';
import type { LogRecord, MetricPoint, SpanRecord } from '../host/pipeline/telemetry-records.js';
import { runQuickJS } from '../host/sandbox/quickjs-runner.js';
import { eventually } from './helpers/eventually.js';
import { OtlpTestServer } from './helpers/otlp-test-server.js';
import { recordsOnly } from './helpers/records.js';

const server = new OtlpTestServer();
before(() => server.start());
after(() => server.close());
beforeEach(() => {
  server.requests.length = 0;
  server.script.length = 0;
  server.maxOpen = 0;
});

const exporter = (options: ConstructorParameters<typeof OtlpHttpExporter>[0] = {}) => new OtlpHttpExporter({ endpoint: server.url, initialBackoffMs: 10, maxBackoffMs: 20, compression: 'none', ...options }, {});

let n = 0;
function log(level: LogRecord['level'] = 'info', body = `log ${++n}`): LogRecord {
  return { time: 1n, level, severityNumber: 9, body, attributes: [], scope: 'test', traceId: undefined, spanId: undefined, traceFlags: 0, executionId: 'e' };
}
function span(error = false): SpanRecord {
  return {
    traceId: new Uint8Array(16).fill(1), spanId: new Uint8Array(8).fill(2), parentSpanId: undefined, traceFlags: 1, name: `span ${++n}`, scope: 'test',
    start: 1n, end: 2n, attributes: [], events: [], links: [], status: error ? { code: 'error', message: 'x' } : { code: 'unset' }, executionId: 'e', forced: undefined, droppedEvents: 0,
  };
}
const counter = (value: number): MetricPoint => ({ name: 'requests', instrument: 'counter', value, attributes: [['route', '/a']], time: 5n, executionId: 'e' });
const logCount = (i: number) => server.decoded(i).resourceLogs[0].scopeLogs[0].logRecords.length;

describe('batching manager', () => {
  test('OTEL_BSP_*, OTEL_BLRP_* and OTEL_METRIC_EXPORT_INTERVAL configure each kind, as in every OpenTelemetry SDK; a bad value is a ConfigError', async () => {
    const env = { OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '3', OTEL_BSP_MAX_QUEUE_SIZE: '5', OTEL_BLRP_SCHEDULE_DELAY: '30', OTEL_METRIC_EXPORT_INTERVAL: '40', OTEL_BSP_SCHEDULE_DELAY: '60000' };
    const b = new BatchingManager(exporter(), { flushIntervalMs: 60_000, maxConcurrentExports: 1 }, undefined, env);
    try {
      b.addLog(log());
      b.addMetric(counter(1));
      // Their intervals (30 and 40 ms) against the 60 s default: waited for, not timed, since a
      // loaded machine runs timers late.
      await eventually('logs and metrics exported', () => server.requests.length >= 2);
      assert.deepEqual(server.requests.map((q) => q.path).sort(), ['/v1/logs', '/v1/metrics'], 'logs and metrics went on their own intervals; spans wait for theirs');
      server.requests.length = 0;
      // Answered slowly, so that it is still in flight when the next spans arrive: the poll
      // below sees the request about 5 ms after it came, and the answer waits 300 ms.
      server.script.push({ status: 200, delayMs: 300 }, { status: 200 }, { status: 200 }, { status: 200 });
      for (let i = 0; i < 3; i++) b.addSpan(span());
      await eventually('a full batch of spans exported', () => server.requests.length >= 1);
      assert.equal(b.getStats().inFlightItems.spans, 3, 'the full batch is in flight');
      for (let i = 0; i < 7; i++) b.addSpan(span());
      assert.equal(b.getStats().dropped.spans.overflow, 2, 'while that batch is in flight the queue holds at most 5 spans; the rest are dropped, counted');
      assert.equal(server.requests.length, 1, 'a batch of 3 spans is full: sent at once (and answered slowly)');
      assert.equal(server.decoded(0).resourceSpans[0].scopeSpans[0].spans.length, 3);
    } finally {
      await b.shutdown();
    }
    await new Promise((r) => setTimeout(r, 50));
    assert.throws(() => new BatchingManager(exporter(), {}, undefined, { OTEL_BSP_SCHEDULE_DELAY: 'soon' }), /OTEL_BSP_SCHEDULE_DELAY='soon' is not supported: a positive integer/);
  });

  test('a full batch is exported at once; a partial one waits for the interval or a flush', async () => {
    const b = new BatchingManager(exporter(), { maxBatchSize: 10, flushIntervalMs: 60_000 });
    for (let i = 0; i < 9; i++) b.addLog(log());
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(server.requests.length, 0);
    b.addLog(log());
    await eventually('the full batch exported', () => server.requests.length >= 1);
    assert.equal(server.requests.length, 1);
    assert.equal(logCount(0), 10);
    b.addLog(log());
    await b.flushAll();
    assert.equal(server.requests.length, 2);
    await b.shutdown();
  });

  test('the interval exports what is queued', async () => {
    const b = new BatchingManager(exporter(), { flushIntervalMs: 30 });
    b.addLog(log());
    b.addSpan(span());
    await eventually('both exported on the interval', () => server.requests.length >= 2);
    assert.deepEqual(server.requests.map((r) => r.path).sort(), ['/v1/logs', '/v1/traces']);
    await b.shutdown();
  });

  test('never more exports in flight than configured', async () => {
    for (let i = 0; i < 8; i++) server.script.push({ status: 200, delayMs: 40 });
    const b = new BatchingManager(exporter(), { maxBatchSize: 5, maxConcurrentExports: 2, flushIntervalMs: 60_000 });
    for (let i = 0; i < 40; i++) b.addLog(log());
    await b.flushAll();
    assert.equal(server.requests.length, 8);
    assert.equal(server.maxOpen, 2);
    assert.equal(b.getStats().exported.logs, 40);
    await b.shutdown();
  });

  test('when full, the newest debug/info records are dropped before records that ended in error; every drop is counted', async () => {
    const one = estimateLogBytes(log());
    const b = new BatchingManager(recordsOnly(exporter()), { maxMemoryBytes: one * 5 + 50, flushIntervalMs: 60_000 });
    for (let i = 0; i < 5; i++) b.addLog(log('info', `info ${i}`));
    assert.equal(b.addLog(log('error', 'error 0')), true, 'room is made for an error');
    assert.equal(b.addLog(log('debug', 'debug 0')), false, 'nothing less important to drop for a debug record');
    const stats = b.getStats();
    assert.equal(stats.dropped.logs.overflow, 2);
    assert.ok(stats.memoryBytes <= one * 5 + 50);
    await b.flushAll();
    const bodies = server.decoded(0).resourceLogs[0].scopeLogs[0].logRecords.map((l: any) => l.body.stringValue);
    assert.deepEqual(bodies, ['info 0', 'info 1', 'info 2', 'info 3', 'error 0'], 'the newest info record made way');
    await b.shutdown();
  });

  test('without dropOnOverflow the incoming record is the one dropped', async () => {
    const one = estimateLogBytes(log());
    const b = new BatchingManager(exporter(), { maxMemoryBytes: one * 2, dropOnOverflow: false, flushIntervalMs: 60_000 });
    b.addLog(log());
    b.addLog(log());
    assert.equal(b.addLog(log('error')), false);
    assert.equal(b.getStats().dropped.logs.overflow, 1);
    await b.shutdown();
  });

  test('a failed export counts its records as dropped', async () => {
    server.script.push({ status: 400 });
    const flushes: string[] = [];
    const b = new BatchingManager(exporter(), { flushIntervalMs: 60_000 }, (e) => flushes.push(`${e.kind}:${e.items}:${e.result.code}`));
    b.addSpan(span());
    b.addSpan(span(true));
    await b.flushAll();
    assert.deepEqual(flushes, ['spans:2:failure']);
    assert.deepEqual(b.getStats().dropped.spans, { overflow: 0, tooLarge: 0, failed: 0, shutdown: 0, retriesExhausted: 0, nonRetryable: 2 });
    assert.equal(b.getStats().lastFlush?.code, 'failure');
    assert.deepEqual(b.getStats().lastFailure && { ...b.getStats().lastFailure, at: 0 }, { at: 0, kind: 'spans', reason: 'nonRetryable', items: 2, status: 400, message: 'collector answered 400' });
    await b.shutdown();
  });

  test('metric points are aggregated per series between exports', async () => {
    const b = new BatchingManager(exporter(), { flushIntervalMs: 60_000 });
    for (let i = 1; i <= 100; i++) b.addMetric(counter(i));
    await b.flushAll();
    const points = server.decoded(0).resourceMetrics[0].scopeMetrics[0].metrics[0].sum.dataPoints;
    assert.equal(points.length, 1);
    assert.equal(points[0].asInt, '5050', 'integer increments stay an integer sum');
    await b.shutdown();
  });

  test('metric series are charged their own size against the bound, not a flat amount', async () => {
    const small = (i: number): MetricPoint => ({ name: 'r', instrument: 'counter', value: 1, attributes: [['k', i]], time: 5n, executionId: 'e' });
    const large = (i: number): MetricPoint => ({ name: 'r', instrument: 'counter', value: 1, attributes: [['k', i], ['payload', 'x'.repeat(2000)]], time: 5n, executionId: 'e' });
    const series = async (point: (i: number) => MetricPoint) => {
      const b = new BatchingManager(exporter(), { flushIntervalMs: 60_000, maxMemoryBytes: 64 << 10 });
      let i = 0;
      while (b.addMetric(point(i))) i++;
      const s = b.getStats();
      assert.ok(s.memoryBytes <= 64 << 10, `${s.memoryBytes} bytes charged under a 64 KiB bound`);
      assert.ok(s.memoryBytes > (64 << 10) - estimateSeriesBytes(point(i), 0), 'the bound is reached, not a count of series');
      assert.equal(s.droppedPoints.overflow, 1);
      await b.shutdown();
      return i;
    };
    const nSmall = await series(small);
    const nLarge = await series(large);
    assert.ok(nLarge * 10 < nSmall, `${nLarge} series with 2,000-character attributes fit, against ${nSmall} small ones`);
  });

  test('shutdown flushes what was queued, and counts what misses its deadline', async () => {
    const b = new BatchingManager(exporter(), { flushIntervalMs: 60_000 });
    for (let i = 0; i < 3; i++) b.addLog(log());
    await b.shutdown();
    assert.equal(server.requests.length, 1);
    assert.equal(logCount(0), 3);
    assert.equal(b.addLog(log()), false, 'nothing is accepted after shutdown');
    assert.equal(b.getStats().dropped.logs.shutdown, 1);

    server.script.push({ status: 200, delayMs: 5_000 });
    const slow = new BatchingManager(exporter({ timeoutMs: 10_000 }), { flushIntervalMs: 60_000, maxBatchSize: 2, maxConcurrentExports: 1 });
    for (let i = 0; i < 6; i++) slow.addLog(log());
    const started = Date.now();
    await slow.shutdown(200);
    assert.ok(Date.now() - started < 5_000, 'shutdown returned at its deadline');
    assert.equal(slow.getStats().dropped.logs.shutdown, 6, 'the batches that never left, and the one under way at the deadline (aborted), are counted');
    assert.equal(slow.getStats().inFlightItems.logs, 0);
  });

  test('a sustained flood into a collector that is down stays within maxMemoryBytes and accounts for every record', async () => {
    const dead = new OtlpHttpExporter({ endpoint: 'http://127.0.0.1:9', timeoutMs: 50, initialBackoffMs: 10, maxBackoffMs: 20 }, {});
    const max = 256 * 1024;
    const b = new BatchingManager(dead, { maxMemoryBytes: max, maxBatchSize: 512, flushIntervalMs: 10 });
    let accepted = 0;
    const total = 50_000;
    let peak = 0;
    for (let i = 0; i < total; i++) {
      if (b.addLog(log(i % 10 === 0 ? 'error' : 'info'))) accepted++;
      if (i % 1000 === 0) {
        peak = Math.max(peak, b.getStats().memoryBytes);
        await new Promise((r) => setImmediate(r));
      }
    }
    await b.shutdown(2_000);
    const s = b.getStats();
    assert.ok(peak <= max, `peak ${peak} > ${max}`);
    assert.equal(s.accepted.logs, accepted);
    const d = s.dropped.logs;
    assert.equal(s.produced.logs, total);
    assert.equal(s.exported.logs + d.failed + d.shutdown + d.overflow + d.retriesExhausted + d.tooLarge + d.nonRetryable, total, 'every record exported or counted as dropped (overflow counts both evicted and refused records)');
  });

  test('end to end: a guest run through the pipeline collector reaches the server', async () => {
    const b = new BatchingManager(exporter(), { flushIntervalMs: 60_000 });
    const collector = new PipelineCollector({ eventsAs: 'both', handlers: b.handlers() });
    await runQuickJS(`tracing.inSpan('e2e', {}, () => { tracing.info('inside'); tracing.counter('c', 1); })`, { collector });
    await b.shutdown();
    const paths = server.requests.map((r) => r.path).sort();
    assert.deepEqual(paths, ['/v1/logs', '/v1/metrics', '/v1/traces']);
  });
});
