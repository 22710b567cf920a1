/**
 * Defects a review of the sandbox found, each with the scenario that showed it.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CaptureCollector } from '../host/collectors/capture-collector.js';
import { runQuickJS } from '../host/sandbox/quickjs-runner.js';
import { SandboxPool } from '../host/sandbox/sandbox-pool.js';
import { runWasm } from '../host/sandbox/wasm-runner.js';
import { spinningGuest } from './guests-wasm/hand-made-guests.js';

describe('sandbox review', () => {
  test('a run whose arguments cannot cross to a worker is refused, and the pool stays free and closes', async () => {
    await using pool = new SandboxPool({ size: 1 });
    await assert.rejects(runWasm(spinningGuest(), { pool, args: [(() => 1) as unknown as number] }), /runWasm args are numbers, bigints, booleans or strings; got a function/);
    const r = await runQuickJS(`1`, { pool });
    assert.equal(r.value, 1);
    assert.equal(pool.stats.busy, 0);
    await pool.close();
  });

  test('a guest using 56 of its 64 MiB, in 1 MiB steps, is not taken for out of memory', async () => {
    await using pool = new SandboxPool({ size: 1 });
    const r = await runQuickJS(`const keep = []; for (let i = 0; i < 56; i++) keep.push(new Uint8Array(1 << 20)); keep.length`, { pool, memoryLimitBytes: 64 << 20 });
    assert.equal(r.ok, true, r.summary.cause);
    assert.equal(r.value, 56);
  });

  test('a guest whose completion value cannot be cloned (a symbol) loses none of its records', async () => {
    await using pool = new SandboxPool({ size: 1 });
    const collector = new CaptureCollector();
    const r = await runQuickJS(`tracing.info('a'); tracing.info('b'); Symbol('s')`, { pool, collector });
    assert.equal(r.ok, true);
    assert.equal(r.value, undefined);
    assert.deepEqual(collector.events.map((e) => e.values[0]![1]), ['a', 'b']);
  });
});
