import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, beforeEach, describe, test } from 'node:test';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, resolveConfig } from '../host/export/exporter-config.js';
import { MetricAggregator } from '../host/export/metric-aggregation.js';
import { OtlpHttpExporter, retryAfterMs } from '../host/export/otlp-http-exporter.js';
import { PipelineCollector } from '../host/pipeline/pipeline-collector.js';
import type { LogRecord, MetricPoint, SpanRecord } from '../host/pipeline/telemetry-records.js';
import { runQuickJS } from '../host/sandbox/quickjs-runner.js';
import { OtlpTestServer, partialSuccess } from './helpers/otlp-test-server.js';

const server = new OtlpTestServer();
/**
 * How late an export may end and still count as within its deadline: on a loaded 2-core machine
 * timers alone run 100-250 ms late. Each failure these tests catch is seconds late.
 */
const SLACK_MS = 1_000;
let spans: SpanRecord[] = [];
let logs: LogRecord[] = [];
let points: MetricPoint[] = [];

before(async () => {
  await server.start();
  const collector = new PipelineCollector({ eventsAs: 'both', handlers: { onSpan: (s) => spans.push(s), onLog: (l) => logs.push(l), onMetric: (m) => points.push(m) } });
  await runQuickJS(`tracing.inSpan('work', { pad: 'x'.repeat(2000) }, () => { tracing.info('hello'); tracing.counter('c', 1); });`, { collector });
});
after(() => server.close());
beforeEach(() => {
  server.requests.length = 0;
  server.script.length = 0;
});

function exporter(options: ConstructorParameters<typeof OtlpHttpExporter>[0] = {}, env: NodeJS.ProcessEnv = {}) {
  return new OtlpHttpExporter({ endpoint: server.url, initialBackoffMs: 20, maxBackoffMs: 50, ...options }, env);
}

describe('OTLP/HTTP exporter', () => {
  test('each signal is POSTed as protobuf to its path and decodes on the server', async () => {
    const e = exporter({ compression: 'none', serviceName: 'svc' });
    const agg = new MetricAggregator();
    for (const p of points) agg.add(p);
    assert.equal((await e.exportSpans(spans)).code, 'success');
    assert.equal((await e.exportLogs(logs)).code, 'success');
    assert.equal((await e.exportMetrics(agg.collect())).code, 'success');
    assert.deepEqual(server.requests.map((r) => r.path), ['/v1/traces', '/v1/logs', '/v1/metrics']);
    for (const r of server.requests) assert.equal(r.headers['content-type'], 'application/x-protobuf');
    const traces = server.decoded(0);
    assert.deepEqual(traces.resourceSpans[0].resource.attributes[0], { key: 'service.name', value: { stringValue: 'svc' } });
    const names = traces.resourceSpans[0].scopeSpans.flatMap((s: any) => s.spans.map((x: any) => x.name)).sort();
    assert.deepEqual(names, ['sandtrace.execution', 'work']);
    assert.equal(server.decoded(1).resourceLogs[0].scopeLogs[0].logRecords[0].body.stringValue, 'hello');
    assert.equal(server.decoded(2).resourceMetrics[0].scopeMetrics[0].metrics[0].name, 'c');
    assert.equal(e.stats.exported.traces, spans.length);
    await e.shutdown();
  });

  test('bodies above the threshold are gzipped (Content-Encoding: gzip), smaller ones are not', async () => {
    const e = exporter({ gzipThresholdBytes: 1024 });
    await e.exportSpans(spans); // > 2 KB
    await e.exportLogs(logs); // small
    assert.equal(server.requests[0]!.headers['content-encoding'], 'gzip');
    assert.equal(server.requests[1]!.headers['content-encoding'], undefined);
    assert.equal(server.decoded(0).resourceSpans.length, 1);
    await e.shutdown();
  });

  test('headers come from code and from OTEL_EXPORTER_OTLP_HEADERS (URL-decoded)', async () => {
    const e = exporter({ headers: { 'x-from-code': 'a' } }, { OTEL_EXPORTER_OTLP_HEADERS: 'x-api-key=s%3Dcret, x-team=obs' });
    await e.exportLogs(logs);
    const h = server.requests[0]!.headers;
    assert.deepEqual([h['x-from-code'], h['x-api-key'], h['x-team']], ['a', 's=cret', 'obs']);
    assert.match(h['user-agent']!, /^sandtrace-otlp-exporter\/\d+\.\d+\.\d+/, 'a User-Agent naming the exporter and its version');
    await e.shutdown();
  });

  test('503 with Retry-After is retried after the delay the server asked for', async () => {
    server.script.push({ status: 503, headers: { 'Retry-After': '1' } });
    const e = exporter({ timeoutMs: 5000 });
    const r = await e.exportLogs(logs);
    assert.equal(r.code, 'success');
    assert.equal(r.attempts, 2);
    assert.ok(server.requests[1]!.at - server.requests[0]!.at >= 900, 'waited about a second');
    await e.shutdown();
  });

  test('429 without Retry-After is retried with backoff', async () => {
    server.script.push({ status: 429 }, { status: 429 });
    const e = exporter();
    const r = await e.exportLogs(logs);
    assert.deepEqual([r.code, r.attempts], ['success', 3]);
    assert.equal(e.stats.retries, 2);
    await e.shutdown();
  });

  test('400 is never retried; the items are counted as failed', async () => {
    server.script.push({ status: 400, body: Buffer.from('bad request') });
    const e = exporter();
    const r = await e.exportLogs(logs);
    assert.equal(r.code, 'failure');
    assert.equal(r.code === 'failure' && r.retryable, false);
    assert.equal(server.requests.length, 1);
    assert.equal(e.stats.failed.logs, logs.length);
    await e.shutdown();
  });

  test('a refused connection is retried until the deadline, then counted as failed', async () => {
    const closed = http.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    // A deadline of 1 s, so that a loop held by a loaded machine still leaves room for a retry;
    // the export ends within it, give or take that machine's timer slack.
    const e = new OtlpHttpExporter({ endpoint: `http://127.0.0.1:${port}`, timeoutMs: 1_000, initialBackoffMs: 20, maxBackoffMs: 40 }, {});
    const started = Date.now();
    const r = await e.exportSpans(spans);
    assert.equal(r.code, 'failure');
    assert.ok(r.attempts >= 2, `attempts: ${r.attempts}`);
    assert.ok(Date.now() - started < 1_000 + SLACK_MS, `took ${Date.now() - started} ms`);
    assert.equal(e.stats.failed.traces, spans.length);
    await e.shutdown();
  });

  test('a server slower than the timeout fails the export within the timeout', async () => {
    // The server answers after 10 s, so that the export's 300 ms stays far from it with slack.
    server.script.push({ status: 200, delayMs: 10_000 }, { status: 200, delayMs: 10_000 });
    const e = exporter({ timeoutMs: 300 });
    const started = Date.now();
    const r = await e.exportLogs(logs);
    assert.equal(r.code, 'failure');
    assert.ok(Date.now() - started < 300 + SLACK_MS, `took ${Date.now() - started} ms`);
    await e.shutdown();
  });

  test('partial success is not retried; the rejected count is recorded', async () => {
    server.script.push({ status: 200, body: partialSuccess('traces', 1, 'span too large') });
    const e = exporter();
    const r = await e.exportSpans(spans);
    assert.equal(r.code, 'success');
    assert.equal(r.code === 'success' && r.rejected, 1);
    assert.equal(r.code === 'success' && r.message, 'span too large');
    assert.equal(server.requests.length, 1);
    assert.equal(e.stats.rejected.traces, 1);
    await e.shutdown();
  });

  test('empty exports send nothing; oversized ones are split under maxRequestBytes', async () => {
    const e = exporter({ maxRequestBytes: 3000, compression: 'none' });
    assert.equal((await e.exportSpans([])).code, 'success');
    assert.equal(server.requests.length, 0);
    const many = [...spans, ...spans, ...spans];
    const r = await e.exportSpans(many);
    assert.equal(r.code, 'success');
    assert.ok(server.requests.length >= 2);
    for (const req of server.requests) assert.ok(req.body.length <= 3000);
    const sent = server.requests.reduce((n, _, i) => n + server.decoded(i).resourceSpans[0].scopeSpans.reduce((m: number, s: any) => m + s.spans.length, 0), 0);
    assert.equal(sent, many.length);
    await e.shutdown();
  });

  test('an oversized export sends its parts one at a time, so one part is held at once, not the whole body', async () => {
    const e = exporter({ maxRequestBytes: 3000, compression: 'none' });
    const many = [...spans, ...spans, ...spans, ...spans];
    server.maxOpen = 0;
    const r = await e.exportSpans(many);
    assert.equal(r.code, 'success');
    assert.ok(server.requests.length >= 3, `${server.requests.length} parts`);
    assert.equal(server.maxOpen, 1, 'never two parts in flight');
    const sent = server.requests.reduce((n, _, i) => n + server.decoded(i).resourceSpans[0].scopeSpans.reduce((m: number, s: any) => m + s.spans.length, 0), 0);
    assert.equal(sent, many.length);
    await e.shutdown();
  });

  test('a split export keeps one deadline: parts sent one after another do not each get a fresh timeout', async () => {
    // Every request answers 503: each part retries until the deadline. With a deadline per part,
    // four parts sent in turn took four timeouts (about 4 s here); the export has one.
    for (let i = 0; i < 1000; i++) server.script.push({ status: 503 });
    const e = exporter({ maxRequestBytes: 3000, compression: 'none', timeoutMs: 1_000 });
    const many = [...spans, ...spans, ...spans, ...spans];
    const started = Date.now();
    const r = await e.exportSpans(many);
    const took = Date.now() - started;
    assert.equal(r.code, 'failure');
    assert.equal(r.items, many.length);
    assert.ok(took < 1_000 + SLACK_MS, `took ${took} ms for a 1 s deadline`);
    assert.equal(e.stats.failed.traces, many.length);
    assert.equal(e.stats.exported.traces, 0);
    assert.equal(r.code === 'failure' && Object.values(r.dropped ?? {}).reduce((n, k) => n + (k ?? 0), 0), many.length);
    server.script.length = 0;
    await e.shutdown();
  });

  test('a split export whose second part fails after the first succeeded counts each item once', async () => {
    server.script.push({ status: 200 }, { status: 400 }, { status: 400 }, { status: 400 }, { status: 400 }, { status: 400 }, { status: 400 }, { status: 400 });
    const e = exporter({ maxRequestBytes: 3000, compression: 'none' });
    const many = [...spans, ...spans, ...spans, ...spans];
    const r = await e.exportSpans(many);
    assert.equal(r.code, 'failure');
    const first = server.decoded(0).resourceSpans[0].scopeSpans.reduce((m: number, s: any) => m + s.spans.length, 0);
    assert.ok(first > 0 && first < many.length);
    assert.equal(r.code === 'failure' && r.exported, first);
    assert.equal(e.stats.exported.traces, first);
    assert.equal(e.stats.failed.traces, many.length - first);
    assert.equal(r.code === 'failure' && Object.values(r.dropped ?? {}).reduce((n, k) => n + (k ?? 0), 0), many.length - first);
    await e.shutdown();
  });

  test('concurrent exports on one exporter (one kept encoding buffer) each send their own body, also on a retry', async () => {
    // The first request of each export is answered late with a 503 and retried: by then the other
    // export has been encoded with the same writer, so a body that were a view of it would be overwritten.
    server.script.push({ status: 503, delayMs: 100 }, { status: 503, delayMs: 100 });
    const e = exporter({ compression: 'none' });
    const only = (name: string) => spans.filter((s) => s.name === name);
    const [a, b] = await Promise.all([e.exportSpans(only('work')), e.exportSpans(only('sandtrace.execution'))]);
    assert.equal(a.code, 'success');
    assert.equal(b.code, 'success');
    const names = server.requests.map((_, i) => server.decoded(i).resourceSpans[0].scopeSpans.flatMap((s: any) => s.spans.map((x: any) => x.name)).join());
    assert.deepEqual(names.slice().sort(), ['sandtrace.execution', 'sandtrace.execution', 'work', 'work']);
    await e.shutdown();
  });

  test('shutdown waits for exports under way, and exports after it fail', async () => {
    server.script.push({ status: 200, delayMs: 100 });
    const e = exporter();
    const pending = e.exportLogs(logs);
    await e.shutdown();
    assert.equal((await pending).code, 'success');
    const late = await e.exportLogs(logs);
    assert.equal(late.code, 'failure');
  });
});

describe('exporter configuration', () => {
  test('code, then OTEL_* environment variables, then defaults', () => {
    const d = resolveConfig({}, {});
    assert.equal(d.urls.traces, 'http://localhost:4318/v1/traces');
    assert.equal(d.timeoutMs.logs, 10_000);
    assert.equal(d.compression.metrics, 'gzip');
    const env = {
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318/',
      OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: 'http://logs:9999/custom',
      OTEL_EXPORTER_OTLP_TIMEOUT: '2500',
      OTEL_EXPORTER_OTLP_COMPRESSION: 'none',
      OTEL_SERVICE_NAME: 'from-env',
      OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=prod,team=a%2Cb',
    };
    const c = resolveConfig({}, env);
    assert.equal(c.urls.traces, 'http://collector:4318/v1/traces');
    assert.equal(c.urls.logs, 'http://logs:9999/custom', 'a signal endpoint is used as it is');
    assert.equal(c.timeoutMs.traces, 2500);
    assert.equal(c.compression.traces, 'none');
    const version = (JSON.parse(readFileSync(fileURLToPath(new URL('../../package.json', import.meta.url)), 'utf8')) as { version: string }).version;
    assert.deepEqual(Object.fromEntries(c.resource), { 'service.name': 'from-env', 'telemetry.sdk.name': 'sandtrace', 'telemetry.sdk.language': 'nodejs', 'telemetry.sdk.version': version, 'deployment.environment': 'prod', team: 'a,b' });
    const code = resolveConfig({ endpoint: 'http://mine:1', serviceName: 'code', timeoutMs: 7 }, env);
    assert.equal(code.urls.logs, 'http://mine:1/v1/logs', 'an endpoint from code wins over signal endpoints from the environment');
    assert.equal(code.timeoutMs.metrics, 7);
    assert.equal(Object.fromEntries(code.resource)['service.name'], 'code');
  });

  test('without OTEL_SERVICE_NAME the service is unknown_service:<executable>, as the specification says; the SDK attributes cannot be overridden', () => {
    const c = resolveConfig({}, { OTEL_RESOURCE_ATTRIBUTES: 'telemetry.sdk.name=other' });
    const attrs = Object.fromEntries(c.resource);
    assert.equal(attrs['service.name'], `unknown_service:${basename(process.argv0)}`);
    assert.equal(attrs['telemetry.sdk.name'], 'sandtrace');
  });

  test('an unknown compression or protocol is refused with a ConfigError naming the variable, never guessed', () => {
    assert.throws(() => resolveConfig({}, { OTEL_EXPORTER_OTLP_COMPRESSION: 'zstd' }), (e: unknown) => e instanceof ConfigError && /^OTEL_EXPORTER_OTLP_COMPRESSION='zstd' is not supported: supported: 'gzip', 'none'$/.test(e.message));
    assert.throws(() => resolveConfig({}, { OTEL_EXPORTER_OTLP_TRACES_COMPRESSION: 'br' }), /OTEL_EXPORTER_OTLP_TRACES_COMPRESSION='br'/);
    assert.throws(() => resolveConfig({}, { OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }), /OTEL_EXPORTER_OTLP_PROTOCOL='grpc' is not supported: sandtrace exports OTLP over 'http\/protobuf' or 'http\/json' \(not grpc\)/);
    assert.deepEqual(resolveConfig({}, { OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_LOGS_PROTOCOL: 'http/protobuf' }).protocol, { traces: 'http/json', logs: 'http/protobuf', metrics: 'http/json' }, 'the variable of a signal wins');
    assert.equal(resolveConfig({}, { OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf', OTEL_EXPORTER_OTLP_COMPRESSION: 'none' }).compression.logs, 'none');
  });

  test('Retry-After is read as seconds or as an HTTP date', () => {
    assert.equal(retryAfterMs('3'), 3000);
    const now = Date.now();
    const ms = retryAfterMs(new Date(now + 5000).toUTCString(), now)!;
    assert.ok(ms > 3000 && ms <= 5000, `HTTP date five seconds ahead read as ${ms} ms (dates have one-second resolution)`);
    assert.equal(retryAfterMs('soon'), undefined);
    assert.equal(retryAfterMs(undefined), undefined);
  });
});
