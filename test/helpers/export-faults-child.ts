/**
 * Run by export-pressure.test.ts with `node --unhandled-rejections=strict`: every fault of the
 * export path, one after another. Prints one JSON line of counts; any unhandled rejection ends
 * the process with a non-zero code before it.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { BatchingManager, type BatchingStats } from '../../host/batching/batching-manager.js';
import type { ExportResult, Exporter } from '../../host/export/exporter.js';
import { OtlpHttpExporter } from '../../host/export/otlp-http-exporter.js';
import { OtlpTestServer } from './otlp-test-server.js';
import { log, span } from './records.js';

const out: Record<string, unknown> = {};

function fake(exportFn: () => Promise<ExportResult>, shutdown: () => Promise<void> = async () => {}): Exporter {
  return { exportSpans: exportFn, exportLogs: exportFn, exportMetrics: exportFn, shutdown };
}

function summary(s: BatchingStats, kind: 'spans' | 'logs' | 'metrics') {
  const dropped = Object.fromEntries(Object.entries(s.dropped[kind]).filter(([, n]) => n > 0));
  const lost = Object.values(s.dropped[kind]).reduce((a, b) => a + b, 0);
  return { produced: s.produced[kind], exported: s.exported[kind], rejected: s.rejected[kind], dropped, balanced: s.produced[kind] === s.exported[kind] + s.rejected[kind] + lost };
}

async function feed(b: BatchingManager, spans: number, logs: number, shutdownMs = 1000): Promise<{ ms: number; stats: BatchingStats }> {
  for (let i = 0; i < spans; i++) b.addSpan(span());
  for (let i = 0; i < logs; i++) b.addLog(log());
  b.addMetric({ name: 'm', instrument: 'counter', value: 1, attributes: [], time: 1n, executionId: undefined });
  await b.flushAll();
  const started = Date.now();
  await b.shutdown(shutdownMs);
  return { ms: Date.now() - started, stats: b.getStats() };
}

const rejecting = await feed(new BatchingManager(fake(() => Promise.reject(new Error('boom')))), 10, 3);
out.rejecting = { spans: summary(rejecting.stats, 'spans'), logs: summary(rejecting.stats, 'logs'), metrics: summary(rejecting.stats, 'metrics') };

const throwing = await feed(new BatchingManager(fake(() => { throw new Error('sync boom'); })), 4, 5);
out.throwing = { spans: summary(throwing.stats, 'spans'), logs: summary(throwing.stats, 'logs') };

// A result that lies: 1051 items, -5 rejected.
const lying = await feed(new BatchingManager(fake(async () => ({ code: 'success', items: 1051, attempts: 1, rejected: -5 }))), 51, 0);
out.lying = summary(lying.stats, 'spans');
const nothing = await feed(new BatchingManager(fake(async () => undefined as unknown as ExportResult)), 3, 0);
out.nothing = summary(nothing.stats, 'spans');

const callbackThrows = new BatchingManager(fake(async () => ({ code: 'success', items: 0, attempts: 1, rejected: 0 })), {}, () => {
  throw new Error('onFlush boom');
});
const cb = await feed(callbackThrows, 2, 2);
out.callbackThrows = { spans: summary(cb.stats, 'spans'), callbackErrors: cb.stats.callbackErrors };

const badShutdown = await feed(new BatchingManager(fake(async () => ({ code: 'success', items: 0, attempts: 1, rejected: 0 }), () => Promise.reject(new Error('shutdown boom')))), 2, 0);
out.badShutdown = summary(badShutdown.stats, 'spans');
const throwingShutdown = await feed(new BatchingManager(fake(async () => ({ code: 'success', items: 0, attempts: 1, rejected: 0 }), () => { throw new Error('sync shutdown boom'); })), 2, 0);
out.throwingShutdown = summary(throwingShutdown.stats, 'spans');

// An exporter that never settles: shutdown still returns at its deadline, and counts the batch.
const never = new BatchingManager(fake(() => new Promise(() => {})));
for (let i = 0; i < 7; i++) never.addSpan(span());
void never.flushAll();
const t0 = Date.now();
await never.shutdown(100);
out.never = { ...summary(never.getStats(), 'spans'), ms: Date.now() - t0 };

// A dead collector: the port refuses connections.
const closed = http.createServer();
await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
const deadPort = (closed.address() as AddressInfo).port;
await new Promise<void>((r) => closed.close(() => r()));
// One attempt each, with time to spare: the refusal must reach the event loop before the
// attempt's own timer (on a loaded machine a late loop saw that timer first: ETIMEDOUT), and a
// backoff longer than the deadline ends the export right after it.
const dead = new OtlpHttpExporter({ endpoint: `http://127.0.0.1:${deadPort}`, timeoutMs: 5_000, initialBackoffMs: 10_000, maxBackoffMs: 10_000 }, {});
const deadRun = await feed(new BatchingManager(dead), 5, 5);
out.dead = { spans: summary(deadRun.stats, 'spans'), reason: deadRun.stats.lastFailure?.reason, errorCode: dead.stats.lastFailure?.errorCode };

// Shutdown mid-export: a collector that never answers.
const server = new OtlpTestServer();
await server.start();
for (let i = 0; i < 10; i++) server.script.push({ status: 200, hang: true });
const hanging = new BatchingManager(new OtlpHttpExporter({ endpoint: server.url, timeoutMs: 5000 }, {}), { maxBatchSize: 4 });
for (let i = 0; i < 10; i++) hanging.addSpan(span());
void hanging.flushAll();
await new Promise((r) => setTimeout(r, 50));
const t1 = Date.now();
await hanging.shutdown(200);
out.hanging = { ...summary(hanging.getStats(), 'spans'), ms: Date.now() - t1 };

// The exporter used directly; the caller does not even look at one of its promises.
server.script.length = 0;
server.script.push({ status: 200, hang: true }, { status: 200, hang: true });
const direct = new OtlpHttpExporter({ endpoint: server.url, timeoutMs: 5000 }, {});
const ignored = direct.exportLogs([log()]);
void ignored;
const awaited = direct.exportLogs([log(), log()]);
await new Promise((r) => setTimeout(r, 50));
const t2 = Date.now();
await direct.shutdown(100);
const r = await awaited;
out.direct = { code: r.code, reason: r.code === 'failure' ? r.reason : undefined, ms: Date.now() - t2, failed: direct.stats.failed.logs };
server.script.length = 0;
await server.close();

console.log(JSON.stringify(out));
