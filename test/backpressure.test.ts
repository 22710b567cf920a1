/**
 * Backpressure from the export queues to the guest: with `whenFull: 'block'` and the batching
 * manager as the run's `backpressure`, a guest that produces faster than a slow collector accepts
 * waits before each frame instead of losing records; without it, the same run drops (counted).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { BatchingManager } from '../host/batching/batching-manager.js';
import { OtlpHttpExporter } from '../host/export/otlp-http-exporter.js';
import { PipelineCollector } from '../host/pipeline/pipeline-collector.js';
import type { RunOptions } from '../host/sandbox/execution.js';
import { runQuickJS } from '../host/sandbox/quickjs-runner.js';
import { runWasm } from '../host/sandbox/wasm-runner.js';
import { compileAssemblyScript } from '../host/sandbox/compile-assemblyscript.js';
import { fileURLToPath } from 'node:url';
import { OtlpTestServer } from './helpers/otlp-test-server.js';

const SPANS = 6_000;
const GUEST = `for (let i = 0; i < ${SPANS}; i++) tracing.inSpan('work', { i }, () => tracing.info('step', { i })); 'done'`;

describe('backpressure: a guest waits for room in the export queues', () => {
  const server = new OtlpTestServer();
  let endpoint = '';
  before(async () => {
    endpoint = await server.start();
  });
  after(() => server.close());

  /**
   * A slow collector (each request answered after 40 ms), one export at a time, a memory bound of
   * `bound` bytes: it must hold one frame's records (a QuickJS frame is 32 KiB, an AssemblyScript
   * one up to 64 KiB, some 1 to 2 MiB of queued records), since a frame is admitted whole.
   */
  async function runAgainstSlowCollector(run: (options: RunOptions) => Promise<unknown>, withBackpressure: boolean, bound = 1 << 20) {
    for (let i = 0; i < 400; i++) server.script.push({ status: 200, delayMs: 40 });
    const batching = new BatchingManager(new OtlpHttpExporter({ endpoint }, {}), { whenFull: 'block', maxMemoryBytes: bound, maxBatchSize: 256, maxConcurrentExports: 1, flushIntervalMs: 20 });
    const collector = new PipelineCollector({ eventsAs: 'span-events', handlers: batching.handlers() });
    await run({ collector, deadlineMs: 60_000, ...(withBackpressure && { backpressure: batching }) });
    await batching.shutdown(30_000);
    server.script.length = 0;
    return batching.getStats();
  }

  // The test timeouts only end a hang: compiling the AssemblyScript guest is seconds of CPU, and
  // a machine loaded ten times over its cores stretched the WebAssembly test past 120 s.
  test('QuickJS: every span reaches the collector with backpressure; without it the same run drops, counted', { timeout: 300_000 }, async () => {
    const without = await runAgainstSlowCollector((o) => runQuickJS(GUEST, o), false);
    assert.ok(without.dropped.spans.overflow > 0, `no drops without backpressure: ${JSON.stringify(without.dropped.spans)}`);
    assert.equal(without.exported.spans + without.dropped.spans.overflow, SPANS + 1);
    const withIt = await runAgainstSlowCollector((o) => runQuickJS(GUEST, o), true);
    assert.deepEqual(withIt.dropped.spans, { overflow: 0, tooLarge: 0, shutdown: 0, retriesExhausted: 0, nonRetryable: 0, failed: 0 });
    assert.equal(withIt.exported.spans, SPANS + 1, 'every guest span and the execution span');
  });

  test('WebAssembly: the flush import waits the same way', { timeout: 300_000 }, async () => {
    const wasm = await compileAssemblyScript(fileURLToPath(new URL('../../test/guests-as/plugin.ts', import.meta.url)));
    const stats = await runAgainstSlowCollector((o) => runWasm(wasm, { ...o, entry: 'manySpans', args: [SPANS] }), true, 4 << 20);
    assert.equal(stats.dropped.spans.overflow, 0);
    assert.equal(stats.exported.spans, SPANS + 1);
  });
});
